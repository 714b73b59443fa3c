"""The WSD and B-cubed store metrics: their arithmetic, the WordNet items, and both run in `eval store`."""

from __future__ import annotations

import numpy as np
import pytest
from test_eval_heldout import nltk_wordnet, wordnet_here  # noqa: F401
from test_eval_store import bos_teacher, bos_teacher_dir, eval_files, eval_store  # noqa: F401

from sensekit.eval.bcubed import bcubed, grouped_bcubed
from sensekit.eval.wsd import segment_argmax


def test_bcubed_by_hand():
    # gold {a, a, b}; clusters {0, 0, 0}: precision 5/9 (2/3, 2/3, 1/3), recall 1
    p, r, f = bcubed([0, 0, 0], ["a", "a", "b"])
    assert (p, r) == pytest.approx((5 / 9, 1.0)) and f == pytest.approx(2 * p * r / (p + r))
    assert bcubed([1, 1, 2], ["a", "a", "b"]) == (1.0, 1.0, 1.0)
    p, r, _ = bcubed([0, 1, 2], ["a", "a", "b"])  # singletons: precision 1, recall (1/2 + 1/2 + 1) / 3
    assert (p, r) == pytest.approx((1.0, 2 / 3))
    per_word = grouped_bcubed([1, 0, 1, 0], [0, 0, 5, 7], ["x", "x", "y", "z"])
    assert per_word[0].tolist() == [1.0, 1.0, 1.0] and per_word[1, 0] == 1.0  # word 0, then word 1


def test_segment_argmax():
    scores = np.array([0.1, 0.9, 0.3, 5.0, -1.0, 2.0, 2.0])
    assert segment_argmax(scores, np.array([3, 2, 2])).tolist() == [1, 0, 0]  # a tie: the first (WordNet order)


def test_wsd_items_are_the_ambiguous_heldout_occurrences(wordnet_here):  # noqa: F811
    """6,387 occurrences at share 0.2; WordNet's first sense and a random choice as measured outside the project."""
    from sensekit.builder.wordnet_corpus import wordnet_synsets
    from sensekit.eval.wsd import wsd_items
    from sensekit.lexicon.wordnet import open_wordnet

    items = wsd_items(wordnet_synsets(), open_wordnet(), 0.2)
    assert len(items) == 6387 and all(len(c) >= 2 and g in c for c, g in zip(items.candidates, items.gold))
    first = np.mean([c[0] == g for c, g in zip(items.candidates, items.gold)])
    assert round(first, 3) == 0.342 and round(np.mean([1 / len(c) for c in items.candidates]), 3) == 0.283
    assert 0.4 < items.dev.mean() < 0.6 and all(len(c) == len(n) for c, n in zip(items.candidates, items.counts))
    by_word = {}
    for w, d in zip(items.words, items.dev):
        by_word.setdefault(w, set()).add(bool(d))
    assert all(len(v) == 1 for v in by_word.values())  # a lemma lies on one half


def test_wsd_and_bcubed_run_in_eval_store(eval_store, bos_teacher, wordnet_here):  # noqa: F811
    from sensekit.cli.eval import store_rows
    from sensekit.eval.config import EvalConfig
    from sensekit.eval.store_eval import evaluate_store

    cfg = EvalConfig(store=str(eval_store), metrics=("wsd", "bcubed"), limit=300, device="cpu")
    r = evaluate_store(cfg, teacher=bos_teacher)
    w = r["metrics"]["wsd"]
    assert w["status"] == "ok", w
    assert w["occurrences"]["all"] == 300 and w["occurrences"]["dev"] + w["occurrences"]["test"] == 300
    m = w["methods"]
    for name in ("gloss_prototypes", "gloss_prototypes_prior", "first_sense", "random"):
        assert 0.0 <= m[name]["dev"] <= 1.0 and 0.0 <= m[name]["test"] <= 1.0
    assert m["random"]["test"] < 0.5 and m["gloss_prototypes_prior"]["prior_weight"] >= 0.0
    b = r["metrics"]["bcubed"]
    if b["status"] == "ok":  # the tiny store knows few WordNet words
        for half in ("dev", "test"):
            h = b["halves"][half]
            assert h["f1"] is None or (0.0 <= h["f1"] <= 1.0 and h["recall"] <= 1.0)
    rows = [row[0] for row in store_rows(r)]
    assert any(x.startswith("WSD") for x in rows) and any("B-cubed" in x or "clustering" in x for x in rows)


def test_store_method_scores_by_hand():
    """Five items (dev: 0 and 2), the store naming no candidate on items 1 and 3: the fallback rows fill
    in the first sense (right on item 1), the prior weight is the one best on dev (a tie: the smaller),
    and the covered rows score only items 0, 2 and 4."""
    from sensekit.eval.wsd import WsdItems, store_method_scores

    words = list("abcde")
    items = WsdItems(
        words,
        [""] * 5,
        np.zeros(5, np.int64),
        np.zeros(5, np.int64),
        ["a1", "b1", "c1", "d2", "e1"],
        [[w + "1", w + "2"] for w in words],
        [[1, 1]] * 5,
        np.array([True, False, True, False, False]),
    )
    chosen = {
        0.0: ["a1", None, "c2", None, "e1"],
        1.0: ["a1", None, "c1", None, "e2"],
        2.0: ["a1", None, "c1", None, "e1"],  # as good as 1.0 on dev
    }
    got = store_method_scores("store", chosen, items, gloss=["a2", "b2", "c1", "d2", "e2"])
    assert got["store"] == {"dev": 0.5, "test": 0.6667}  # rounded to 4 places, as every reported figure
    assert got["store_prior"] == {"dev": 1.0, "test": 0.3333, "prior_weight": 1.0}
    covered = got["store_covered"]
    assert covered["items"] == {"dev": 2, "test": 1}
    assert covered["store"] == {"dev": 0.5, "test": 1.0} and covered["store_prior"] == {"dev": 1.0, "test": 0.0}
    assert covered["first_sense"] == {"dev": 1.0, "test": 1.0}
    assert covered["gloss_prototypes_prior"] == {"dev": 0.5, "test": 0.0}
