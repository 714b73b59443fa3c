"""Word similarity from senses: Spearman correlation with human ratings (SimLex-999, WordSim-353).

A pair file has one pair per line: `word1 word2 score`, separated by tabs (or spaces), `#`
comments, and an optional header line whose score column is not a number. Three scores per
pair, over the two words' sense sets A and B (cosine in the chosen space):
- MaxSim: the largest cosine over all pairs (a, b);
- AvgSim: the mean cosine over all pairs;
- centroid: the cosine of the two mean sense vectors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from .senses import unit

__all__ = ["read_pairs", "pair_similarities", "spearman", "SIMILARITIES"]

SIMILARITIES = ("maxsim", "avgsim", "centroid")


def read_pairs(path: str | Path, limit: int | None = None) -> tuple[list[str], list[str], np.ndarray]:
    """-> (words1, words2, gold [N] float64). Raises InputError for a malformed line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"word-similarity file {path} does not exist; pass a file of 'word1<TAB>word2<TAB>score' lines"
        )
    w1, w2, gold = [], [], []
    seen_data = False
    with path.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            if limit is not None and len(gold) >= limit:
                break
            parts = text.split("\t") if "\t" in text else text.split()
            if len(parts) < 3:
                raise InputError(f"{path}:{i} has {len(parts)} fields; expected 'word1 word2 score'")
            try:
                score = float(parts[2])
            except ValueError:
                if not seen_data:  # a header line ("Word 1  Word 2  Human (mean)")
                    seen_data = True
                    continue
                raise InputError(f"{path}:{i}: score {parts[2]!r} is not a number") from None
            seen_data = True
            w1.append(parts[0].strip())
            w2.append(parts[1].strip())
            gold.append(score)
    if not gold:
        raise InputError(f"word-similarity file {path} holds no pairs")
    return w1, w2, np.asarray(gold, np.float64)


def pair_similarities(a: np.ndarray, mask_a: np.ndarray, b: np.ndarray, mask_b: np.ndarray) -> dict[str, np.ndarray]:
    """Sense sets a [N, K, d], b [N, L, d] with masks [N, K], [N, L] -> {"maxsim", "avgsim", "centroid"}: [N] each.

    Pairs where either side has no sense get NaN.
    """
    ua, ub = unit(a), unit(b)
    cos = np.einsum("nkd,nld->nkl", ua, ub)  # [N, K, L]
    both = mask_a[:, :, None] & mask_b[:, None, :]  # [N, K, L]
    n_pairs = both.sum((1, 2))
    empty = n_pairs == 0
    maxsim = np.where(both, cos, -np.inf).max((1, 2))
    avgsim = np.where(both, cos, 0.0).sum((1, 2)) / np.maximum(n_pairs, 1)
    ca = (a * mask_a[..., None]).sum(1) / np.maximum(mask_a.sum(1, keepdims=True), 1)  # [N, d] mean sense
    cb = (b * mask_b[..., None]).sum(1) / np.maximum(mask_b.sum(1, keepdims=True), 1)
    centroid = (unit(ca) * unit(cb)).sum(1)
    nan = np.float64("nan")
    return {
        "maxsim": np.where(empty, nan, maxsim),
        "avgsim": np.where(empty, nan, avgsim),
        "centroid": np.where(empty, nan, centroid),
    }


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN for fewer than 3 items or a constant side."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)
