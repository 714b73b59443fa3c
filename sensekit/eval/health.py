"""Store health: duplicated senses, tokens left as raw samples, anisotropy.

- A sense is a *duplicate* when its vector is identical, or nearly so (cosine above 0.9999),
  to a sense of another token. Identical rows are grouped by hashing; near ones are found
  among the nearest neighbours of each distinct row (an exact blocked product for small
  tables, the store's HNSW index for large ones).
- A token is *raw* when it had n <= k samples: the build keeps its n sample vectors as senses
  instead of clustering them (docs/method.md 1.3); its senses' counts then sum to n <= k.
- *Anisotropy* is the mean cosine between random pairs of senses; after centring (subtracting
  the mean sense) for reference. Isotropic vectors give about 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

from .registry import Headline, Skip, StoreMetric, coverage, fmt, fmt_coverage, num, register
from .senses import unit

if TYPE_CHECKING:
    from .run import StoreRun

__all__ = ["duplicate_senses", "raw_tokens", "anisotropy", "exact_groups", "near_pairs_exact"]

# knn(queries [m, d] raw rows, k) -> candidate rows [m, k] int64 into the table (-1 = none), nearest first
Knn = Callable[[np.ndarray, int], np.ndarray]
EXACT_LIMIT = 8192  # distinct rows up to which near pairs come from an exact blocked matrix product


def exact_groups(vectors: np.ndarray) -> np.ndarray:
    """[n] group id per row; rows with identical bytes share a group (a hash of the row, in effect)."""
    v = np.ascontiguousarray(vectors)
    if len(v) == 0:
        return np.zeros(0, np.int64)
    rows = v.view(np.dtype((np.void, v.dtype.itemsize * v.shape[1]))).ravel()
    _, inverse = np.unique(rows, return_inverse=True)
    return inverse.ravel().astype(np.int64)


def near_pairs_exact(u: np.ndarray, cos: float, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(i, j), i != j, with u[i] . u[j] > cos, for unit rows u [m, d], by a blocked matrix product."""
    out_i, out_j = [], []
    for s in range(0, len(u), block):
        sims = u[s : s + block] @ u.T  # [b, m]
        i, j = np.nonzero(sims > cos)
        keep = (i + s) != j
        out_i.append(i[keep] + s)
        out_j.append(j[keep])
    if not out_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(out_i).astype(np.int64), np.concatenate(out_j).astype(np.int64)


def duplicate_senses(
    vectors: np.ndarray, token_ids: np.ndarray, cos: float = 0.9999, knn: Knn | None = None, k: int = 8
) -> np.ndarray:
    """[n] bool: the sense's vector is identical or nearly so (cosine > `cos`) to a sense of another token.

    vectors [n, d], token_ids [n]. `knn` (optional) proposes each distinct row's `k` nearest rows (in any
    space, e.g. the index's); the cosine of the raw rows decides. Without it, or for a few thousand distinct
    rows, near pairs come from an exact blocked product.
    """
    token_ids = np.asarray(token_ids, np.int64)
    n = len(token_ids)
    if n == 0:
        return np.zeros(0, bool)
    u = unit(vectors)
    group = exact_groups(u)  # [n]
    m = int(group.max()) + 1
    g_min = np.full(m, np.iinfo(np.int64).max)
    g_max = np.full(m, np.iinfo(np.int64).min)
    np.minimum.at(g_min, group, token_ids)
    np.maximum.at(g_max, group, token_ids)
    dup_group = g_min != g_max  # identical rows of 2+ tokens
    rep = np.zeros(m, np.int64)
    rep[group] = np.arange(n)  # one row per group
    if knn is None or m <= EXACT_LIMIT:
        gi, gj = near_pairs_exact(u[rep], cos)
    else:
        rows = np.asarray(knn(np.asarray(vectors)[rep], k), np.int64)  # [m, k] candidates
        gi = np.repeat(np.arange(m), rows.shape[1])
        rows = rows.ravel()
        gi, rows = gi[rows >= 0], rows[rows >= 0]
        ok = (u[rep[gi]] * u[rows]).sum(1) > cos  # raw cosine of each candidate
        gi, gj = gi[ok], group[rows[ok]]
        gi, gj = gi[gi != gj], gj[gi != gj]
    # a group of one token t is a duplicate when a near group holds another token than t
    other = (g_min[gj] != g_max[gi]) | (g_max[gj] != g_min[gi])
    np.logical_or.at(dup_group, gi[other], True)
    return dup_group[group]


def raw_tokens(table_indptr: np.ndarray, counts: np.ndarray, k: int) -> np.ndarray:
    """[U] bool per token of a SenseTable: its senses' counts sum to <= k (kept as raw samples)."""
    sums = np.add.reduceat(np.asarray(counts, np.int64), table_indptr[:-1]) if len(counts) else np.zeros(0, np.int64)
    return sums <= k


def anisotropy(vectors: np.ndarray, n_pairs: int = 20000, seed: int = 0, centre: bool = False) -> float:
    """Mean cosine over `n_pairs` random pairs of distinct rows (optionally after subtracting the mean row)."""
    v = np.asarray(vectors, np.float32)
    if len(v) < 2:
        return float("nan")
    if centre:
        v = v - v.mean(0, keepdims=True)
    rng = np.random.default_rng(seed)
    i = rng.integers(0, len(v), n_pairs)
    j = (i + rng.integers(1, len(v), n_pairs)) % len(v)  # j != i
    u = unit(v)
    return float((u[i] * u[j]).sum(1).mean())


# -- the registered store metric ------------------------------------------------------------
def index_knn(store, table) -> Knn | None:
    """knn(raw queries [m, d], k) -> candidate rows of `table` [m, k], from the store's HNSW index (which is
    built in the store's similarity space: the queries are mapped into it, as `neighbors` does)."""
    index = store.index
    if index is None:
        return None
    by_id = np.argsort(table.sense_ids)
    ids_sorted = table.sense_ids[by_id]

    def knn(queries: np.ndarray, k: int) -> np.ndarray:
        old = index.ef
        index.set_ef(max(2 * k, 16))  # near-identical vectors sit at the very top: a short beam finds them
        try:
            labels, _ = index.knn_query(
                np.ascontiguousarray(store.space.apply(queries), np.float32), k=min(k, index.get_current_count())
            )
        finally:
            index.set_ef(old)
        labels = labels.astype(np.int64)
        pos = np.minimum(np.searchsorted(ids_sorted, labels), len(ids_sorted) - 1)
        return np.where(ids_sorted[pos] == labels, by_id[pos], -1)

    return knn


def _compute(run: "StoreRun") -> dict:
    t = run.table
    if len(t.owner) == 0:
        raise Skip("the store has no token senses")
    dup = duplicate_senses(t.vectors, t.owner, run.cfg.duplicate_cos, knn=index_knn(run.store, t))
    raw = raw_tokens(t.indptr, t.counts, run.k)  # [U]
    raw_sense = np.repeat(raw, np.diff(t.indptr))  # [S]
    seed, pairs = run.cfg.seed, run.cfg.anisotropy_pairs
    return {
        "status": "ok",
        "duplicates": {
            "senses": int(dup.sum()),
            "share": num(dup.mean()),
            "cos_above": run.cfg.duplicate_cos,
            "tokens_affected": int(len(np.unique(t.owner[dup]))),
            "share_among_raw_token_senses": num(dup[raw_sense].mean()) if raw_sense.any() else None,
            "share_among_clustered_senses": num(dup[~raw_sense].mean()) if (~raw_sense).any() else None,
        },
        "raw_tokens": {
            "tokens": int(raw.sum()),
            "share": num(raw.mean()),
            "k": run.k,
            "senses": int(raw_sense.sum()),
            "sense_share": num(raw_sense.mean()),
        },
        "anisotropy": {
            "mean_cosine": num(anisotropy(t.vectors, pairs, seed)),
            "pairs": pairs,
            "baseline_centred": num(anisotropy(t.vectors, pairs, seed, centre=True)),
            "in_similarity_space": num(anisotropy(t.in_space(run.to_space), pairs, seed)),
        },
        "coverage": coverage(len(t.owner), len(t.owner)),
        "baseline": {
            "method": "a healthy store has no duplicates; isotropic vectors have mean cosine ~0 "
            "(the centred senses' mean cosine is measured beside it)"
        },
        "note": "token senses only (span clouds are derived from them); raw = a token's senses' counts sum to <= k",
    }


def _rows(h: dict) -> list[tuple[str, str, str, str]]:
    d, r, a = h["duplicates"], h["raw_tokens"], h["anisotropy"]
    return [
        (
            f"duplicate senses (cos > {d['cos_above']})",
            f"{d['senses']:,} ({fmt(d['share'])})",
            "0 expected",
            fmt_coverage(h["coverage"]),
        ),
        (f"raw-sample tokens (n <= k = {r['k']})", f"{r['tokens']:,} ({fmt(r['share'])})", "-", "-"),
        (
            "anisotropy (mean cosine of random senses)",
            fmt(a["mean_cosine"]),
            f"centred {fmt(a['baseline_centred'])}; in the similarity space {fmt(a['in_similarity_space'])}",
            f"{a['pairs']:,} pairs",
        ),
    ]


def _headline(h: dict) -> list[Headline]:
    return [Headline("duplicate senses (share)", h["duplicates"]["share"], 0.0, "healthy store", "the store")]


register(StoreMetric("health", "store health", _compute, _rows, _headline))
