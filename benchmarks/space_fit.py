"""Similarity-space fit benchmark: the ABTT principal directions by an eigendecomposition of z'z against
an SVD of z, on a real store's token senses.

    python benchmarks/space_fit.py [--store PATH] [--view lexical] [--repeats 3] [--out FILE]

`sensekit.space.fit_space` takes the top principal directions of the z-scored sense vectors (at most
FIT_SAMPLE rows) from `eigh(z'z)`; it used `svd(z)`. Both are timed side by side, alternating, on the
same rows (the eigh arm is the whole `fit_space`, mean and scale included; the svd arm only the SVD of the
same z), and compared: the largest difference between the two projectors onto the D directions (sign-free), and the
largest difference between the vectors each space maps (sensekit.space.SimilaritySpace.apply). The
last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from common import RESULTS, log, report, side_by_side

from sensekit.space import FIT_SAMPLE, SimilaritySpace, default_components, fit_space


def main() -> None:
    from sensekit import open_store

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", type=Path, default=Path("senses.sensekit"))
    ap.add_argument("--view", default="lexical")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS / "space_fit.json")
    args = ap.parse_args()
    with open_store(args.store) as store:
        m = store.sense_matrix(view=args.view)
    x = m["embedding"][m["token_id"] >= 0]
    n, d = x.shape
    D = default_components(d)
    rows = np.random.default_rng(0).choice(n, min(n, FIT_SAMPLE), replace=False) if n > FIT_SAMPLE else slice(None)
    log(f"{n:,} token senses x {d}, {min(n, FIT_SAMPLE):,} rows fitted, {D} directions")
    scaled = fit_space(x, "zscore")  # the z-scoring both arms share; the SVD arm times its own z

    def svd_directions() -> np.ndarray:
        z = ((x[rows] - scaled.mean) / scaled.scale).astype(np.float64)
        return np.linalg.svd(z, full_matrices=False)[2]  # vt [d, d]

    arms = side_by_side({"eigh": lambda: fit_space(x, "zscore+abtt"), "svd": svd_directions}, args.repeats)
    (fast, ours), (slow, vt) = arms["eigh"], arms["svd"]
    svd_space = SimilaritySpace("zscore+abtt", ours.mean, ours.scale, vt[:D].astype(np.float32))
    p_ours, p_svd = ours.components.astype(np.float64), vt[:D]
    projector_diff = np.abs(p_ours.T @ p_ours - p_svd.T @ p_svd).max()  # [d, d] projectors: sign-free
    doc = {
        "store": str(args.store),
        "view": args.view,
        "rows": n,
        "rows_fitted": min(n, FIT_SAMPLE),
        "dim": d,
        "directions": D,
        "eigh_s": round(fast, 3),
        "svd_s": round(slow, 3),
        "speedup": round(slow / fast, 1),
        "projector_max_abs_diff": float(projector_diff),
        "max_abs_diff_applied": float(np.abs(ours.apply(x[:2000]) - svd_space.apply(x[:2000])).max()),
    }
    report(args.out, doc)


if __name__ == "__main__":
    main()
