"""Lexical senses: as many clusters per key token as its own samples hold (docs/lexical.md).

`cluster_adaptive` gives each token between 1 and k_max senses, each holding at least
`min_sense_size` samples, batched over tokens like `cluster.kmeans_batched` (no loop per token):

- Space. Clustering runs on the vectors z-scored per dimension with the mean and standard
  deviation of all the samples given (middle-layer residual states have a few "rogue"
  dimensions with huge values that would otherwise decide every assignment). Centroids are
  returned in the input space: the mean of each sense's raw members.
- Few samples. A token with n < 2 * min_sense_size samples cannot hold two senses: it gets ONE
  sense, the centroid of its samples (never the raw samples).
- The number of senses. Every other token may hold K = min(k_max, n // min_sense_size) senses.
  Rows with the same K run as one padded batch, and one of the criteria decides per row:
  - "merge" (the default, chosen on dev data; docs/lexical.md): k-means with K clusters, then
    the two most similar clusters are merged while their average-linkage similarity (the mean
    cosine over all pairs of their members, in the z-scored space) is above `threshold`, as a
    batched greedy agglomeration (K - 1 steps at most); "merge_centroid" uses the cosine of the
    two centroids instead (big clusters then absorb each other: worse on dev);
  - "silhouette": k-means for every k in 2..K; the k with the best mean silhouette wins if it
    is above `threshold`, else one sense;
  - "bic": k-means for every k in 1..K; the X-means BIC of a spherical Gaussian mixture with
    one shared variance (Pelleg and Moore 2000) picks k; `threshold` scales the penalty.
  Then every cluster smaller than `min_sense_size` is dissolved: its members join the nearest
  remaining cluster (the largest cluster always holds >= n / K >= min_sense_size samples).
- Output: a `cluster.ClusterResult` with the conventions of `cluster_samples`: senses sorted by
  (key, sense_index), a key's senses ordered by count (largest first), each with its E most
  central members as contexts (`ctx_distance` is measured in the z-scored space).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from .cluster import ClusterResult, SenseParts, _length_chunks, kmeans_batched

__all__ = [
    "cluster_adaptive",
    "CRITERIA",
    "DEFAULT_CRITERION",
    "DEFAULT_THRESHOLDS",
    "RECOMMENDED_MIN_SENSE_SIZE",
    "standardiser",
]

CRITERIA = ("merge", "merge_centroid", "silhouette", "bic")
DEFAULT_CRITERION = "merge"
# per criterion, the threshold chosen on the dev half at the auto layer (9 of 30 for the bundled teacher;
# docs/lexical.md): merge (average linkage) and merge_centroid: the cosine above which two senses merge;
# silhouette: the least mean silhouette for k >= 2; bic: the penalty scale
DEFAULT_THRESHOLDS = {"merge": 0.8, "merge_centroid": 0.8, "silhouette": 0.05, "bic": 1.0}
RECOMMENDED_MIN_SENSE_SIZE = 2  # chosen on the dev half (docs/lexical.md): a sense is a cluster, not one context


def standardiser(vectors: np.ndarray, chunk: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension (mean, std) of vectors [S, d] in float64 over chunks (float16 input is fine)."""
    d = vectors.shape[1]
    s, ss, n = np.zeros(d), np.zeros(d), 0
    for i in range(0, len(vectors), chunk):
        v = np.asarray(vectors[i : i + chunk], np.float64)
        s += v.sum(0)
        ss += (v * v).sum(0)
        n += len(v)
    mean = s / max(n, 1)
    std = np.sqrt(np.maximum(ss / max(n, 1) - mean * mean, 0))
    std = np.maximum(std, 1e-6 * max(float(std.mean()), 1e-12))
    return mean.astype(np.float32), std.astype(np.float32)


# -- criteria on a padded batch -------------------------------------------------------------
def _onehot(labels: torch.Tensor, valid: torch.Tensor, k: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels.clamp_min(0), k).float() * valid[:, :, None].float()


def _silhouette(dist: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor, k: int) -> torch.Tensor:
    """Mean silhouette per row [r] (Euclidean distances dist [r, n, n]); a point alone in its cluster scores 0."""
    oh = _onehot(labels, valid, k)  # [r, n, k]
    sizes = oh.sum(1)  # [r, k]
    sums = torch.bmm(dist, oh)  # [r, n, k] summed distance from each point to each cluster
    own = labels.clamp_min(0)
    own_size = sizes.gather(1, own)  # [r, n]
    a = sums.gather(2, own[:, :, None]).squeeze(2) / (own_size - 1).clamp_min(1)
    mean_to = sums / sizes.clamp_min(1)[:, None, :]
    other = torch.where(
        (sizes[:, None, :] > 0) & (torch.arange(k, device=dist.device)[None, None, :] != own[:, :, None]),
        mean_to,
        torch.full_like(mean_to, float("inf")),
    )
    b = other.min(2).values  # [r, n]
    s = torch.where((own_size > 1) & torch.isfinite(b), (b - a) / torch.maximum(a, b).clamp_min(1e-12), 0.0)
    w = valid.float()
    return (s * w).sum(1) / w.sum(1).clamp_min(1)


def _bic(inertia: torch.Tensor, sizes: torch.Tensor, n: torch.Tensor, d: int, k: int, scale: float) -> torch.Tensor:
    """X-means BIC per row [r]: spherical Gaussians with one shared variance; higher is better."""
    n = n.double()
    var = (inertia.double() / (d * (n - k).clamp_min(1))).clamp_min(1e-12)  # [r]
    nj = sizes.double()
    ll = (torch.where(nj > 0, nj * torch.log(nj.clamp_min(1) / n[:, None]), 0.0)).sum(1)
    ll = ll - n * d / 2 * torch.log(2 * math.pi * var) - d * (n - k) / 2
    params = (k - 1) + k * d + 1
    return ll - scale * params / 2 * torch.log(n)


def _merge(
    z: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor, k: int, threshold: float, linkage: str = "average"
) -> torch.Tensor:
    """Greedy agglomeration per row: merge the two live clusters with the highest similarity while it is above
    threshold. Batched over rows; K - 1 steps at most. -> new labels [r, n].

    linkage "average": the mean cosine over all pairs of members (a, b), a in A, b in B, computed from the
    sums of unit vectors, U_A . U_B / (|A| |B|): unbiased by cluster size. "centroid": the cosine of the two
    centroids (a centroid of many members loses its noise, so big clusters look alike and absorb each other).
    """
    r = z.shape[0]
    oh = _onehot(labels, valid, k)  # [r, n, k]
    sizes = oh.sum(1)  # [r, k]
    if linkage == "average":
        z = z / z.norm(dim=2, keepdim=True).clamp_min(1e-12)
    sums = torch.bmm(oh.transpose(1, 2), z)  # [r, k, d]
    target = torch.arange(k, device=z.device).expand(r, k).clone()  # cluster each cluster now belongs to
    ar = torch.arange(r, device=z.device)
    eye = torch.eye(k, dtype=torch.bool, device=z.device)
    for _ in range(k - 1):
        live = sizes > 0  # [r, k]
        if linkage == "average":
            n = sizes.clamp_min(1)
            cos = torch.bmm(sums, sums.transpose(1, 2)) / (n[:, :, None] * n[:, None, :])  # [r, k, k]
        else:
            u = sums / sums.norm(dim=2, keepdim=True).clamp_min(1e-12)
            cos = torch.bmm(u, u.transpose(1, 2))  # [r, k, k]
        ok = live[:, :, None] & live[:, None, :] & ~eye
        cos = torch.where(ok, cos, torch.full_like(cos, -2.0))
        best, flat = cos.view(r, -1).max(1)
        go = best > threshold  # [r]
        if not bool(go.any()):
            break
        i, j = flat // k, flat % k  # merge j into i
        rows = ar[go]
        i, j = i[go], j[go]
        sums[rows, i] += sums[rows, j]
        sizes[rows, i] += sizes[rows, j]
        sums[rows, j] = 0
        sizes[rows, j] = 0
        target[rows] = torch.where(target[rows] == j[:, None], i[:, None], target[rows])
    return torch.where(valid, target.gather(1, labels.clamp_min(0)), labels)


def _dissolve(z: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor, k: int, min_size: int) -> torch.Tensor:
    """Members of clusters smaller than min_size join the nearest cluster that is not (one batched pass)."""
    oh = _onehot(labels, valid, k)
    sizes = oh.sum(1)  # [r, k]
    big = sizes >= min_size  # [r, k]
    c = torch.bmm(oh.transpose(1, 2), z) / sizes.clamp_min(1)[:, :, None]  # [r, k, d]
    zz = (z * z).sum(2)
    d2 = zz[:, :, None] - 2 * torch.bmm(z, c.transpose(1, 2)) + (c * c).sum(2)[:, None, :]
    d2 = torch.where(big[:, None, :], d2, torch.full_like(d2, float("inf")))
    nearest = d2.argmin(2)  # [r, n]
    small_member = ~big.gather(1, labels.clamp_min(0))
    return torch.where(valid & small_member, nearest, labels)


def _choose(
    z: torch.Tensor,
    valid: torch.Tensor,
    K: int,
    criterion: str,
    threshold: float,
    min_size: int,
    gen: torch.Generator,
    max_iter: int,
    tol: float,
) -> torch.Tensor:
    """Labels [r, n] (cluster ids in 0..K-1, -1 for padding) for rows that may hold up to K senses."""
    r, n, d = z.shape
    if criterion.startswith("merge"):
        _, labels, _ = kmeans_batched(z, valid, K, max_iter=max_iter, tol=tol, gen=gen)
        labels = _merge(z, labels, valid, K, threshold, "centroid" if criterion == "merge_centroid" else "average")
    else:
        cnt = valid.sum(1)
        best_score = torch.full((r,), -float("inf"), device=z.device, dtype=torch.float64)
        labels = torch.where(valid, 0, -1)  # k = 1
        if criterion == "silhouette":
            K_gram = torch.bmm(z, z.transpose(1, 2))
            sq = K_gram.diagonal(dim1=1, dim2=2)
            dist = (sq[:, :, None] - 2 * K_gram + sq[:, None, :]).clamp_min(0).sqrt() * (
                valid[:, :, None] & valid[:, None, :]
            )
            best_score[:] = threshold  # k >= 2 must beat it
        else:
            inertia1 = (
                (z - (z * valid[:, :, None]).sum(1, keepdim=True) / cnt[:, None, None]) ** 2 * valid[:, :, None]
            ).sum((1, 2))
            best_score = _bic(inertia1, cnt[:, None].float(), cnt, d, 1, threshold)
        for k in range(2, K + 1):
            _, lab, inertia = kmeans_batched(z, valid, k, max_iter=max_iter, tol=tol, gen=gen)
            if criterion == "silhouette":
                score = _silhouette(dist, lab, valid, k).double()
            else:
                sizes = _onehot(lab, valid, k).sum(1)
                score = _bic(inertia, sizes, cnt, d, k, threshold)
            better = score > best_score
            labels = torch.where(better[:, None], lab, labels)
            best_score = torch.where(better, score, best_score)
    return _dissolve(z, labels, valid, K, min_size)


# -- the public entry point -----------------------------------------------------------------
def cluster_adaptive(
    keys: np.ndarray,
    indptr: np.ndarray,
    vectors: np.ndarray,
    k_max: int,
    contexts_per_sense: int,
    *,
    min_sense_size: int,
    seed: int = 0,
    device: str | torch.device = "cpu",
    chunk_bytes: int = 256 << 20,
    progress: Callable[[int, int], None] | None = None,
    criterion: str = DEFAULT_CRITERION,
    threshold: float | None = None,
    max_iter: int = 100,
    tol: float = 1e-4,
    standardise: bool = True,
) -> ClusterResult:
    """Cluster each key's samples (CSR: keys [R], indptr [R+1], vectors [S, d]) into 1..k_max senses.

    Each sense holds >= min_sense_size samples; a key with fewer than 2 * min_sense_size samples gets
    one sense, the centroid of its samples. See the module docstring for the criteria.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    threshold = DEFAULT_THRESHOLDS[criterion] if threshold is None else float(threshold)
    m = max(1, int(min_sense_size))
    device = torch.device(device)
    keys = np.asarray(keys, np.int64)
    indptr = np.asarray(indptr, np.int64)
    d = vectors.shape[1]
    lengths = np.diff(indptr)
    total = int(indptr[-1])
    E = int(contexts_per_sense)
    mean, std = standardiser(vectors) if standardise else (np.zeros(d, np.float32), np.ones(d, np.float32))
    gen = torch.Generator(device=device).manual_seed(int(seed))
    K_row = np.minimum(int(k_max), lengths // m)  # [R] senses a row may hold
    multi = K_row >= 2

    def to_input(centroids_z: np.ndarray) -> np.ndarray:
        return (centroids_z * std + mean).astype(np.float32)

    def to_z(rows_idx: np.ndarray) -> np.ndarray:
        return (np.asarray(vectors[rows_idx], np.float32) - mean) / std

    # -- one sense: the centroid (rows with K_row <= 1), all in numpy, no loop per row
    one = np.flatnonzero((~multi) & (lengths > 0))
    parts = SenseParts(d)
    inertia = 0.0  # within-sense squared distances, z-scored space
    if len(one):
        ln = lengths[one]
        sample = np.repeat(indptr[one], ln) + (np.arange(ln.sum()) - np.repeat(np.cumsum(ln) - ln, ln))
        starts = np.cumsum(ln) - ln
        raw = np.asarray(vectors[sample], np.float64)
        centroids = (np.add.reduceat(raw, starts, axis=0) / ln[:, None]).astype(np.float32)
        parts.add_senses(keys[one], np.zeros(len(one), np.int64), lengths[one], centroids)
        if E > 0:
            z = (raw.astype(np.float32) - mean) / std
            zc = np.add.reduceat(z.astype(np.float64), starts, axis=0) / ln[:, None]
            owner = np.repeat(np.arange(len(one)), ln)
            sq1 = ((z - zc[owner]) ** 2).sum(1)
            inertia += float(sq1.sum())
            dist = np.sqrt(sq1).astype(np.float32)
            o = np.lexsort((dist, owner))
            rank = np.arange(len(o)) - starts[owner[o]]
            keep = o[rank < E]
            sense0 = np.zeros(len(keep), np.int64)
            parts.add_contexts(keys[one][owner[keep]], sense0, rank[rank < E], sample[keep], dist[keep])
    done = int(lengths[one].sum())

    # -- rows that may hold 2..k_max senses: chunks of similar length, then one batch per K
    masked = np.where(multi, lengths, 0)
    for chunk in _length_chunks(masked, 1, d + 4 * int(k_max), chunk_bytes):
        for K in np.unique(K_row[chunk]):
            rows = chunk[K_row[chunk] == K]
            K = int(K)
            width = int(lengths[rows].max())
            idx = indptr[rows][:, None] + np.minimum(np.arange(width)[None, :], lengths[rows][:, None] - 1)
            z = torch.as_tensor(to_z(idx), device=device)  # [r, width, d]
            valid = torch.arange(width, device=device)[None, :] < torch.as_tensor(lengths[rows], device=device)[:, None]
            lab = _choose(z, valid, K, criterion, threshold, m, gen, max_iter, tol).clamp_min(0)
            oh = _onehot(lab, valid, K)
            sizes = oh.sum(1).long()  # [r, K]
            zc = torch.bmm(oh.transpose(1, 2), z) / sizes.clamp_min(1)[:, :, None]
            sq = ((z - zc.gather(1, lab[:, :, None].expand(-1, -1, d))) ** 2).sum(2)  # [r, width]
            inertia += float((sq * valid).sum())
            # centroids in the input space: z-space means mapped back (the map is affine)
            parts.add_clustered(keys[rows], indptr[rows], valid, lab, sizes, zc, sq, E, to_input=to_input)
            done += int(lengths[rows].sum())
            if progress:
                progress(done, total)
    if progress:
        progress(total, total)

    return parts.result(k_max, inertia)
