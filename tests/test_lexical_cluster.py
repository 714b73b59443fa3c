"""cluster_adaptive: as many senses as the data holds (synthetic blobs with a known count), min sense size,
one centroid for a token with few samples, the cluster_samples ordering conventions."""

from __future__ import annotations

import numpy as np
import pytest

from sensekit.builder.lexical_cluster import CRITERIA, cluster_adaptive


def _tokens(blobs_per_token, n_per_token=60, d=64, seed=0, sep=4.0, noise=0.3):
    """CSR of tokens whose samples come from `b` well-separated blobs around a token-specific offset."""
    rng = np.random.default_rng(seed)
    rows = []
    for b in blobs_per_token:
        offset = rng.standard_normal(d)
        centres = offset + sep * rng.standard_normal((b, d))
        lab = np.arange(n_per_token) % b
        rows.append((centres[lab] + noise * rng.standard_normal((n_per_token, d))).astype(np.float32))
    indptr = np.r_[0, np.cumsum([len(r) for r in rows])]
    keys = np.arange(len(rows), dtype=np.int64) * 7 + 3
    return keys, indptr, np.concatenate(rows)


@pytest.mark.parametrize("criterion", CRITERIA)
def test_known_number_of_senses(criterion):
    truth = [1, 2, 3, 1, 2, 3, 3, 2, 1, 1]
    keys, indptr, x = _tokens(truth)
    res = cluster_adaptive(keys, indptr, x, 8, 3, min_sense_size=5, criterion=criterion)
    found = np.bincount(np.searchsorted(keys, res.sense_key), minlength=len(keys))
    assert found.tolist() == truth
    assert (res.sense_count >= 5).all()
    # counts add up, ordered by count within a key, sense_index a prefix 0..n-1
    for r, key in enumerate(keys):
        sel = res.sense_key == key
        assert res.sense_count[sel].sum() == indptr[r + 1] - indptr[r]
        assert (np.diff(res.sense_count[sel]) <= 0).all()
        assert res.sense_index[sel].tolist() == list(range(sel.sum()))


def test_few_samples_give_one_centroid_not_raw_samples():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, 8)).astype(np.float32) * 5  # 3 + 4 samples, min size 5 -> one sense each
    indptr = np.array([0, 3, 7])
    res = cluster_adaptive(np.array([10, 11]), indptr, x, 10, 2, min_sense_size=5)
    assert res.sense_key.tolist() == [10, 11] and res.sense_count.tolist() == [3, 4]
    np.testing.assert_allclose(res.centroids[0], x[:3].mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(res.centroids[1], x[3:].mean(0), rtol=1e-5, atol=1e-5)
    # contexts: 2 per sense, samples of their own token, nearest first
    assert len(res.ctx_sense) == 4
    assert set(res.ctx_sample[res.ctx_sense == 0]) <= {0, 1, 2}
    assert (np.diff(res.ctx_distance[res.ctx_sense == 1]) >= 0).all()


def test_min_sense_size_is_respected_and_centroids_are_member_means():
    # 3 blobs of sizes 40, 12, 4: with min size 10 the 4-point blob joins another sense
    rng = np.random.default_rng(2)
    d = 12
    centres = 6 * rng.standard_normal((3, d))
    lab = np.repeat([0, 1, 2], [40, 12, 4])
    x = (centres[lab] + 0.2 * rng.standard_normal((56, d))).astype(np.float32)
    res = cluster_adaptive(np.array([5]), np.array([0, 56]), x, 6, 56, min_sense_size=10, criterion="merge")
    assert (res.sense_count >= 10).all() and res.sense_count.sum() == 56
    assert len(res.sense_count) == 2
    for s in range(len(res.sense_count)):
        members = res.ctx_sample[res.ctx_sense == s]
        assert len(members) == res.sense_count[s]  # E = 56 keeps every member
        np.testing.assert_allclose(res.centroids[s], x[members].mean(0), rtol=1e-4, atol=1e-4)


def test_deterministic_and_float16_input():
    keys, indptr, x = _tokens([2, 3, 1], seed=3)
    a = cluster_adaptive(keys, indptr, x.astype(np.float16), 5, 2, min_sense_size=4, seed=1)
    b = cluster_adaptive(keys, indptr, x.astype(np.float16), 5, 2, min_sense_size=4, seed=1)
    np.testing.assert_array_equal(a.sense_count, b.sense_count)
    np.testing.assert_array_equal(a.ctx_sample, b.ctx_sample)
    assert a.centroids.dtype == np.float32


def test_empty_input_and_no_contexts():
    empty = cluster_adaptive(
        np.zeros(0, np.int64), np.zeros(1, np.int64), np.zeros((0, 8), np.float32), 5, 3, min_sense_size=2
    )
    assert len(empty.sense_key) == 0 and empty.centroids.shape == (0, 8) and len(empty.ctx_sense) == 0
    keys, indptr, x = _tokens([1, 3], seed=4)
    res = cluster_adaptive(keys, indptr, x, 5, 0, min_sense_size=3)
    assert len(res.ctx_sense) == 0 and len(res.sense_key) == 4


def test_contexts_follow_cluster_samples_conventions():
    keys, indptr, x = _tokens([2, 1, 3], seed=5)
    res = cluster_adaptive(keys, indptr, x, 6, 4, min_sense_size=5)
    # senses sorted by (key, index); contexts sorted by (sense, rank), ranks 0..E-1, nearest first
    assert (np.lexsort((res.sense_index, res.sense_key)) == np.arange(len(res.sense_key))).all()
    assert (np.lexsort((res.ctx_rank, res.ctx_sense)) == np.arange(len(res.ctx_sense))).all()
    for s in range(len(res.sense_key)):
        sel = res.ctx_sense == s
        assert res.ctx_rank[sel].tolist() == list(range(min(4, res.sense_count[s])))
        assert (np.diff(res.ctx_distance[sel]) >= 0).all()
        r = np.searchsorted(keys, res.sense_key[s])
        assert ((res.ctx_sample[sel] >= indptr[r]) & (res.ctx_sample[sel] < indptr[r + 1])).all()
