"""`BuildConfig`: everything a build depends on, validated at construction.

Every field carries its help text, range and choices (`sensekit.options.option`); the
`sensekit build` flags are generated from them, so each default lives here and only here.
No torch or numpy: the CLI imports this module to build its flags.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Optional

from ..errors import InputError
from ..options import check_fields, config_dict, option
from ..space import DEFAULT_SPACE, SPACE_TRANSFORMS
from .wordnet_corpus import HELDOUT_SHARE, check_heldout_share

__all__ = ["BuildConfig", "parse_bytes"]

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "kb": 1 << 10,
    "m": 1 << 20,
    "mb": 1 << 20,
    "g": 1 << 30,
    "gb": 1 << 30,
    "t": 1 << 40,
    "tb": 1 << 40,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "tib": 1 << 40,
}
_IO, _TEACHER, _SENSES, _RUN = "Input and output", "Teacher", "Senses", "Run"  # --help panels


def parse_bytes(text: str | int) -> int:
    """'4GB', '512M', '1.5g', 1000 -> bytes (binary units)."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise InputError(f"--reservoir-memory {text!r} is not a size like 4GB or 512MB")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


@dataclass(frozen=True)
class BuildConfig:
    """Everything a build depends on. Each field's help text is the CLI flag's help."""

    # the order is the provenance's: `build_config` in the store's meta lists the fields in this order
    corpus: tuple[str, ...] = option(
        (), "Corpus files, folders, globs or HF datasets folders; none: WordNet's glosses and examples.", panel=_IO
    )
    store: str = option(
        "senses.sensekit", "Output store bundle (a directory; replaced atomically).", short="-s", panel=_IO
    )
    teacher: str = option(
        "smollm2-135m",
        "Teacher: 'smollm2-135m' (bundled, offline), a Hugging Face id or a local folder.",
        panel=_TEACHER,
    )
    device: Optional[str] = option(
        None, "Device (cpu, cuda, cuda:1, ...); none: cuda if available, else cpu.", panel=_TEACHER
    )
    dtype: Optional[str] = option(
        None, "Teacher dtype (float32, bfloat16, float16); none: bf16 on CUDA, fp32 on CPU.", panel=_TEACHER
    )
    key: str = option(
        "next",
        "Key token: 'next' (the token position t predicts; DSKD) or 'input' (x_t; SKD).",
        choices=("next", "input"),
        panel=_TEACHER,
    )
    next_token: str = option(
        "gold",
        "With --key next: 'gold' (the corpus' x_{t+1}) or 'pred' (the teacher's argmax).",
        choices=("gold", "pred"),
        panel=_TEACHER,
    )
    senses_per_token: int = option(
        10, "k: senses (k-means clusters) per key token.", min=1, max=1000, short="-k", panel=_SENSES
    )
    samples_per_token: int = option(
        50, "G: reservoir cap, vectors kept per key token.", min=1, max=100000, short="-G", panel=_SENSES
    )
    contexts_per_sense: int = option(
        3, "E: most central contexts kept per sense.", min=0, max=100, short="-E", panel=_SENSES
    )
    min_context: int = option(
        3,
        "Real tokens a source position must have read before its key token (0: all "
        "positions). Near-empty contexts give the same state whatever the key is.",
        min=0,
        max=1 << 16,
        panel=_SENSES,
    )
    gloss_lemmas: bool = option(
        True,
        "Default corpus (WordNet): put each synset's lemma names before its gloss, "
        "the context a reader of a dictionary has.",
        panel=_IO,
    )
    space: str = option(
        DEFAULT_SPACE,
        "Similarity space of the index and of every similarity (the raw vectors stay "
        "as they are): identity, centre, zscore, abtt (all-but-the-top) or zscore+abtt.",
        choices=SPACE_TRANSFORMS,
        panel=_SENSES,
    )
    space_components: Optional[int] = option(
        None, "Principal components the abtt spaces remove; none: about d/100.", min=0, max=1 << 16, panel=_SENSES
    )
    store_dtype: str = option(
        "float16",
        "Dtype of the stored vectors (embeddings.npy, context_vectors.npy): float16 halves the bundle "
        "(recall@10 and eval unchanged within noise, docs/store.md), float32 keeps them exact.",
        choices=("float16", "float32"),
        panel=_SENSES,
    )
    max_tokens: Optional[int] = option(
        None, "Stop after this many corpus tokens (all ranks together); none: the whole corpus.", min=1, panel=_IO
    )
    seq_len: int = option(
        256, "Tokens per teacher window (long documents are cut into windows).", min=8, max=1 << 20, panel=_TEACHER
    )
    batch_size: int = option(16, "Windows per forward pass.", min=1, max=1 << 16, panel=_TEACHER)
    text_field: str = option("text", "Text field of JSONL lines and HF datasets.", panel=_IO)
    seed: int = option(0, "Seed for reservoir sampling and k-means.", min=0, panel=_RUN)
    resume: bool = option(
        False, "Continue from the last checkpoint of an interrupted build with the same settings.", panel=_RUN
    )
    checkpoint_every: int = option(
        500, "Checkpoint reservoirs and corpus position every N batches (0: never).", min=0, panel=_RUN
    )
    reservoir_memory: str = option(
        "8GB", "Upper bound on reservoir memory; the build refuses to start if the worst case exceeds it.", panel=_RUN
    )
    relations: tuple[str, ...] = option(
        (), "Relation sources to attach after the senses are written (see `sensekit relations`).", panel=_IO
    )
    kmeans_iters: int = option(300, "Maximum Lloyd iterations per token.", min=1, max=100000, panel=_SENSES)
    kmeans_tol: float = option(
        1e-4,
        "k-means tolerance, relative to the mean per-dimension variance (as scikit-learn).",
        min=0.0,
        panel=_SENSES,
    )
    lexical_layer: str = option(
        "auto",
        "Lexical view (what query, plot and export show): the teacher layer N whose state at the key "
        "token itself gives word senses, from the same forward pass. 'auto' (a depth fraction chosen on "
        "dev data), N (0 = embeddings .. the layer count), or 'none' (the loss view only).",
        panel=_SENSES,
    )
    lexical_representation: str = option(
        "repeat",  # sensekit.model.occurrence.DEFAULT_REPRESENTATION, chosen on dev data (docs/lexical.md)
        "Lexical view: how a token's state is read. 'repeat': each window is fed twice and the state is "
        "taken in the second copy, where the token has read its right context too (a second forward, "
        "stopped after the lexical layer); 'first': the state in the window's own forward.",
        choices=("first", "repeat"),
        panel=_SENSES,
    )
    min_sense_size: int = option(
        2,  # lexical_cluster.RECOMMENDED_MIN_SENSE_SIZE, chosen on dev data (docs/lexical.md)
        "Lexical view: samples each sense must hold; a token with fewer than twice this many "
        "samples gets one sense, their centroid.",
        min=1,
        max=100000,
        panel=_SENSES,
    )
    lexical_merge: float = option(
        0.8,  # lexical_cluster.DEFAULT_THRESHOLDS["merge"], chosen on dev data (docs/lexical.md)
        "Lexical view: two senses of a token merge while the mean cosine between their members (in the "
        "z-scored space) is above this; higher keeps more, finer senses.",
        min=-1.0,
        max=1.0,
        panel=_SENSES,
    )
    link_budget: int = option(
        40000,
        "Lexical view: teacher tokens a build may spend on WordNet synset prototypes (examples and glosses "
        "of the key words, cached per teacher and layer) that link senses to synsets; 0: no linking.",
        min=0,
        panel=_SENSES,
    )
    link_threshold: float = option(
        0.3,  # link.DEFAULT_LINK_THRESHOLD, chosen on dev data (docs/lexical.md)
        "Lexical view: the least z-scored cosine between a sample and its word's nearest synset prototype "
        "for the sample to join that synset's sense; the rest are clustered into induced senses.",
        min=-1.0,
        max=1.0,
        panel=_SENSES,
    )
    heldout_share: float = option(
        HELDOUT_SHARE,
        "Default corpus (WordNet): the share of its example sentences held out of the build, from "
        "which `sensekit eval store` draws its WiC-style pairs and purity sentences; in (0, 0.5].",
        panel=_IO,
    )
    raw_small: bool = option(
        True,
        "Loss view: a token with n <= k samples keeps its n raw vectors as senses (docs/method.md); "
        "--no-raw-small gives it one sense, their centroid.",
        panel=_SENSES,
    )
    focus: Optional[str] = option(
        None,
        "Focus words, comma-separated, or a file with one word per line: the documents that contain "
        "them are read first, so a small --max-tokens still fills their reservoirs.",
        panel=_IO,
    )

    def __post_init__(self) -> None:
        for name in ("corpus", "relations"):  # None reads as "none given", as an empty tuple
            if getattr(self, name) is None:
                object.__setattr__(self, name, ())
        if isinstance(self.store, os.PathLike):
            object.__setattr__(self, "store", os.fspath(self.store))
        check_fields(self)
        if not str(self.store).strip():
            raise InputError("--store must be a path")
        parse_bytes(self.reservoir_memory)
        check_heldout_share(self.heldout_share)
        if self.corpus and self.heldout_share != HELDOUT_SHARE:
            raise InputError(
                "--heldout-share holds out WordNet example sentences of the default corpus; with corpus paths "
                "given it would change nothing: drop it, or drop the paths to build on WordNet"
            )
        layer = str(self.lexical_layer).strip().lower()
        if layer not in ("auto", "none") and not layer.isdigit():
            raise InputError(
                f"--lexical-layer {self.lexical_layer!r}: use auto, none or a layer index (0 = embeddings)"
            )
        object.__setattr__(self, "lexical_layer", layer)
        if layer != "none" and self.key == "next" and self.next_token == "pred":
            raise InputError(
                "--next-token pred files a sample under the teacher's prediction, a token that is not in "
                "the text, so it has no lexical state; add --lexical-layer none or use --next-token gold"
            )

    @property
    def window_overlap(self) -> int:
        """Tokens a continuation window repeats from the previous one, as context: at least
        --min-context, and an eighth of a window so that no position after a cut reads a stub."""
        return max(self.min_context, self.seq_len // 8, 1 if self.key == "next" else 0)

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as JSON-ready data (recorded in the store's provenance)."""
        return config_dict(self)
