"""Dev and test halves of an evaluation set: a stable hash of each item's key, so every machine splits alike.

An item is on the dev half when the first byte of sha1(key, UTF-8) is even. The key is what must
not straddle the halves: the pair's text for WiC-style pairs (word TAB sentence1 TAB sentence2),
the lemma for per-word metrics (WSD, clustering), so a choice made on dev never saw a test word.
"""

from __future__ import annotations

import hashlib
from typing import Iterable

import numpy as np

__all__ = ["HALVES", "half_of", "dev_mask", "pair_keys"]

HALVES = ("dev", "test")


def half_of(key: str) -> str:
    """'dev' or 'test' for one item key."""
    return "dev" if hashlib.sha1(key.encode("utf-8")).digest()[0] % 2 == 0 else "test"


def dev_mask(keys: Iterable[str]) -> np.ndarray:
    """[N] bool: True where the key's item is on the dev half."""
    return np.asarray([half_of(k) == "dev" for k in keys], bool)


def pair_keys(words, sentences1, sentences2) -> list[str]:
    """The key of each WiC-style pair: word TAB sentence1 TAB sentence2 (the split docs/lexical.md uses)."""
    return [f"{w}\t{a}\t{b}" for w, a, b in zip(words, sentences1, sentences2)]
