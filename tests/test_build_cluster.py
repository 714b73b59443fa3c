"""Batched k-means against scikit-learn, the n <= k rule, empty clusters, determinism."""

from __future__ import annotations

import numpy as np
import torch
from conftest import clustered

from sensekit.builder.cluster import cluster_samples, kmeans_batched


def _data(R=40, n=120, d=24, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(R):
        centres = rng.standard_normal((int(rng.integers(3, 12)), d)) * 2
        rows.append(clustered(rng, centres, n // len(centres) + 1, noise=0.8)[:n])
    return np.stack(rows)


def test_batched_kmeans_matches_sklearn_inertia_within_1pct():
    from sklearn.cluster import KMeans

    X = _data()
    k = 6
    _, labels, inertia = kmeans_batched(
        torch.tensor(X), torch.ones(X.shape[:2], dtype=torch.bool), k, gen=torch.Generator().manual_seed(0)
    )
    ref = sum(KMeans(k, n_init="auto", random_state=i).fit(X[i]).inertia_ for i in range(len(X)))
    assert inertia.sum().item() <= 1.01 * ref
    # inertia is what the labels say it is
    c = torch.stack([torch.tensor(X[0][labels[0].numpy() == j]).mean(0) for j in range(k)])
    assert abs(((torch.tensor(X[0]) - c[labels[0]]) ** 2).sum().item() - inertia[0].item()) < 1e-2 * inertia[0].item()


def test_padding_is_ignored():
    X = _data(R=3, n=50)
    pad = np.concatenate([X, np.full((3, 30, X.shape[2]), 1e3, np.float32)], 1)  # far-away junk
    valid = torch.zeros(3, 80, dtype=torch.bool)
    valid[:, :50] = True
    c, labels, inertia = kmeans_batched(torch.tensor(pad), valid, 4, gen=torch.Generator().manual_seed(1))
    assert (labels[:, 50:] == -1).all() and (labels[:, :50] >= 0).all()
    assert c.abs().max() < 100  # no centre was pulled to the padding
    for r in range(3):
        x, lab = torch.tensor(X[r]), labels[r, :50]
        for j in lab.unique():
            torch.testing.assert_close(c[r, j], x[lab == j].mean(0), rtol=1e-4, atol=1e-4)
        assert abs(((x - c[r, lab]) ** 2).sum() - inertia[r]) < 1e-3 * inertia[r]


def _csr(rows: list[np.ndarray]):
    indptr = np.r_[0, np.cumsum([len(r) for r in rows])]
    return np.arange(len(rows)) * 10, indptr, np.concatenate(rows).astype(np.float16)


def test_cluster_samples_small_rows_duplicates_and_contexts():
    rng = np.random.default_rng(0)
    big = clustered(rng, rng.standard_normal((3, 8)) * 5, 20, noise=0.1)  # 60 points, 3 clear groups
    small = rng.standard_normal((2, 8)).astype(np.float32)  # n=2 <= k: raw vectors
    dup = np.repeat(rng.standard_normal((1, 8)), 12, 0).astype(np.float32)  # 12 identical points
    keys, indptr, vecs = _csr([big, small, dup])
    r = cluster_samples(keys, indptr, vecs, k=4, contexts_per_sense=3, seed=0)
    by_key = {k: np.flatnonzero(r.sense_key == k) for k in keys}
    assert r.sense_count[by_key[0]].sum() == 60
    assert len(by_key[0]) in (3, 4) and list(r.sense_count[by_key[0]]) == sorted(r.sense_count[by_key[0]], reverse=True)
    assert r.sense_index[by_key[0]].tolist() == list(range(len(by_key[0])))
    np.testing.assert_allclose(r.centroids[by_key[10]], vecs[60:62].astype(np.float32))
    assert r.sense_count[by_key[10]].tolist() == [1, 1]
    assert r.sense_count[by_key[20]].tolist() == [12]  # empty clusters dropped
    # contexts: <= E per sense, ranks 0.., sorted by distance, samples belong to the sense's key
    for s in range(len(r.sense_key)):
        m = r.ctx_sense == s
        assert r.ctx_rank[m].tolist() == list(range(m.sum())) and m.sum() <= 3
        assert np.all(np.diff(r.ctx_distance[m]) >= 0)
        owner = np.searchsorted(indptr, r.ctx_sample[m], side="right") - 1
        assert (keys[owner] == r.sense_key[s]).all()


def test_cluster_samples_is_deterministic_and_chunking_changes_only_the_draws():
    """Same inputs and seed: the same senses. Not bit-for-bit chunking invariant: rows are clustered chunk by
    chunk with one seeded generator, so another chunk_bytes (12 chunks of one row, or 3 of four, instead of one)
    draws other k-means++ seeds. The result is as good (inertia within 5%) and partitions the same samples.
    The build never sets chunk_bytes (a constant, not taken from the machine's memory), so stores do not
    depend on it."""
    from sensekit.builder.cluster import _length_chunks

    X = _data(R=12, n=40, d=8)
    keys, indptr, vecs = _csr(list(X))
    a = cluster_samples(keys, indptr, vecs, 5, 2, seed=3)
    b = cluster_samples(keys, indptr, vecs, 5, 2, seed=3)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    np.testing.assert_array_equal(a.ctx_sample, b.ctx_sample)
    lengths = np.diff(indptr)
    assert len(_length_chunks(lengths, 5, 8, 256 << 20)) == 1
    for chunk_bytes, n_chunks in ((1, 12), (60_000, 3)):
        assert len(_length_chunks(lengths, 5, 8, chunk_bytes)) == n_chunks
        c = cluster_samples(keys, indptr, vecs, 5, 2, seed=3, chunk_bytes=chunk_bytes)
        again = cluster_samples(keys, indptr, vecs, 5, 2, seed=3, chunk_bytes=chunk_bytes)
        np.testing.assert_array_equal(c.centroids, again.centroids)  # deterministic for a chunking
        for key in keys:  # every key's samples, all in its senses
            assert c.sense_count[c.sense_key == key].sum() == a.sense_count[a.sense_key == key].sum() == 40
        assert abs(c.inertia / a.inertia - 1) < 0.05


def test_clustering_does_not_depend_on_the_thread_count():
    """Given the same samples, k-means gives the same senses with 1 or 2 torch threads (the reduction order
    of its distance matmuls does not change its result here). Across machines, what differs is the teacher
    forward's last bits (CPU kernels, thread count): see docs/reliability.md, "Same seed, same tables"."""
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(60):
        c = rng.standard_normal((int(rng.integers(2, 8)), 128)) * 0.6
        rows.append(np.repeat(c, 60 // len(c) + 1, 0)[:60] + rng.standard_normal((60, 128)))
    keys, indptr, vecs = _csr(rows)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = cluster_samples(keys, indptr, vecs, 10, 8, seed=0)
        torch.set_num_threads(2)
        two = cluster_samples(keys, indptr, vecs, 10, 8, seed=0)
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(one.centroids, two.centroids)
    np.testing.assert_array_equal(one.sense_count, two.sense_count)
    np.testing.assert_array_equal(one.ctx_sample, two.ctx_sample)
