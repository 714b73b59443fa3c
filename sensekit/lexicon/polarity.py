"""Polarity normalisation (docs/method.md section 1, step 4).

A word that carries negating affixes is mapped to its base: strip the prefixes un, dis,
non, in, im, il, ir, anti, de, a, an and the suffixes less, free; when an *odd* number of
affixes is stripped and the base is a known word, the word becomes its base with polarity
-1. The relation sign (syn = +1, ant = -1) is multiplied by both words' polarities, so
syn(unhappy, sad) becomes ant(happy, sad).

The shortest chain of strips that reaches a known word wins (`unhappy` -> `happy`, one
strip). A base must keep at least `min_base_chars` characters, which keeps `an-t` or
`a-t` from being read as negations.
"""

from __future__ import annotations

from typing import Collection

__all__ = ["PREFIXES", "SUFFIXES", "strip_negation", "Polarizer"]

PREFIXES = ("anti", "non", "dis", "un", "in", "im", "il", "ir", "de", "an", "a")
SUFFIXES = ("less", "free")


def _strips(word: str, min_base_chars: int) -> list[tuple[str, str]]:
    """Every (stripped word, affix) one strip away from `word` (a hyphen after a prefix goes too)."""
    out = []
    low = word.lower()
    for p in PREFIXES:
        if low.startswith(p):
            rest = word[len(p) :]
            if rest.startswith("-"):
                rest = rest[1:]
            if len(rest) >= min_base_chars:
                out.append((rest, p + "-"))
    for s in SUFFIXES:
        if low.endswith(s):
            rest = word[: -len(s)]
            if rest.endswith("-"):
                rest = rest[:-1]
            if len(rest) >= min_base_chars:
                out.append((rest, "-" + s))
    return out


def strip_negation(
    word: str, known: Collection[str], *, max_strips: int = 2, min_base_chars: int = 3
) -> tuple[str, int, tuple[str, ...]]:
    """(base, polarity, affixes stripped). `(word, +1, ())` when no known base is reachable or an
    even number of strips was needed (`nonunhappy` stays itself: a double negation)."""
    frontier = [(word, ())]
    for depth in range(1, max_strips + 1):
        nxt = []
        for w, affixes in frontier:
            for rest, affix in _strips(w, min_base_chars):
                chain = affixes + (affix,)
                if rest in known and rest != word:
                    return (rest, -1, chain) if depth % 2 == 1 else (word, 1, ())
                nxt.append((rest, chain))
        frontier = nxt
    return word, 1, ()


class Polarizer:
    """Maps words to (base, polarity) against a fixed vocabulary, with a cache."""

    def __init__(self, known: Collection[str], *, max_strips: int = 2, min_base_chars: int = 3) -> None:
        self.known = known if isinstance(known, (set, frozenset, dict)) else set(known)
        self.max_strips = max_strips
        self.min_base_chars = min_base_chars
        self._cache: dict[str, tuple[str, int, tuple[str, ...]]] = {}

    def __call__(self, word: str) -> tuple[str, int, tuple[str, ...]]:
        hit = self._cache.get(word)
        if hit is None:
            hit = strip_negation(word, self.known, max_strips=self.max_strips, min_base_chars=self.min_base_chars)
            self._cache[word] = hit
        return hit
