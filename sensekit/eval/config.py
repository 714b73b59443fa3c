"""The settings of `sensekit eval store`, validated at construction (`eval student`'s are distill's:
distill/eval_config.py).

Each field is a `sensekit.options.option`; the CLI flags are generated from them, so every
default lives here. No torch or distill imports: the CLI reads this module to build its flags
(the metric list comes from `registry`, which imports the metric modules: numpy only). SimLex-999 and WordSim-353 ship with sensekit
(sensekit/eval/data/); a WiC file left unset defaults to the shared data's
(`sensekit.paths.shared_dir()/data/eval/wic/val.jsonl`) when it is there. The WiC-style pairs
need only WordNet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..builder.wordnet_corpus import check_heldout_share
from ..errors import InputError
from ..options import check_fields, config_dict, option
from ..paths import shared_dir
from .registry import metric_names

__all__ = ["EvalConfig", "STORE_METRICS", "default_data", "data_file"]

COSINES = ("store-space", "plain")  # --cosine: through the store's similarity transform, or not
STORE_METRICS = metric_names()  # the registered metrics (sensekit/eval/registry.py), in their order
_DATA, _RUN, _SIZE = "Benchmarks", "Run", "Sizes"
_SHARED_FILES = {"wic": "wic/val.jsonl"}  # in the shared data folder, when there is one
_PACKAGED_FILES = {"simlex": "simlex999.txt", "wordsim": "wordsim353.tsv"}  # shipped: sensekit/eval/data/


def default_data(name: str) -> Optional[str]:
    """The file a benchmark reads when no flag names one: the copy shipped with sensekit (SimLex-999,
    WordSim-353; sensekit/eval/data/README.md has their sources and licences), or the shared data's
    (WiC), or None when there is none."""
    if name in _PACKAGED_FILES:
        from importlib import resources

        path = Path(str(resources.files("sensekit.eval").joinpath("data", _PACKAGED_FILES[name])))
    else:
        path = shared_dir() / "data" / "eval" / _SHARED_FILES[name]
    return str(path) if path.is_file() else None


def data_file(name: str, given: Optional[str]) -> Optional[str]:
    """The file a benchmark reads: the flag's (which must exist), else the shared default, else None."""
    if given is not None:
        path = Path(given).expanduser()
        if not path.is_file():
            raise InputError(f"--{name} {given}: no such file")
        return str(path)
    return default_data(name)


@dataclass(frozen=True)
class EvalConfig:
    """`sensekit eval store`: every metric of a sense store, each with its coverage and a baseline."""

    store: str = option("senses.sensekit", "Store bundle directory.", short="-s")
    metrics: tuple[str, ...] = option(
        (), f"Metrics to run (repeatable or comma-separated): {', '.join(STORE_METRICS)}; none: all."
    )
    wic: Optional[str] = option(
        None,
        "Word-in-context file (WiC JSONL), scored beside the WordNet held-out pairs; none: the shared data's "
        "wic/val.jsonl when it is there.",
        panel=_DATA,
    )
    simlex: Optional[str] = option(
        None, "SimLex-999 pairs (word1 word2 score); none: the copy shipped with sensekit.", panel=_DATA
    )
    wordsim: Optional[str] = option(
        None, "WordSim-353 pairs (word1 word2 score); none: the copy shipped with sensekit.", panel=_DATA
    )
    heldout_share: Optional[float] = option(
        None,
        "WiC-style pairs and purity use the WordNet example sentences held out of the default corpus at this "
        "share, in (0, 0.5]; none: the share the store recorded, else 0.2.",
        panel=_DATA,
    )
    wordnet: Optional[str] = option(
        None,
        "WordNet 3.0 folder (WiC-style pairs, purity, neighbours); none: NLTK's data path, then /usr/share/wordnet.",
        panel=_DATA,
    )
    cosine: str = option(
        "store-space",
        "Cosine of every metric: 'store-space' (in the store's similarity space, i.e. after its de-biasing "
        "transform; plain for stores without one) or 'plain' (of the stored vectors and states as they are).",
        choices=COSINES,
        panel=_RUN,
    )
    view: Optional[str] = option(
        None,
        "Which view of the store: 'lexical' (layer N's states at the word, queried at the same layer), "
        "'loss' (post-norm states), or 'all' (each view the store holds, side by side); none: the store's "
        "default (lexical when it has one). Any view the store records may be named.",
        panel=_RUN,
    )
    teacher: Optional[str] = option(
        None, "Teacher for the contextual states; none: the one the store was built with.", panel=_RUN
    )
    device: Optional[str] = option(None, "Device (cpu, cuda, ...); none: cuda if available, else cpu.", panel=_RUN)
    dtype: Optional[str] = option(None, "Teacher dtype; none: bf16 on CUDA, fp32 on CPU.", panel=_RUN)
    seed: int = option(0, "Seed of every sample and baseline.", min=0, panel=_RUN)
    limit: Optional[int] = option(
        None, "Quick run: at most this many items per metric (pairs, words).", min=1, panel=_RUN
    )
    batch_tokens: int = option(4096, "Padded tokens per teacher forward.", min=16, panel=_RUN)
    neighbour_words: int = option(500, "Neighbourhood quality: tokens sampled.", min=1, panel=_SIZE)
    neighbours_k: int = option(
        10, "Neighbourhood quality: nearest senses judged per token.", min=1, max=100, panel=_SIZE
    )
    purity_words: int = option(400, "Sense purity: most words scored (a seeded sample; 0: all).", min=0, panel=_SIZE)
    anisotropy_pairs: int = option(20000, "Anisotropy: random sense pairs.", min=1, panel=_SIZE)
    duplicate_cos: float = option(
        0.9999, "Health: cosine above which two senses count as the same vector.", min=0.0, max=1.0, panel=_SIZE
    )

    def __post_init__(self) -> None:
        if self.metrics is None:
            object.__setattr__(self, "metrics", ())
        if isinstance(self.metrics, str):
            object.__setattr__(self, "metrics", (self.metrics,))
        # "--metrics wic,health" and "--metrics wic --metrics health" alike
        parts = (m.strip() for v in self.metrics for m in str(v).split(","))
        object.__setattr__(self, "metrics", tuple(m for m in parts if m))
        check_fields(self)
        if self.heldout_share is not None:
            check_heldout_share(self.heldout_share)
        unknown = [m for m in self.metrics if m not in STORE_METRICS]
        if unknown:
            raise InputError(f"--metrics {', '.join(unknown)}: unknown; choose from {', '.join(STORE_METRICS)}")

    @property
    def selected(self) -> tuple[str, ...]:
        return tuple(m for m in STORE_METRICS if not self.metrics or m in self.metrics)

    def data_file(self, name: str) -> Optional[str]:
        return data_file(name, getattr(self, name))

    def to_dict(self) -> dict:
        return config_dict(self)
