"""Sense purity against WordNet: do a word's stored senses split its example sentences the way
WordNet's synsets do?

Every WordNet example sentence belongs to one synset. For a word with at least 2 synsets and
4 examples that contain it, each occurrence goes to its nearest stored sense; the assignment
is compared with the synsets by the adjusted Rand index (chance = 0) and purity (the share of
occurrences whose sense's majority synset is their own).

Purity rises with the number of clusters, so the baseline keeps the cluster sizes: the same
assignment shuffled among the word's occurrences (a permutation test), averaged over rounds;
"one cluster" (every occurrence in one sense) is reported beside it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "purity",
    "adjusted_rand",
    "grouped_scores",
    "permuted_scores",
    "one_cluster_scores",
    "find_occurrence",
    "Occurrences",
    "collect_occurrences",
]

_WORD = re.compile(r"[A-Za-z]+(?:['-][A-Za-z]+)*")
_POS = {"s": "a"}  # morphy knows adjective satellites as adjectives


def purity(pred, gold) -> float:
    """Share of items whose predicted cluster's most common gold class is their own class."""
    pred, gold = np.asarray(pred), np.asarray(gold)
    if len(pred) == 0:
        return float("nan")
    _, p = np.unique(pred, return_inverse=True)
    _, g = np.unique(gold, return_inverse=True)
    table = np.zeros((p.max() + 1, g.max() + 1), np.int64)  # [clusters, classes]
    np.add.at(table, (p, g), 1)
    return float(table.max(1).sum() / len(pred))


def adjusted_rand(pred, gold) -> float:
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(np.asarray(gold), np.asarray(pred)))


def grouped_scores(groups: np.ndarray, pred: np.ndarray, gold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per group (word): (ARI [G], purity [G]) of pred against gold. groups [N] int, sorted or not."""
    groups = np.asarray(groups)
    order = np.argsort(groups, kind="stable")
    bounds = np.flatnonzero(np.diff(groups[order])) + 1
    ari, pur = [], []
    for idx in np.split(order, bounds):  # per word (hundreds), not per occurrence
        ari.append(adjusted_rand(pred[idx], gold[idx]))
        pur.append(purity(pred[idx], gold[idx]))
    return np.asarray(ari), np.asarray(pur)


def permuted_scores(
    groups: np.ndarray, pred: np.ndarray, gold: np.ndarray, seed: int = 0, rounds: int = 20
) -> tuple[float, float]:
    """Mean (ARI, purity) when each word's assignment is shuffled among its occurrences (same cluster sizes)."""
    rng = np.random.default_rng(seed)
    groups = np.asarray(groups)
    ari, pur = [], []
    for _ in range(rounds):
        # a random key sorted within each group permutes the predictions inside the group only
        key = np.lexsort((rng.random(len(groups)), groups))
        shuffled = np.empty_like(pred)
        shuffled[np.argsort(groups, kind="stable")] = pred[key]
        a, p = grouped_scores(groups, shuffled, gold)
        ari.append(a.mean())
        pur.append(p.mean())
    return float(np.mean(ari)), float(np.mean(pur))


def one_cluster_scores(groups: np.ndarray, gold: np.ndarray) -> tuple[float, float]:
    """Mean (ARI, purity) with every occurrence of a word in one cluster: ARI 0, purity = majority share."""
    a, p = grouped_scores(groups, np.zeros(len(groups), np.int64), gold)
    return float(a.mean()), float(p.mean())


def find_occurrence(sentence: str, lemma: str, pos: str | None, wn) -> tuple[int, int] | None:
    """Char span of the first word of `sentence` that is `lemma` or an inflection of it (WordNet's morphy)."""
    lemma = lemma.lower()
    for m in _WORD.finditer(sentence):
        w = m.group().lower()
        if w == lemma:
            return m.span()
        # morphy only for plausible inflections: it is the slow part
        if w[:2] == lemma[:2] and len(w) > len(lemma) - 2 and wn.morphy(w, _POS.get(pos, pos)) == lemma:
            return m.span()
    return None


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


def collect_occurrences(
    wn, words, min_synsets: int = 2, min_examples: int = 4, max_words: int | None = None
) -> Occurrences:
    """The WordNet examples of each word (lemma) that contain it, for words with at least
    `min_synsets` synsets and `min_examples` such examples spread over at least 2 synsets;
    stops after `max_words` such words."""
    out = Occurrences()
    kept = 0
    for word in words:  # per word, not per token
        if max_words is not None and kept >= max_words:
            break
        synsets = wn.synsets(word)
        if len(synsets) < min_synsets:
            continue
        out.candidates += 1
        found = []
        for s in synsets:
            for ex in s.examples():
                span = find_occurrence(ex, word, s.pos(), wn)
                if span is not None:
                    found.append((ex, span, s.name()))
        if len(found) < min_examples or len({f[2] for f in found}) < 2:
            continue
        kept += 1
        for ex, (a, b), name in found:
            out.word.append(word)
            out.sentence.append(ex)
            out.start.append(a)
            out.end.append(b)
            out.synset.append(name)
    return out
