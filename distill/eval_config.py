"""The settings of `sensekit eval student`, validated at construction.

Each field is a `sensekit.options.option`; the CLI flags are generated from them, so every
default lives here. No torch imports: the CLI reads this module to build its flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from sensekit.builder.wordnet_corpus import check_heldout_share
from sensekit.errors import InputError
from sensekit.eval.config import data_file
from sensekit.options import check_fields, config_dict, option

__all__ = ["StudentEvalConfig", "DEFAULT_CARRIER"]

DEFAULT_CARRIER = "The word is {w}."
_DATA, _RUN, _SIZE = "Benchmarks", "Run", "Sizes"


@dataclass(frozen=True)
class StudentEvalConfig:
    """`sensekit eval student`: a student beside its teacher on held-out text, WiC and syn/ant probes."""

    student: str = option("", "The student: any Hugging Face causal LM folder (or id) with the teacher's tokenizer.")
    store: str = option(
        "senses.sensekit",
        "Store bundle: its teacher is the reference; its relations give the syn/ant pairs when --pairs is not given.",
        short="-s",
    )
    data: tuple[str, ...] = option((), "Held-out text (files, folders, globs, JSONL; the build's corpus readers).")
    teacher: Optional[str] = option(None, "Teacher; none: the one the store was built with.", panel=_RUN)
    wic: Optional[str] = option(
        None,
        "Word-in-context file (WiC JSONL), scored beside the WordNet held-out pairs; none: the shared data's "
        "wic/val.jsonl when it is there.",
        panel=_DATA,
    )
    wordnet: Optional[str] = option(
        None, "WordNet 3.0 folder (WiC-style pairs); none: NLTK's data path, then /usr/share/wordnet.", panel=_DATA
    )
    heldout_share: Optional[float] = option(
        None,
        "WiC-style pairs from the WordNet example sentences held out of the default corpus at this share, "
        "in (0, 0.5]; none: the share the store recorded, else 0.2.",
        panel=_DATA,
    )
    pairs: Optional[str] = option(
        None,
        "Held-out relation pairs: lines 'word1<TAB>word2<TAB>syn|ant'; none: a "
        "seeded sample of the store's own relations (not held out from the store).",
        panel=_DATA,
    )
    text_field: str = option("text", "JSONL field holding the held-out text.", panel=_DATA)
    carrier: str = option(DEFAULT_CARRIER, "Neutral sentence for the syn/ant probe; {w} marks the word.", panel=_DATA)
    seq_len: int = option(256, "Tokens per held-out window.", min=2, panel=_SIZE)
    max_windows: int = option(64, "Held-out windows scored (0: all).", min=0, panel=_SIZE)
    batch_size: int = option(8, "Windows per forward pass.", min=1, panel=_SIZE)
    tau: float = option(2.0, "Temperature of the KL to the teacher (as in training).", min=0.01, panel=_RUN)
    pair_limit: int = option(500, "Syn/ant probe: at most this many pairs of each kind.", min=1, panel=_SIZE)
    position: Optional[str] = option(
        None,
        "WiC state: 'next' (the state predicting the word) or 'input' (at the word); none: the store's key mode.",
        choices=("next", "input"),
        panel=_RUN,
    )
    device: Optional[str] = option(None, "Device; none: cuda if available, else cpu.", panel=_RUN)
    dtype: Optional[str] = option(None, "Teacher dtype; none: bf16 on CUDA, fp32 on CPU.", panel=_RUN)
    seed: int = option(0, "Seed of the pair sample and the WiC halves.", min=0, panel=_RUN)
    limit: Optional[int] = option(None, "Quick run: at most this many WiC pairs (of each source).", min=1, panel=_RUN)

    def __post_init__(self) -> None:
        if self.data is None:
            object.__setattr__(self, "data", ())
        check_fields(self)
        if self.heldout_share is not None:
            check_heldout_share(self.heldout_share)
        if not str(self.student).strip():
            raise InputError("--student is required: a Hugging Face causal LM folder")
        if not self.data:
            raise InputError("--data is required: held-out text files")
        if "{w}" not in self.carrier:
            raise InputError(f"--carrier {self.carrier!r} must contain {{w}} where the word goes")

    def data_file(self, name: str) -> Optional[str]:
        return data_file(name, getattr(self, name))

    def to_dict(self) -> dict:
        return config_dict(self)
