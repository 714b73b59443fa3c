"""Clustering quality of the store's senses: B-cubed F1 on held-out WordNet occurrences, beside one sense per word.

The occurrences are `wordnet_pairs.heldout_occurrences` (a lemma inside a held-out example sentence of one
of its synsets, never read by the default corpus), for every lemma that is one token with senses in the
store (one sense or more: full coverage of the words with senses) and has at least `MIN_OCCURRENCES` of
them. Each occurrence goes to its nearest sense (`SenseTable.nearest`, in the store's space); the
assignment of a word's occurrences is compared with their synsets by B-cubed precision, recall and F1
(Bagga and Baldwin 1998; Amigo et al. 2009), averaged over words. The baseline puts every occurrence of a
word in one sense (recall 1): unsupervised sense induction rarely beats it (Mosolova et al. 2025).
Words split into dev and test halves by a hash of the word (`halves`); both are reported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .registry import Headline, Skip, StoreMetric, fmt, num, register

if TYPE_CHECKING:
    from .run import StoreRun

__all__ = ["bcubed", "grouped_bcubed", "MIN_OCCURRENCES"]

MIN_OCCURRENCES = 4  # a word is scored with at least this many held-out occurrences


def bcubed(pred, gold) -> tuple[float, float, float]:
    """(precision, recall, F1) of the clustering `pred` against the classes `gold` ([n] labels each)."""
    pred, gold = np.asarray(pred), np.asarray(gold)
    if len(pred) == 0:
        return float("nan"), float("nan"), float("nan")
    same_pred = pred[:, None] == pred[None, :]  # [n, n]
    same_gold = gold[:, None] == gold[None, :]
    both = (same_pred & same_gold).sum(1)  # [n] items sharing an item's cluster and class (itself included)
    p = float(np.mean(both / same_pred.sum(1)))
    r = float(np.mean(both / same_gold.sum(1)))
    return p, r, (2 * p * r / (p + r) if p + r > 0 else 0.0)


def grouped_bcubed(groups, pred, gold) -> np.ndarray:
    """[G, 3] (precision, recall, F1) per group (word), groups in sorted order."""
    groups = np.asarray(groups)
    order = np.argsort(groups, kind="stable")
    bounds = np.flatnonzero(np.diff(groups[order])) + 1
    pred, gold = np.asarray(pred), np.asarray(gold)
    return np.asarray([bcubed(pred[idx], gold[idx]) for idx in np.split(order, bounds)]).reshape(-1, 3)  # per word


# -- the registered store metric ------------------------------------------------------------
def _compute(run: "StoreRun") -> dict:
    from ..builder.wordnet_corpus import wordnet_synsets
    from .halves import dev_mask
    from .wordnet_pairs import heldout_occurrences

    wn = run.wordnet()
    run.teacher()
    words, ids = run.word_tokens()  # single-token words with senses (any number)
    token_of = dict(zip(words, ids.tolist()))
    occ = heldout_occurrences(wordnet_synsets(run.cfg.wordnet), wn, run.heldout_share)
    keep = [i for i, w in enumerate(occ.word) if w in token_of]
    counts: dict[str, int] = {}
    for i in keep:
        counts[occ.word[i]] = counts.get(occ.word[i], 0) + 1
    eligible = sorted(w for w, c in counts.items() if c >= MIN_OCCURRENCES)
    if not eligible:
        raise Skip(f"no word of the store has {MIN_OCCURRENCES} held-out WordNet occurrences")
    cap = min([c for c in (run.cfg.limit, run.cfg.purity_words) if c] or [len(eligible)])
    chosen = (
        set(eligible)
        if cap >= len(eligible)
        else set(np.random.default_rng(run.cfg.seed).choice(eligible, cap, replace=False))
    )
    keep = [i for i in keep if occ.word[i] in chosen]
    sentences = [occ.sentence[i] for i in keep]
    states, ok = run.states(sentences, [occ.start[i] for i in keep], [occ.end[i] for i in keep])  # [N, d], [N]
    word = np.asarray([occ.word[i] for i in keep])[ok]
    gold = np.asarray([occ.synset[i] for i in keep])[ok]
    tokens = np.asarray([token_of[w] for w in word], np.int64)
    pred = run.table.nearest(states[ok], tokens, run.to_space)  # [n] sense index within the word
    names, groups = np.unique(word, return_inverse=True)
    ours = grouped_bcubed(groups, pred, gold)  # [G, 3]
    one = grouped_bcubed(groups, np.zeros(len(pred), np.int64), gold)
    dev = dev_mask(names.tolist())
    multi = run.table.n_senses(np.asarray([token_of[w] for w in names], np.int64)) >= 2
    halves = {}
    for half, m in (("dev", dev), ("test", ~dev)):
        halves[half] = {
            "f1": num(ours[m, 2].mean()) if m.any() else None,
            "precision": num(ours[m, 0].mean()) if m.any() else None,
            "recall": num(ours[m, 1].mean()) if m.any() else None,
            "one_sense_f1": num(one[m, 2].mean()) if m.any() else None,
            "words": int(m.sum()),
            "occurrences": int(np.isin(groups, np.flatnonzero(m)).sum()),
        }
    return {
        "status": "ok",
        "halves": halves,
        "words_with_2_senses": int(multi.sum()),
        "coverage": {"scored": int(len(names)), "total": len(eligible), "sample_cap": int(cap)},
        "data": f"WordNet example sentences held out of the default corpus (share {run.heldout_share:g})",
        "note": (
            f"words: single tokens with senses and >= {MIN_OCCURRENCES} held-out occurrences (a seeded sample up "
            "to the cap); nearest sense vs synset, B-cubed averaged over words; dev and test halves by a hash of "
            "the word; baseline: one sense per word"
        ),
    }


def _rows(b: dict) -> list[tuple[str, str, str, str]]:
    d, t = b["halves"]["dev"], b["halves"]["test"]
    c = b["coverage"]
    return [
        (
            "clustering, B-cubed F1 (WordNet held-out examples; test / dev)",
            f"{fmt(t['f1'])} / {fmt(d['f1'])}",
            f"one sense per word {fmt(t['one_sense_f1'])} / {fmt(d['one_sense_f1'])}; P / R (test) "
            f"{fmt(t['precision'])} / {fmt(t['recall'])}",
            f"{c['scored']:,} words ({t['words']:,} test, {d['words']:,} dev; {b['words_with_2_senses']:,} with "
            f">= 2 senses), {t['occurrences'] + d['occurrences']:,} examples",
        )
    ]


def _headline(b: dict) -> list[Headline]:
    t = b["halves"]["test"]
    return [Headline("B-cubed F1 (test half)", t["f1"], t["one_sense_f1"], "one sense per word", b["data"])]


register(StoreMetric("bcubed", "clustering B-cubed (WordNet)", _compute, _rows, _headline))
