"""The similarity space: a de-biasing transform for comparing senses, stored with the dictionary.

Post-norm states of decoder LMs are strongly anisotropic: a few dimensions carry huge means,
so the raw cosine of any two senses is high and nearest-sense lists follow frequency more
than meaning. Every similarity sensekit computes (the HNSW index, `neighbors`, WSD in the
evaluation, plots, attaching relations to senses) therefore runs in a transformed space:

    x -> ((x - mean) / scale) with the top `D` principal directions removed

- `centre`:   scale 1, D = 0
- `zscore`:   scale = per-dimension standard deviation, D = 0
- `abtt`:     "all-but-the-top" (Mu and Viswanath, ICLR 2018): centre, then remove the top D
              principal components (D about d / 100)
- `zscore+abtt`: both
- `identity`: raw vectors (also what a view with no recorded space reads as)

The raw vectors stay in the store untouched: the DSKD loss is defined on them (docs/method.md).
numpy only: the query path imports this.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError

__all__ = ["SimilaritySpace", "SPACE_TRANSFORMS", "DEFAULT_SPACE", "fit_space", "default_components"]

SPACE_TRANSFORMS = ("identity", "centre", "zscore", "abtt", "zscore+abtt")
DEFAULT_SPACE = "zscore+abtt"
FIT_SAMPLE = 50_000  # rows used for the PCA: plenty for a d <= 8192 covariance


def default_components(dim: int) -> int:
    """Mu and Viswanath's rule of thumb: about d / 100 directions."""
    return max(1, round(dim / 100))


@dataclass(frozen=True)
class SimilaritySpace:
    """x -> ((x - mean) / scale) @ (I - P^T P), with P [D, d] orthonormal rows."""

    transform: str  # one of SPACE_TRANSFORMS
    mean: np.ndarray  # [d] float32
    scale: np.ndarray  # [d] float32, > 0
    components: np.ndarray  # [D, d] float32

    @classmethod
    def identity(cls, dim: int) -> "SimilaritySpace":
        return cls("identity", np.zeros(dim, np.float32), np.ones(dim, np.float32), np.zeros((0, dim), np.float32))

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """[n, d] or [d] raw -> the same shape in the similarity space (float32, not normalised)."""
        x = (np.asarray(vectors, np.float32) - self.mean) / self.scale
        if len(self.components):
            x = x - (x @ self.components.T) @ self.components  # remove the dominant directions
        return x.astype(np.float32, copy=False)

    def describe(self) -> dict:
        # "kind": the key a view's meta record and the eval JSON store the transform under
        return {"kind": self.transform, "components": int(len(self.components)), "dim": self.dim}


def fit_space(
    vectors: np.ndarray, transform: str = DEFAULT_SPACE, components: int | None = None, seed: int = 0
) -> SimilaritySpace:
    """Fit the transform on raw sense vectors [n, d] (the store's token senses)."""
    if transform not in SPACE_TRANSFORMS:
        raise InputError(f"--space must be one of {', '.join(SPACE_TRANSFORMS)}, got {transform!r}")
    x = np.asarray(vectors, np.float32)
    n, d = x.shape
    if transform == "identity" or n < 2:
        return SimilaritySpace.identity(d)
    mean = x.mean(0)
    scale = np.ones(d, np.float32)
    if transform.startswith("zscore"):
        scale = np.maximum(x.std(0), 1e-6 * max(float(x.std()), 1e-12)).astype(np.float32)
    D = 0
    if transform.endswith("abtt"):
        D = min(default_components(d) if components is None else components, d - 1, n - 1)
    basis = np.zeros((0, d), np.float32)
    if D > 0:
        rows = (
            np.random.default_rng(seed).choice(n, min(n, FIT_SAMPLE), replace=False) if n > FIT_SAMPLE else slice(None)
        )
        z = ((x[rows] - mean) / scale).astype(np.float64)  # [m, d]
        # the eigenvectors of z'z are z's right singular vectors: the same directions as an SVD of z, at
        # about 1/40 of its time (benchmarks/space_fit.py)
        _, eigenvectors = np.linalg.eigh(z.T @ z)  # [d, d], eigenvalues ascending
        basis = eigenvectors[:, ::-1][:, :D].T.astype(np.float32)  # [D, d] top principal directions
    return SimilaritySpace(transform, mean.astype(np.float32), scale, basis)
