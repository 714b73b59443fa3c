"""The store metrics on tiny inputs with hand-checked answers: WiC, word similarity, purity/ARI,
the duplicate counter, raw tokens, anisotropy, the sense table, and WordNet relatedness."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sensekit.errors import InputError
from sensekit.eval.health import anisotropy, duplicate_senses, raw_tokens
from sensekit.eval.purity import adjusted_rand, grouped_scores, one_cluster_scores, permuted_scores, purity
from sensekit.eval.senses import SenseTable
from sensekit.eval.similarity import pair_similarities, read_pairs, spearman
from sensekit.eval.wic import fit_threshold, read_wic, threshold_baseline, wic_accuracy


# -- word in context --------------------------------------------------------------------------
def _wic_file(tmp_path, rows):
    path = tmp_path / "wic.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


WIC4 = [
    {
        "word": "bank",
        "sentence1": "the bank of the river",
        "sentence2": "money at the bank",
        "start1": 4,
        "end1": 8,
        "start2": 13,
        "end2": 17,
        "label": "false",
    },
    {
        "word": "bat",
        "sentence1": "a bat flew out",
        "sentence2": "a bat flew in",
        "start1": 2,
        "end1": 5,
        "start2": 2,
        "end2": 5,
        "label": "true",
    },
    {
        "word": "light",
        "sentence1": "turn on the light",
        "sentence2": "the box was light",
        "start1": 12,
        "end1": 17,
        "start2": 12,
        "end2": 17,
        "label": "F",
    },
    {
        "word": "spring",
        "sentence1": "in the spring",
        "sentence2": "spring flowers",
        "start1": 7,
        "end1": 13,
        "start2": 0,
        "end2": 6,
        "label": 1,
    },
]


def test_wic_file_and_accuracy_by_hand(tmp_path):
    items = read_wic(_wic_file(tmp_path, WIC4))
    assert items.words == ["bank", "bat", "light", "spring"]
    assert items.labels.tolist() == [False, True, False, True]
    assert items.spans1.tolist() == [[4, 8], [2, 5], [12, 17], [7, 13]]
    assert items.sentences1[0][4:8] == "bank" and items.sentences2[3][0:6] == "spring"
    # predicted "same" for pairs 1, 2: pair 1 (same, label True) right, pair 2 (same, label False) wrong,
    # pair 0 (different, label False) right, pair 3 (different, label True) wrong -> 2 / 4
    assert wic_accuracy(np.array([0, 1, 2, 0]), np.array([1, 1, 2, 1]), items.labels) == 0.5
    assert len(read_wic(_wic_file(tmp_path, WIC4), limit=2)) == 2


@pytest.mark.parametrize(
    "row, message",
    [
        (
            {"word": "x", "sentence1": "x", "sentence2": "x", "start1": 0, "end1": 1, "start2": 0, "end2": 1},
            "lacks label",
        ),
        ({**WIC4[0], "end1": 99}, "outside sentence1"),
        ({**WIC4[0], "label": "maybe"}, "not true/false"),
    ],
)
def test_wic_file_errors_are_one_line(tmp_path, row, message):
    with pytest.raises(InputError, match=message):
        read_wic(_wic_file(tmp_path, [row]))


def test_threshold_is_fitted_on_one_half_and_scored_on_the_other():
    # separable scores: "same" pairs have cosine >= 0.8, "different" ones <= 0.3
    scores = np.array([0.9, 0.85, 0.8, 0.95, 0.1, 0.2, 0.3, 0.25])
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)
    t = fit_threshold(scores, labels)
    assert 0.3 < t <= 0.8
    r = threshold_baseline(scores, labels, seed=0)
    assert r["accuracy"] == 1.0 and r["scored"] == 8 and r["fit"] == 4
    # the best threshold on [0.1, 0.2 | 0.6] with labels [F, F, T] sits between 0.2 and 0.6
    assert fit_threshold(np.array([0.1, 0.6, 0.2]), np.array([0, 1, 0], bool)) == pytest.approx(0.4)
    # a threshold never sees the half it scores: with random labels the two-fold accuracy stays near chance
    rng = np.random.default_rng(0)
    r = threshold_baseline(rng.random(400), rng.random(400) < 0.5, seed=0)
    assert 0.4 < r["accuracy"] < 0.6


# -- word similarity ----------------------------------------------------------------------------
def test_similarity_file_with_header_and_comments(tmp_path):
    path = tmp_path / "sim.tsv"
    path.write_text("# a comment\nWord 1\tWord 2\tHuman (mean)\nold\tnew\t1.58\nsmart\tintelligent\t9.2\n")
    w1, w2, gold = read_pairs(path)
    assert w1 == ["old", "smart"] and w2 == ["new", "intelligent"] and gold.tolist() == [1.58, 9.2]
    path.write_text("old new 1.5\nsmart clever nine\n")
    with pytest.raises(InputError, match="not a number"):
        read_pairs(path)


def test_five_pairs_with_known_ranks(tmp_path):
    # word A is e0; word B of pair i sits at angle theta_i from e0, so its cosine is cos(theta_i)
    angles = np.array([0.1, 1.2, 0.5, 1.5, 0.8])  # cosines rank: 1, 4, 2, 5, 3 (1 = most similar)
    gold = np.array([9.0, 3.0, 7.0, 1.0, 5.0])  # human ranks agree exactly
    a = np.zeros((5, 1, 2))
    a[:, 0, 0] = 1.0
    b = np.stack([np.cos(angles), np.sin(angles)], 1)[:, None, :]
    m = np.ones((5, 1), bool)
    sims = pair_similarities(a, m, b, m)
    assert sims["maxsim"] == pytest.approx(np.cos(angles))
    assert spearman(sims["maxsim"], gold) == pytest.approx(1.0)
    assert spearman(sims["centroid"], -gold) == pytest.approx(-1.0)
    # swap two ranks: rho = 1 - 6 * sum(d^2) / (n (n^2 - 1)) = 1 - 6 * 2 / 120 = 0.9
    assert spearman(sims["maxsim"], np.array([9.0, 3.0, 5.0, 1.0, 7.0])) == pytest.approx(0.9)


def test_maxsim_avgsim_centroid_by_hand():
    e = np.eye(3)
    a = np.stack([np.stack([e[0], e[1]])])  # senses x, y
    b = np.stack([np.stack([e[0], e[2]])])  # senses x, z
    m = np.ones((1, 2), bool)
    sims = pair_similarities(a, m, b, m)
    assert sims["maxsim"][0] == pytest.approx(1.0)  # x . x
    assert sims["avgsim"][0] == pytest.approx(0.25)  # (1 + 0 + 0 + 0) / 4
    # centroids (x + y) / 2 and (x + z) / 2: cosine 1/2
    assert sims["centroid"][0] == pytest.approx(0.5)
    # a masked-out sense is ignored; no sense at all gives NaN
    sims = pair_similarities(a, np.array([[True, False]]), b, np.array([[False, True]]))
    assert sims["maxsim"][0] == pytest.approx(0.0) and sims["avgsim"][0] == pytest.approx(0.0)
    assert np.isnan(pair_similarities(a, np.zeros((1, 2), bool), b, m)["maxsim"][0])


# -- purity and ARI -------------------------------------------------------------------------------
def test_purity_and_ari_by_hand():
    # clusters {0,1} -> gold a,a (2 right); {2,3,4} -> gold b,b,a (2 right): purity 4/5
    assert purity([0, 0, 1, 1, 1], ["a", "a", "b", "b", "a"]) == pytest.approx(0.8)
    assert purity([5, 5, 5], ["x", "y", "z"]) == pytest.approx(1 / 3)
    assert adjusted_rand([0, 0, 1, 1], ["p", "p", "q", "q"]) == pytest.approx(1.0)
    # each cluster splits each class: sum C(n_ij, 2) = 0, expected index 2 * 2 / 6, max 2 -> ARI = -0.5
    assert adjusted_rand([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(-0.5)
    assert adjusted_rand([0, 0, 0, 0], [0, 1, 0, 1]) == pytest.approx(0.0)


def test_grouped_and_baseline_scores():
    groups = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    gold = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    pred = np.array([0, 0, 1, 1, 0, 1, 0, 1])  # word 0 perfect, word 1 crossed
    ari, pur = grouped_scores(groups, pred, gold)
    assert ari.tolist() == pytest.approx([1.0, -0.5]) and pur.tolist() == pytest.approx([1.0, 0.5])
    o_ari, o_pur = one_cluster_scores(groups, gold)
    assert o_ari == 0.0 and o_pur == pytest.approx(0.5)
    p_ari, p_pur = permuted_scores(groups, pred, gold, seed=0, rounds=50)
    # the shuffle keeps two clusters of two per word: purity between 0.5 and 1, ARI near chance
    assert 0.5 <= p_pur <= 1.0 and -0.5 <= p_ari < 0.5


# -- store health -----------------------------------------------------------------------------------
def _planted(rng):
    v = rng.standard_normal((300, 16)).astype(np.float32)
    tok = np.repeat(np.arange(100), 3)
    v[150] = v[3]  # exact copy, other token (1 vs 50): both duplicates
    v[8] = v[7]  # exact copy inside one token (2): not a duplicate
    v[200] = v[20] + 1e-6  # near copy, other token: both duplicates
    v[250] = 3.0 * v[40]  # same direction, other token: cosine 1, both duplicates
    return v, tok, {3, 150, 20, 200, 40, 250}


def test_duplicate_counter_finds_planted_duplicates():
    v, tok, planted = _planted(np.random.default_rng(0))
    dup = duplicate_senses(v, tok)
    assert set(np.nonzero(dup)[0].tolist()) == planted


def test_duplicate_counter_with_a_knn_function():
    v, tok, planted = _planted(np.random.default_rng(1))
    u = v / np.linalg.norm(v, axis=1, keepdims=True)
    calls = []

    def knn(q, k):  # brute force on raw queries, as the index would answer (in its own space)
        calls.append(len(q))
        sims = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ u.T
        return np.argsort(-sims, axis=1)[:, :k]

    import sensekit.eval.health as health

    old, health.EXACT_LIMIT = health.EXACT_LIMIT, 10  # force the knn path
    try:
        dup = duplicate_senses(v, tok, knn=knn, k=4)
    finally:
        health.EXACT_LIMIT = old
    assert set(np.nonzero(dup)[0].tolist()) == planted
    assert calls == [298]  # one query per distinct row (v[8] = v[7], v[150] = v[3])


def test_raw_tokens_and_anisotropy():
    # token 0: counts 1+1 (raw with k=3), token 1: 5+4+3 (clustered), token 2: 3 (raw)
    assert raw_tokens(np.array([0, 2, 5, 6]), np.array([1, 1, 5, 4, 3, 3]), k=3).tolist() == [True, False, True]
    rng = np.random.default_rng(0)
    shared = np.zeros(64, np.float32)
    shared[0] = 10.0
    v = shared + rng.standard_normal((500, 64)).astype(np.float32)
    # one common dimension of size 10 over unit noise in 64: cos ~ 100 / (100 + 64)
    assert anisotropy(v, 5000, seed=0) == pytest.approx(100 / 164, abs=0.03)
    assert abs(anisotropy(v, 5000, seed=0, centre=True)) < 0.05
    assert abs(anisotropy(rng.standard_normal((500, 64)), 5000, seed=1)) < 0.05


# -- the sense table ---------------------------------------------------------------------------------
def test_sense_table_nearest_and_padding():
    e = np.eye(4, dtype=np.float32)
    # token 7: senses e0, e1; token 3: sense e2; given out of order
    table = SenseTable.from_arrays(
        np.array([7, 3, 7]), np.array([1, 0, 0]), np.stack([e[1], e[2], e[0]]), np.array([2, 1, 4])
    )
    assert table.token_ids.tolist() == [3, 7] and table.n_senses([7, 3, 9]).tolist() == [2, 1, 0]
    states = np.stack([e[1] + 0.1 * e[0], e[0], e[3], e[2]])
    assert table.nearest(states, [7, 7, 9, 3]).tolist() == [1, 0, -1, 0]
    block, mask = table.padded([3, 7])
    assert block.shape == (2, 2, 4) and mask.tolist() == [[True, False], [True, True]]
    # a similarity space is applied to both sides: dropping dimension 1 makes e0 nearest for the first state
    drop1 = lambda x: x * np.array([1, 0, 1, 1], np.float32)  # noqa: E731
    assert table.nearest(states[:1], [7], to_space=drop1).tolist() == [0]


# -- WordNet relatedness and occurrences (shared data) -------------------------------------------------
def test_wordnet_relatives_and_occurrences(shared):
    from sensekit.eval.neighbours import WordNetRelatives
    from sensekit.eval.purity import find_occurrence
    from sensekit.lexicon.wordnet import open_wordnet

    wn = open_wordnet()
    rel = WordNetRelatives(wn)
    assert rel.related("dog", " puppy") and rel.related("dog", " canine")  # hyponym, hypernym
    assert rel.related("bank", " banks") and rel.related("bank", " Bank")  # same lemma, another form
    assert rel.related("car", " automobile")  # synonym
    assert not rel.related("dog", "com") and not rel.related("bank", " parasite")
    assert find_occurrence("They rode the horses home.", "horse", "n", wn) == (14, 20)
    assert find_occurrence("The bank was closed.", "bank", "n", wn) == (4, 8)
    assert find_occurrence("Nothing here.", "bank", "n", wn) is None


def test_sense_probabilities_are_annotates_softmax_over_each_tokens_own_senses():
    """Token 7 has two senses, token 9 one: each row is a distribution over its own token's senses only."""
    table = SenseTable.from_arrays(
        owner=np.array([7, 7, 9]),
        sense_index=np.array([0, 1, 0]),
        vectors=np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
        counts=np.array([3, 2, 4]),
    )
    states = np.array([[1.0, 0.2], [0.3, 1.0], [5.0, -1.0]])
    p = table.probabilities(states, [7, 7, 9], temperature=0.1)  # [3, K=2]
    cos = states[:2] @ np.eye(2) / np.linalg.norm(states[:2], axis=1, keepdims=True)  # [2, 2] to the unit senses
    want = np.exp(cos / 0.1) / np.exp(cos / 0.1).sum(1, keepdims=True)
    assert p[:2] == pytest.approx(want)
    assert p[2] == pytest.approx([1.0, 0.0])  # one sense: certain, padding 0


def test_two_fold_chooses_each_folds_best_candidate_on_its_fitting_half():
    """Labels that one scoring separates and another does not: both folds choose the separating one and
    score every pair right; with the useless candidate alone, accuracy falls to chance."""
    from sensekit.eval.wic import two_fold

    rng = np.random.default_rng(1)
    y = rng.random(200) < 0.5
    useful = np.where(y, 0.8, 0.2) + rng.normal(0, 0.05, 200)
    noise = rng.random(200)
    r = two_fold({"noise": noise, "useful": useful}, y, seed=0)
    assert r["chosen"] == ["useful", "useful"] and r["accuracy"] == 1.0 and r["scored"] == 200
    assert two_fold({"noise": noise}, y, seed=0)["accuracy"] < 0.65
    assert threshold_baseline(useful, y, seed=0)["accuracy"] == 1.0
