"""Batched k-means over every key token at once: padded tensors, k-means++ init, Lloyd, tolerance.

Tokens are processed as a padded batch X [R, n, d] with a validity mask [R, n]; rows are
sorted by sample count and cut into chunks that fit a memory budget, so padding stays small
and memory bounded. Everything runs on one device with torch, with one seeded generator.

- init: greedy k-means++ (as scikit-learn does, with twice its candidates): at each step draw
  2 (2 + floor(ln k)) candidates with probability proportional to D(x)^2 and keep the one that
  lowers the potential most;
- Lloyd: assignments by ||x||^2 - 2 x.c + ||c||^2, centres as means of their members; with
  few samples per token (the usual G = 50..200) both run on the Gram matrix x x^T, computed
  once, instead of the wider [n, d] vectors (see kmeans_batched); a row stops when its centre
  shift^2 falls below tol * mean per-dimension variance (scikit-learn's criterion), and rows
  still moving are compacted once they are fewer than half;
- an empty cluster is dropped at the end (all points equal, or fewer distinct points than k).
- A token with n <= k samples keeps its n vectors as senses.

Senses are ordered by count (descending) and each keeps its E most central members.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

__all__ = ["kmeans_batched", "cluster_samples", "ClusterResult", "SenseParts"]


@dataclass
class ClusterResult:
    """Senses of all keys. sense_key/sense_index/sense_count [N]; centroids [N, d] float32;
    ctx_sense/ctx_rank [C], ctx_sample [C] (index into the SampleSet rows), ctx_distance [C]."""

    sense_key: np.ndarray
    sense_index: np.ndarray
    sense_count: np.ndarray
    centroids: np.ndarray
    ctx_sense: np.ndarray
    ctx_rank: np.ndarray
    ctx_sample: np.ndarray
    ctx_distance: np.ndarray
    inertia: float


def _sqdist(x: torch.Tensor, c: torch.Tensor, xx: torch.Tensor) -> torch.Tensor:
    """x [R, n, d], c [R, k, d], xx [R, n] -> squared distances [R, n, k] (clamped at 0)."""
    cc = (c * c).sum(-1)  # [R, k]
    return (xx[:, :, None] - 2 * torch.bmm(x, c.transpose(1, 2)) + cc[:, None, :]).clamp_min_(0)


def _tolerance(x: torch.Tensor, w: torch.Tensor, xx: torch.Tensor, tol: float) -> torch.Tensor:
    """scikit-learn's tolerance: tol * mean per-dimension variance of each row's valid points -> [R]."""
    d = x.shape[2]
    cnt = w.sum(1).clamp_min(1)  # [R]
    mean = torch.bmm(w[:, None, :], x).squeeze(1) / cnt[:, None]  # [R, d]
    var = ((xx * w).sum(1) / cnt - (mean * mean).sum(1)).clamp_min(0) / d  # [R]
    return tol * var


def local_trials(k: int) -> int:
    """Candidates per k-means++ step: twice scikit-learn's 2 + ln k. Seeding is a small part of
    the cost (a gather per step with the Gram matrix) and better seeds end ~1% lower in inertia."""
    return 2 * (2 + int(math.log(k)))


def _kmeans_pp(
    dist_to: Callable[[torch.Tensor], torch.Tensor], valid: torch.Tensor, k: int, gen: torch.Generator
) -> torch.Tensor:
    """Greedy k-means++ (scikit-learn's variant) on each row -> indices of the k seed points [R, k].

    dist_to(idx [R, L]) -> squared distances [R, L, n] from the points idx to every point.
    At each step `local_trials(k)` candidates are drawn with probability D(x)^2 and the one that
    lowers the potential most is kept.
    """
    R, n = valid.shape
    trials = local_trials(k)
    ar = torch.arange(R, device=valid.device)
    w = valid.float()  # [R, n]
    first = torch.multinomial(w, 1, generator=gen)  # [R, 1] uniform over valid points
    chosen = [first.squeeze(1)]
    dmin = dist_to(first).squeeze(1) * w  # [R, n]
    for _ in range(1, k):
        # all-zero potential (duplicates only): fall back to uniform over valid points
        p = torch.where(dmin.sum(1, keepdim=True) > 0, dmin, w)
        cand = torch.multinomial(p, trials, replacement=True, generator=gen)  # [R, L]
        newd = torch.minimum(dmin[:, None, :], dist_to(cand)) * w[:, None, :]  # [R, L, n]
        best = newd.sum(2).argmin(1)  # [R]
        chosen.append(cand[ar, best])
        dmin = newd[ar, best]
    return torch.stack(chosen, 1)  # [R, k]


def kmeans_batched(
    x: torch.Tensor,
    valid: torch.Tensor,
    k: int,
    *,
    max_iter: int = 300,
    tol: float = 1e-4,
    gen: torch.Generator | None = None,
    gram: bool | None = None,
    with_dist: bool = False,
) -> tuple[torch.Tensor, ...]:
    """k-means on each row of a padded batch.

    x [R, n, d] float, valid [R, n] bool (every row should have > k valid points).
    Returns centres [R, k, d], labels [R, n] (padding: -1), inertia [R]
    (and, with_dist, each point's squared distance to its centre [R, n]).

    Two exact formulations of the same algorithm, picked by cost:
    - gram (small n): one bmm gives the Gram matrix K = x x^T [R, n, n]; a centre is a weighted
      mean of points, c = A^T x with A [R, n, k], so x.c = K A and |c|^2 = diag(A^T K A).
      Init and every Lloyd step then touch [R, n, n] instead of the much larger [R, n, d].
    - direct (large n): distances by ||x||^2 - 2 x.c + ||c||^2 with one bmm per step.
    """
    R, n, d = x.shape
    gen = gen or torch.Generator(device=x.device).manual_seed(0)
    if gram is None:
        gram = n <= k * (local_trials(k) + 40)  # 2 n^2 d once vs ~(k L + 2 iters) k 2 n d
    w = valid.to(x.dtype)  # [R, n]
    ar = torch.arange(R, device=x.device)
    if gram:
        K = torch.bmm(x, x.transpose(1, 2))  # [R, n, n]
        xx = K.diagonal(dim1=1, dim2=2)  # [R, n] = |x_i|^2, no [R, n, d] temporary
    else:
        xx = torch.linalg.vector_norm(x, dim=-1).square_()  # [R, n]
    tol_abs = _tolerance(x, w, xx, tol)  # [R]
    if gram:

        def dist_to(idx):  # idx [R, L] -> [R, L, n]
            kc = torch.gather(K, 2, idx[:, None, :].expand(-1, n, -1))  # [R, n, L] = x_i . x_c
            return (xx[:, :, None] - 2 * kc + xx[ar[:, None], idx][:, None, :]).clamp_min_(0).transpose(1, 2)

        seeds = _kmeans_pp(dist_to, valid, k, gen)  # [R, k]
        A = torch.zeros(R, n, k, device=x.device, dtype=x.dtype)
        A.scatter_(1, seeds[:, None, :], 1.0)  # centre j = point seeds[j]

        def dists(K, xx, A):  # -> [R', n, k]
            KA = torch.bmm(K, A)  # [R', n, k] = x_i . c_j
            cc = (A * KA).sum(1)  # [R', k] = |c_j|^2
            return (xx[:, :, None] - 2 * KA + cc[:, None, :]).clamp_min_(0)

        active = ar
        Ka, xxa, wa = K, xx, w
        for _ in range(max_iter):
            Aa = A if len(active) == R else A[active]
            lab = dists(Ka, xxa, Aa).argmin(2)  # [R', n]
            onehot = torch.nn.functional.one_hot(lab, k).to(x.dtype) * wa[:, :, None]  # [R', n, k]
            sizes = onehot.sum(1)  # [R', k]
            new = torch.where(sizes[:, None, :] > 0, onehot / sizes.clamp_min(1)[:, None, :], Aa)  # empty: keep
            diff = new - Aa
            moving = (diff * torch.bmm(Ka, diff)).sum((1, 2)) > tol_abs[active]  # sum_j |c_j' - c_j|^2 > tol
            A[active] = new
            if not bool(moving.any()):
                break
            if int(moving.sum()) < len(active) // 2:  # compact only when it pays
                active = active[moving]
                Ka, xxa, wa = K[active], xx[active], w[active]
        D = dists(K, xx, A)
        centres = torch.bmm(A.transpose(1, 2), x)  # [R, k, d]
    else:
        seeds = _kmeans_pp(lambda idx: _sqdist(x, x[ar[:, None], idx], xx).transpose(1, 2), valid, k, gen)
        centres = x[ar[:, None], seeds].clone()  # [R, k, d]
        active = ar
        xa, wa, xxa = x, w, xx
        for _ in range(max_iter):
            ca = centres[active]
            lab = _sqdist(xa, ca, xxa).argmin(2)  # [A, n]
            onehot = torch.nn.functional.one_hot(lab, k).to(x.dtype) * wa[:, :, None]  # [A, n, k]
            sums = torch.bmm(onehot.transpose(1, 2), xa)  # [A, k, d]
            sizes = onehot.sum(1)  # [A, k]
            new = torch.where(sizes[:, :, None] > 0, sums / sizes.clamp_min(1)[:, :, None], ca)  # empty: keep
            moving = ((new - ca) ** 2).sum((1, 2)) > tol_abs[active]  # [A]
            centres[active] = new
            if not bool(moving.any()):
                break
            if int(moving.sum()) < len(active) // 2:  # compact only when it pays
                active = active[moving]
                xa, wa, xxa = x[active], w[active], xx[active]
        D = _sqdist(x, centres, xx)  # [R, n, k]
    best, labels = D.min(2)
    labels = torch.where(valid, labels, torch.full_like(labels, -1))
    inertia = (best * w).sum(1)
    return (centres, labels, inertia, best) if with_dist else (centres, labels, inertia)


def _length_chunks(lengths: np.ndarray, k: int, d: int, chunk_bytes: int) -> list[np.ndarray]:
    """The rows with more than k samples, sorted by length and cut into chunks whose work fits chunk_bytes."""
    big = np.flatnonzero(lengths > k)
    order = big[np.argsort(lengths[big], kind="stable")]
    chunks: list[np.ndarray] = []
    i = 0
    while i < len(order):
        j = i
        while j < len(order):
            width, rows = int(lengths[order[j]]), j - i + 1
            # x, Gram, one-hot, distances: ~ rows * width * (d + width + 4k) floats
            if rows > 1 and rows * width * (d + width + 4 * k + 4) * 4 > chunk_bytes:
                break
            j += 1
        chunks.append(order[i:j])
        i = j
    return chunks


def _central_members(
    valid: torch.Tensor, lab: torch.Tensor, rank_of: torch.Tensor, sq: torch.Tensor, k: int, E: int
) -> tuple[np.ndarray, ...]:
    """The E members nearest to each sense's centroid, as numpy arrays, one entry per kept member:
    (row in the chunk, point in the row, the sense's rank in its row, the member's rank, distance).

    valid [r, width] bool, lab [r, width] cluster of each point, rank_of [r, k] rank of each cluster,
    sq [r, width] each point's squared distance to its own centroid.
    """
    device = valid.device
    # sort valid points by (row, sense rank), then distance
    pr, pp = valid.nonzero(as_tuple=True)  # [P] row, point
    srank = rank_of[pr, lab[pr, pp]]
    dist = sq[pr, pp].sqrt()
    grp = pr * k + srank  # [P] (row, sense) group
    o = torch.sort(dist, stable=True).indices
    o = o[torch.sort(grp[o], stable=True).indices]  # group-major, nearest first
    g = grp[o]
    first = torch.ones_like(g, dtype=torch.bool)
    first[1:] = g[1:] != g[:-1]
    pos = torch.arange(len(g), device=device)
    start = torch.cummax(torch.where(first, pos, torch.zeros_like(pos)), 0).values
    rank = pos - start
    keep = o[rank < E]
    return (
        pr[keep].cpu().numpy(),
        pp[keep].cpu().numpy(),
        srank[keep].cpu().numpy(),
        rank[rank < E].cpu().numpy(),
        dist[keep].float().cpu().numpy(),
    )


class SenseParts:
    """The senses and representative contexts of a clustering, gathered part by part, then sorted.

    Sense parts: key, sense_index, count, centroid. Context parts: key, sense_index, rank among the
    sense's members, sample row, distance to the centroid.
    """

    def __init__(self, d: int) -> None:
        self.d = d
        self.s_key, self.s_idx, self.s_cnt, self.s_cent = [], [], [], []
        self.c_key, self.c_idx, self.c_rank, self.c_sample, self.c_dist = [], [], [], [], []

    def add_senses(self, key, idx, cnt, cent) -> None:
        self.s_key.append(key), self.s_idx.append(idx), self.s_cnt.append(cnt), self.s_cent.append(cent)

    def add_contexts(self, key, idx, rank, sample, dist) -> None:
        self.c_key.append(key), self.c_idx.append(idx), self.c_rank.append(rank)
        self.c_sample.append(sample), self.c_dist.append(dist)

    def add_clustered(self, keys, starts, valid, lab, sizes, centres, sq, E, to_input=None) -> None:
        """Rows clustered as one batch: keys/starts [r] (each row's key and first sample row), valid/lab/sq
        [r, n], sizes [r, K], centres [r, K, d]. A row's senses are ordered by count (desc), cluster id
        breaking ties; empty clusters are dropped; `to_input` maps centroids back to the input space."""
        r, K = sizes.shape
        by_size = torch.sort(-sizes, dim=1, stable=True).indices  # [r, K] cluster at each rank
        ranks = torch.arange(K, device=sizes.device).expand(r, K)
        rank_of = torch.empty_like(by_size).scatter_(1, by_size, ranks)  # [r, K] rank of each cluster
        live = sizes.gather(1, by_size) > 0  # [r, K] (ranks: a prefix is live)
        rr, jj = live.nonzero(as_tuple=True)  # senses: row, rank
        cc = by_size[rr, jj]
        cent = centres[rr, cc].float().cpu().numpy()
        cent = to_input(cent) if to_input is not None else cent
        self.add_senses(keys[rr.cpu().numpy()], jj.cpu().numpy(), sizes[rr, cc].cpu().numpy(), cent)
        if E > 0:
            row_np, point, sense_rank, member_rank, dist = _central_members(valid, lab, rank_of, sq, K, E)
            self.add_contexts(keys[row_np], sense_rank, member_rank, starts[row_np] + point, dist)

    def result(self, k_max: int, inertia: float) -> ClusterResult:
        """Senses sorted by (key, sense_index); contexts by (sense, rank)."""

        def cat(parts, dtype, tail=()):
            parts = [p for p in parts if len(p)]
            return np.concatenate(parts).astype(dtype) if parts else np.zeros((0, *tail), dtype)

        s_key, s_idx, s_cnt = cat(self.s_key, np.int64), cat(self.s_idx, np.int64), cat(self.s_cnt, np.int64)
        s_cent = cat(self.s_cent, np.float32, (self.d,))
        perm = np.lexsort((s_idx, s_key))
        s_key, s_idx, s_cnt, s_cent = s_key[perm], s_idx[perm], s_cnt[perm], s_cent[perm]
        c_key, c_idx, c_rank = cat(self.c_key, np.int64), cat(self.c_idx, np.int64), cat(self.c_rank, np.int64)
        c_sample, c_dist = cat(self.c_sample, np.int64), cat(self.c_dist, np.float32)
        base = int(k_max) + 1
        c_sense = np.searchsorted(s_key * base + s_idx, c_key * base + c_idx)  # codes sorted and unique
        co = np.lexsort((c_rank, c_sense))
        return ClusterResult(
            sense_key=s_key,
            sense_index=s_idx,
            sense_count=s_cnt,
            centroids=s_cent,
            ctx_sense=c_sense[co],
            ctx_rank=c_rank[co],
            ctx_sample=c_sample[co],
            ctx_distance=c_dist[co],
            inertia=float(inertia),
        )


def cluster_samples(
    keys: np.ndarray,
    indptr: np.ndarray,
    vectors: np.ndarray,
    k: int,
    contexts_per_sense: int,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    max_iter: int = 300,
    tol: float = 1e-4,
    chunk_bytes: int = 256 << 20,
    progress: Callable[[int, int], None] | None = None,
) -> ClusterResult:
    """Cluster each key's samples (CSR: keys [R], indptr [R+1], vectors [S, d]) into <= k senses.

    Senses come out sorted by (key, sense_index); a key's senses are ordered by count, largest
    first; each keeps its E = contexts_per_sense members nearest to the centroid.
    """
    device = torch.device(device)
    keys = np.asarray(keys, np.int64)
    d = vectors.shape[1]
    lengths = np.diff(indptr).astype(np.int64)
    total = int(indptr[-1])
    gen = torch.Generator(device=device).manual_seed(int(seed))
    E = contexts_per_sense
    parts = SenseParts(d)

    # rows with n <= k keep their raw vectors: one sense per sample, count 1, itself as its context
    small = np.flatnonzero(lengths <= k)
    if len(small):
        ln = lengths[small]
        sample = np.repeat(indptr[small], ln) + (np.arange(ln.sum()) - np.repeat(np.cumsum(ln) - ln, ln))
        skey, sidx = np.repeat(keys[small], ln), sample - np.repeat(indptr[small], ln)
        parts.add_senses(skey, sidx, np.ones(len(sample), np.int64), vectors[sample].astype(np.float32))
        if E > 0:
            parts.add_contexts(skey, sidx, np.zeros(len(sample), np.int64), sample, np.zeros(len(sample), np.float32))

    # the rest: chunks of rows of similar length (sorted by n) that fit chunk_bytes
    chunks = _length_chunks(lengths, k, d, chunk_bytes)
    done = int(lengths[small].sum())
    total_inertia = 0.0
    for rows in chunks:
        r, width = len(rows), int(lengths[rows].max())
        ln = torch.as_tensor(lengths[rows], device=device)  # [r]
        # [r, width] sample of each slot; padding repeats the row's last sample
        idx = indptr[rows][:, None] + np.minimum(np.arange(width)[None, :], lengths[rows][:, None] - 1)
        x = torch.as_tensor(vectors[idx], device=device).float()  # [r, width, d]
        valid = torch.arange(width, device=device)[None, :] < ln[:, None]  # [r, width]
        centres, labels, inertia, sq = kmeans_batched(x, valid, k, max_iter=max_iter, tol=tol, gen=gen, with_dist=True)
        total_inertia += float(inertia.sum())
        lab = labels.clamp_min(0)
        sizes = torch.zeros(r, k, dtype=torch.int64, device=device).scatter_add_(1, lab, valid.long())  # [r, k]
        parts.add_clustered(keys[rows], indptr[rows], valid, lab, sizes, centres, sq, E)
        done += int(lengths[rows].sum())
        if progress:
            progress(done, total)
    if progress:
        progress(total, total)
    return parts.result(k, total_inertia)
