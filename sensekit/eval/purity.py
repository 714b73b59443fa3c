"""Sense purity against WordNet: do a word's stored senses split its example sentences the way
WordNet's synsets do?

Every WordNet example sentence belongs to one synset. The registered metric uses only the
example sentences held out of the default corpus (sensekit/builder/wordnet_corpus.py
`is_heldout`), so a store built on WordNet has never read them. For a word with at least 2
synsets and 4 such examples that contain it, each occurrence goes to its nearest stored sense; the assignment
is compared with the synsets by the adjusted Rand index (chance = 0) and purity (the share of
occurrences whose sense's majority synset is their own).

Purity rises with the number of clusters, so the baseline keeps the cluster sizes: the same
assignment shuffled among the word's occurrences (a permutation test), averaged over rounds;
"one cluster" (every occurrence in one sense) is reported beside it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

from .items import Occurrences, find_occurrence
from .registry import Headline, Skip, StoreMetric, coverage, fmt, num, register

if TYPE_CHECKING:
    from .run import StoreRun

__all__ = [
    "purity",
    "adjusted_rand",
    "grouped_scores",
    "permuted_scores",
    "one_cluster_scores",
    "collect_occurrences",
]


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


def collect_occurrences(
    wn,
    words,
    min_synsets: int = 2,
    min_examples: int = 4,
    max_words: int | None = None,
    keep: Callable[[str], bool] | None = None,
) -> Occurrences:
    """The WordNet examples of each word (lemma) that contain it, for words with at least
    `min_synsets` synsets and `min_examples` such examples spread over at least 2 synsets;
    stops after `max_words` such words. `keep(sentence)`: only these examples (the held-out ones)."""
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
                if keep is not None and not keep(ex):
                    continue
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


# -- the registered store metric ------------------------------------------------------------
def _compute(run: "StoreRun") -> dict:
    wn = run.wordnet()
    run.teacher()
    words, ids = run.word_tokens()
    multi = run.table.n_senses(ids) >= 2
    words, ids = [w for w, m in zip(words, multi) if m], ids[multi]
    eligible = [i for i, w in enumerate(words) if len(wn.synsets(w)) >= 2]
    order = np.random.default_rng(run.cfg.seed).permutation(len(eligible))
    cap = min([c for c in (run.cfg.limit, run.cfg.purity_words) if c] or [len(eligible)])
    from ..builder.wordnet_corpus import is_heldout

    share = run.heldout_share  # only the example sentences the default corpus never reads
    occ = collect_occurrences(
        wn, [words[eligible[i]] for i in order], max_words=cap, keep=lambda sentence: is_heldout(sentence, share)
    )
    token_of = dict(zip(words, ids.tolist()))
    tokens = np.asarray([token_of[w] for w in occ.word], np.int64)
    states, ok = run.states(occ.sentence, occ.start, occ.end)
    word_id = np.unique(np.asarray(occ.word), return_inverse=True)[1].ravel() if len(occ) else np.zeros(0, np.int64)
    gold = np.unique(np.asarray(occ.synset), return_inverse=True)[1].ravel() if len(occ) else np.zeros(0, np.int64)
    # a word keeps its place only with >= 4 located states over >= 2 synsets
    keep = ok.copy()
    for w in np.unique(word_id[ok]):
        sel = ok & (word_id == w)
        if sel.sum() < 4 or len(np.unique(gold[sel])) < 2:
            keep &= word_id != w
    pred = run.table.nearest(states[keep], tokens[keep], run.to_space)
    g, y = word_id[keep], gold[keep]
    if len(g) == 0:
        raise Skip(
            f"no word of the store had 4 located held-out WordNet examples over 2 synsets (share {share:g}; "
            "a small store has few words with 2+ senses)"
        )
    ari, pur = grouped_scores(g, pred, y)
    p_ari, p_pur = permuted_scores(g, pred, y, run.cfg.seed)
    o_ari, o_pur = one_cluster_scores(g, y)
    return {
        "status": "ok",
        "ari": num(ari.mean()),
        "purity": num(pur.mean()),
        "coverage": {**coverage(len(ari), len(eligible)), "occurrences": int(len(g)), "sample_cap": int(cap)},
        "data": f"WordNet example sentences held out of the default corpus (share {share:g})",
        "baseline": {
            "method": "each word's sense assignment shuffled among its occurrences (same cluster sizes), 20 rounds",
            "ari": num(p_ari),
            "purity": num(p_pur),
        },
        "one_cluster": {"ari": num(o_ari), "purity": num(o_pur)},
        "senses_used_per_word": num(np.mean([len(np.unique(pred[g == w])) for w in np.unique(g)])),
        "note": (
            "words: single tokens with >= 2 senses and >= 2 WordNet synsets (eligible), a seeded sample up to "
            "the cap; scored when >= 4 held-out examples containing the word span >= 2 synsets (the default "
            "corpus never reads them)"
        ),
    }


def _rows(p: dict) -> list[tuple[str, str, str, str]]:
    c = p["coverage"]
    return [
        (
            "sense purity (WordNet held-out examples): ARI / purity",
            f"{fmt(p['ari'])} / {fmt(p['purity'])}",
            f"shuffled {fmt(p['baseline']['ari'])} / {fmt(p['baseline']['purity'])}; one cluster "
            f"{fmt(p['one_cluster']['purity'])}",
            f"{c['scored']:,} words of {c['total']:,} eligible "
            f"(sample cap {c['sample_cap']:,}), {c['occurrences']:,} examples",
        )
    ]


def _headline(p: dict) -> list[Headline]:
    return [Headline("sense purity ARI", p["ari"], p["baseline"]["ari"], "shuffled", p["data"])]


register(StoreMetric("purity", "sense purity (WordNet)", _compute, _rows, _headline))
