"""Neighbourhood quality: are a word's nearest senses (of other tokens) WordNet relatives of it?

A neighbour counts as related to a word when one of its base forms (the text itself, lower-cased,
and WordNet's morphy lemmas of it) is
- a base form of the word (the same lemma in another form: "Bank", "banks");
- a lemma of one of the word's synsets (a synonym);
- a lemma of a hypernym or hyponym of one of them (instance links included).
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["clean_word", "WordNetRelatives", "related_share"]

_ALPHA = re.compile(r"^[A-Za-z][A-Za-z'-]*$")
_POS = ("n", "v", "a", "r")


def clean_word(token_text: str) -> str | None:
    """A token's text as a word: stripped and lower-cased; None unless it is alphabetic."""
    w = token_text.strip()
    return w.lower() if _ALPHA.match(w) else None


class WordNetRelatives:
    """Cached WordNet look-ups: base forms of a text and the relatives of a word."""

    def __init__(self, wn) -> None:
        self.wn = wn
        self.base_forms = lru_cache(maxsize=None)(self._base_forms)
        self.relatives = lru_cache(maxsize=None)(self._relatives)

    def is_lemma(self, word: str) -> bool:
        return bool(self.wn.synsets(word))

    def _base_forms(self, word: str) -> frozenset[str]:
        forms = {word}
        for pos in _POS:
            m = self.wn.morphy(word, pos)
            if m:
                forms.add(m.lower())
        return frozenset(forms)

    def _relatives(self, word: str) -> frozenset[str]:
        """Base forms of the word, lemmas of its synsets and of their hypernyms and hyponyms (lower case)."""
        names = set(self.base_forms(word))
        for base in self.base_forms(word):
            for s in self.wn.synsets(base):
                linked = [s] + s.hypernyms() + s.instance_hypernyms() + s.hyponyms() + s.instance_hyponyms()
                for t in linked:
                    names.update(lemma.name().lower() for lemma in t.lemmas() if "_" not in lemma.name())
        return frozenset(names)

    def related(self, word: str, other_text: str) -> bool:
        other = clean_word(other_text)
        return other is not None and not self.relatives(word).isdisjoint(self.base_forms(other))


def related_share(rel: WordNetRelatives, words: list[str], neighbour_texts: list[list[str]]) -> tuple[float, int]:
    """-> (share of all listed neighbours that are related to their word, number of neighbours judged)."""
    hits = total = 0
    for word, texts in zip(words, neighbour_texts):  # per sampled word (500), each with its 10 neighbours
        hits += sum(rel.related(word, t) for t in texts)
        total += len(texts)
    return (hits / total if total else float("nan")), total
