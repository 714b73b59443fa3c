"""Neighbourhood quality: are a word's nearest senses (of other tokens) WordNet relatives of it?

A neighbour counts as related to a word when one of its base forms (the text itself, lower-cased,
and WordNet's morphy lemmas of it) is
- a base form of the word (the same lemma in another form: "Bank", "banks");
- a lemma of one of the word's synsets (a synonym);
- a lemma of a hypernym or hyponym of one of them (instance links included).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from .items import clean_word
from .registry import Headline, Skip, StoreMetric, coverage, fmt, num, register

if TYPE_CHECKING:
    from .run import StoreRun

__all__ = ["WordNetRelatives", "related_share"]

_POS = ("n", "v", "a", "r")


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


# -- the registered store metric ------------------------------------------------------------
def _compute(run: "StoreRun") -> dict:
    if run.store.index is None:
        raise Skip("the store has no HNSW index")
    rel = WordNetRelatives(run.wordnet())
    words, ids = run.word_tokens()
    pool = [i for i, w in enumerate(words) if rel.is_lemma(w)]
    rng = np.random.default_rng(run.cfg.seed)
    n = min(run.cfg.limit or run.cfg.neighbour_words, run.cfg.neighbour_words, len(pool))
    sample = [words[pool[i]] for i in np.sort(rng.choice(len(pool), n, replace=False))] if n else []
    if not sample:
        raise Skip("no token with senses is a WordNet lemma")
    k = run.cfg.neighbours_k
    found = [run.store.neighbors(w, k=k) for w in sample]  # the index's own query path, one call per word
    texts = [[nb.text for nb in f] for f in found]
    dists = np.asarray([nb.distance for f in found for nb in f], np.float64)
    share, judged = related_share(rel, sample, texts)
    token_text = run.token_text()
    random_texts = [[token_text.get(int(t), "") for t in rng.choice(run.table.token_ids, k)] for _ in sample]
    base, base_judged = related_share(rel, sample, random_texts)
    return {
        "status": "ok",
        "related_share": num(share),
        "k": k,
        "coverage": {**coverage(len(sample), len(pool)), "neighbours_judged": judged},
        "baseline": {
            "method": f"{k} random tokens with senses per word, same words",
            "related_share": num(base),
            "neighbours_judged": base_judged,
        },
        "zero_distance_share": num(np.mean(dists < 1e-4)) if len(dists) else None,
        "mean_distance": num(dists.mean()) if len(dists) else None,
        "note": (
            "a seeded sample of tokens whose text is a lower-case WordNet lemma; related = same lemma in another "
            "form (morphy), synonym, hypernym or hyponym (cosine distance in the index's space)"
        ),
    }


def _rows(n: dict) -> list[tuple[str, str, str, str]]:
    return [
        (
            f"neighbours: WordNet-related share of top {n['k']}",
            fmt(n["related_share"]),
            f"random tokens {fmt(n['baseline']['related_share'])}",
            f"{n['coverage']['scored']:,} sampled of {n['coverage']['total']:,}",
        ),
        ("neighbours at distance < 1e-4", fmt(n["zero_distance_share"]), "0 expected", "-"),
    ]


def _headline(n: dict) -> list[Headline]:
    return [
        Headline(
            f"WordNet-related share of top {n['k']}",
            n["related_share"],
            n["baseline"]["related_share"],
            "random tokens",
            "WordNet",
        )
    ]


register(StoreMetric("neighbours", "neighbourhood quality", _compute, _rows, _headline))
