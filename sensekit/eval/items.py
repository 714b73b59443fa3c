"""What the store metrics share, below all of them: word cleaning, occurrences of a lemma in a
sentence, WiC items and the WiC file reader. The held-out pairs built from these live beside it
(`wordnet_pairs`). A metric module imports from here, never from another metric; the run context
(`run.StoreRun`) imports no metric at all (both are import-linter contracts in pyproject.toml).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..builder.wordnet_corpus import find_occurrence  # the build finds tagged occurrences the same way
from ..errors import InputError

__all__ = ["clean_word", "find_occurrence", "Occurrences", "WicItems", "read_wic"]

_ALPHA = re.compile(r"^[A-Za-z][A-Za-z'-]*$")
_TRUE = {"true", "t", "1", "yes", "y", "same"}
_FALSE = {"false", "f", "0", "no", "n", "different"}


def clean_word(token_text: str) -> str | None:
    """A token's text as a word: stripped and lower-cased; None unless it is alphabetic."""
    w = token_text.strip()
    return w.lower() if _ALPHA.match(w) else None


@dataclass
class Occurrences:
    word: list[str] = field(default_factory=list)  # [N] the lemma
    sentence: list[str] = field(default_factory=list)  # [N] the WordNet example
    start: list[int] = field(default_factory=list)  # [N] char span of the lemma's occurrence
    end: list[int] = field(default_factory=list)
    synset: list[str] = field(default_factory=list)  # [N] the example's synset
    candidates: int = 0  # words with >= min_synsets synsets looked at

    def __len__(self) -> int:
        return len(self.word)


@dataclass
class WicItems:
    words: list[str]
    sentences1: list[str]
    sentences2: list[str]
    spans1: np.ndarray  # [N, 2] int64 char (start, end) in sentence1
    spans2: np.ndarray  # [N, 2]
    labels: np.ndarray  # [N] bool, True = same sense

    def __len__(self) -> int:
        return len(self.words)


def _label(value, where: str) -> bool:
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InputError(f"{where}: label {value!r} is not true/false or 1/0")


def read_wic(path: str | Path, limit: int | None = None) -> WicItems:
    """Read a WiC JSONL file (first `limit` items). Raises InputError for a malformed line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"WiC file {path} does not exist; pass --wic FILE (WiC JSONL)")
    need = ("word", "sentence1", "sentence2", "start1", "end1", "start2", "end2", "label")
    cols: dict[str, list] = {k: [] for k in need}
    with path.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            if limit is not None and len(cols["word"]) >= limit:
                break
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                raise InputError(f"{path}:{i} is not JSON; a WiC file has one JSON object per line") from None
            missing = [k for k in need if not isinstance(rec, dict) or k not in rec]
            if missing:
                raise InputError(f"{path}:{i} lacks {', '.join(missing)}; WiC lines need {', '.join(need)}")
            for k in need:
                cols[k].append(rec[k])
            cols["label"][-1] = _label(rec["label"], f"{path}:{i}")
            for s, a, b in (("sentence1", "start1", "end1"), ("sentence2", "start2", "end2")):
                if not (isinstance(rec[a], int) and isinstance(rec[b], int) and 0 <= rec[a] < rec[b] <= len(rec[s])):
                    raise InputError(f"{path}:{i}: offsets {a}/{b} = {rec[a]!r}/{rec[b]!r} are outside {s}")
    if not cols["word"]:
        raise InputError(f"WiC file {path} holds no items")
    return WicItems(
        [str(w) for w in cols["word"]],
        cols["sentence1"],
        cols["sentence2"],
        np.stack([cols["start1"], cols["end1"]], 1).astype(np.int64),
        np.stack([cols["start2"], cols["end2"]], 1).astype(np.int64),
        np.asarray(cols["label"], bool),
    )
