"""Per-token reservoirs: exact Algorithm R semantics, uniformity, checkpoints, weighted merge."""

from __future__ import annotations

import numpy as np
import pytest

from sensekit.builder.reservoir import Reservoir, SampleSet, merge_samples, reservoir_bytes


def _feed(r: Reservoir, keys: np.ndarray, values: np.ndarray, batch: int) -> None:
    for s in range(0, len(keys), batch):
        k = keys[s : s + batch]
        sel, dest = r.admit(k)
        v = values[s : s + batch]
        r.write(dest, v[sel][:, None].astype(np.float16), np.stack([v[sel], v[sel], v[sel]], 1))


def _sequential(keys: np.ndarray, u: np.ndarray, G: int) -> dict[int, list[int]]:
    """Textbook Algorithm R, one item at a time, with the same uniform draws."""
    res: dict[int, list] = {}
    n: dict[int, int] = {}
    for i, (k, ui) in enumerate(zip(keys.tolist(), u.tolist())):
        n[k] = n.get(k, 0) + 1
        slots = res.setdefault(k, [])
        if n[k] <= G:
            slots.append(i)
        else:
            j = min(int(ui * n[k]), n[k] - 1)
            if j < G:
                slots[j] = i
    return res


@pytest.mark.parametrize("batch", [1, 7, 64, 1000])
def test_vectorised_admit_equals_sequential_algorithm_r(batch):
    rng = np.random.default_rng(3)
    keys = rng.integers(0, 12, 1000)  # many repeats of a key inside one batch
    G = 5
    r = Reservoir(12, 1, G, seed=11)
    draws = Reservoir(12, 1, G, seed=11).rng.random(1000)  # the draws admit() will consume, in order
    # admit() draws one uniform per position per batch; concatenated they are the same stream
    _feed(r, keys, np.arange(1000), batch)
    ref = _sequential(keys, draws, G)
    s = r.export()
    assert s.keys.tolist() == sorted(ref)
    for i, k in enumerate(s.keys.tolist()):
        got = s.meta[s.indptr[i] : s.indptr[i + 1], 0].tolist()
        assert got == ref[k]
        assert s.counts[i] == (keys == k).sum()


def test_reservoir_is_uniform():
    """Chi-square over 4000 runs: every item of a 60-long stream is kept with probability G/60."""
    G, N, T = 5, 60, 4000
    hits = np.zeros(N)
    for t in range(T):
        r = Reservoir(2, 1, G, seed=t)
        _feed(r, np.zeros(N, np.int64), np.arange(N), 13)
        hits[r.export().meta[:, 0]] += 1
    expected = T * G / N
    chi2 = ((hits - expected) ** 2 / expected).sum()
    assert chi2 < 95.0, chi2  # df = 59: p ~ 0.002


def test_checkpoint_round_trip_continues_identically(tmp_path):
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 30, 3000)
    a = Reservoir(30, 1, 8, seed=5)
    _feed(a, keys[:1500], np.arange(1500), 100)
    a.save(tmp_path)
    b = Reservoir.load(tmp_path)
    _feed(a, keys[1500:], np.arange(1500, 3000), 100)
    _feed(b, keys[1500:], np.arange(1500, 3000), 100)
    sa, sb = a.export(), b.export()
    for name in ("keys", "counts", "indptr", "vectors", "meta"):
        np.testing.assert_array_equal(getattr(sa, name), getattr(sb, name))


def test_memory_is_allocated_in_blocks():
    r = Reservoir(50_000, 16, 50, seed=0)
    _feed(r, np.arange(1000), np.arange(1000), 1000)  # 1000 keys seen once
    assert len(r.vectors) < 1000 * 50 / 4  # not 50 slots per key
    assert reservoir_bytes(49_152, 50, 576, None) > 2 * 2**30
    assert reservoir_bytes(49_152, 50, 576, 100_000) < 2**30


def _sample_set(counts: list[int], G: int, base: int) -> SampleSet:
    """Key 0 seen counts[i] times... one key per entry, item ids base + position."""
    keys = np.arange(len(counts))
    lengths = np.minimum(counts, G)
    indptr = np.r_[0, np.cumsum(lengths)]
    meta = np.zeros((indptr[-1], 3), np.int64)
    meta[:, 0] = base + np.arange(indptr[-1])
    return SampleSet(keys, np.asarray(counts), indptr, meta[:, :1].astype(np.float16).repeat(2, 1), meta)


def test_weighted_merge_is_uniform_over_both_streams():
    """Side a saw 90 items of key 0 (and kept a uniform 10), side b saw 10: the merged 10
    should hold on average 9 from a and 1 from b, each item equally likely."""
    G, T = 10, 3000
    from_a = 0
    for t in range(T):
        rng = np.random.default_rng(t)
        a = Reservoir(1, 1, G, seed=t)
        _feed(a, np.zeros(90, np.int64), np.arange(90), 30)
        b = Reservoir(1, 1, G, seed=10_000 + t)
        _feed(b, np.zeros(10, np.int64), np.arange(1000, 1010), 30)
        m = merge_samples(a.export(), b.export(), G, rng)
        assert m.counts.tolist() == [100] and m.lengths.tolist() == [10]
        from_a += int((m.meta[:, 0] < 1000).sum())
    assert abs(from_a / T - 9.0) < 0.1


def test_merge_keys_on_one_side_only_and_small_counts():
    a = _sample_set([3, 0 + 1], 5, 0)
    b = SampleSet(
        np.array([1, 2]), np.array([2, 7]), np.array([0, 2, 7]), np.zeros((7, 2), np.float16), np.full((7, 3), 500)
    )
    m = merge_samples(a, b, 5, np.random.default_rng(0))
    assert m.keys.tolist() == [0, 1, 2]
    assert m.counts.tolist() == [3, 3, 7]
    assert m.lengths.tolist() == [3, 3, 5]


def test_states_shared_by_different_keys_are_dropped():
    from sensekit.builder.reservoir import SampleSet

    rng = np.random.default_rng(0)
    base = rng.standard_normal((6, 16)).astype(np.float16)
    near = (base[4].astype(np.float32) * (1 + 1e-4)).astype(np.float16)  # the same state up to rounding
    vectors = np.stack([base[0], base[1], base[0], base[2], base[3], base[3], base[4], near]).astype(np.float16)
    keys = np.array([10, 20, 30, 40])
    indptr = np.array([0, 2, 4, 6, 8])  # key 10: rows 0-1, 20: 2-3, 30: 4-5, 40: 6-7
    meta = np.arange(24).reshape(8, 3)
    out, dropped = SampleSet(keys, np.array([5, 5, 5, 5]), indptr, vectors, meta).without_shared_states()
    # base[0] is under keys 10 and 20: both copies go; base[3] twice under key 30 is one key's business: kept;
    # key 40's two near-identical rows belong to one key too: kept
    assert dropped == 2
    assert out.keys.tolist() == [10, 20, 30, 40] and out.lengths.tolist() == [1, 1, 2, 2]
    assert out.meta[:, 0].tolist() == [3, 9, 12, 15, 18, 21]
    # a near-identical state under another key goes too
    vectors[7] = near
    keys2, indptr2 = np.array([10, 20, 30, 40, 50]), np.array([0, 2, 4, 6, 7, 8])
    out, dropped = SampleSet(keys2, np.ones(5, int), indptr2, vectors, meta).without_shared_states()
    assert dropped == 4 and out.keys.tolist() == [10, 20, 30]
