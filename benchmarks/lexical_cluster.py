"""Lexical clustering cost: `cluster_adaptive` (each criterion) beside `cluster_samples` (k-means, k = 10) on the
same input, in one run.

    python benchmarks/lexical_cluster.py [--quick] [--tokens R] [--device cpu|cuda] [--states FILE --csr FILE]

Input: R tokens with 5..200 samples each (the shape a G = 50..200 reservoir gives: many small tokens, a
tail of full ones), d = 576, per-token Gaussian mixtures of 1..4 components; or, with --states/--csr, the
cached layer states of `benchmarks/lexical_dev.py cache` (the demo corpus, real reservoirs).
Reported: wall and CPU seconds of each method, the ratio to cluster_samples, senses made. The last line
printed is one JSON object (also written to benchmarks/results/lexical_cluster.json unless --quick).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import RESULTS, git_commit, log, machine, passive_omp, write_json

passive_omp()

import numpy as np  # noqa: E402


def synthetic(R: int, d: int = 576, seed: int = 0):
    rng = np.random.default_rng(seed)
    lengths = np.minimum(200, np.maximum(5, (rng.pareto(1.2, R) * 10).astype(np.int64)))
    rows = []
    for n in lengths:  # data generation only (not timed)
        c = int(rng.integers(1, 5))
        centres = rng.standard_normal((c, d)) * 3 + rng.standard_normal(d) * 5
        rows.append((centres[rng.integers(0, c, n)] + rng.standard_normal((n, d))).astype(np.float16))
    indptr = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    return np.arange(R, dtype=np.int64), indptr, np.concatenate(rows)


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--tokens", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--states", type=Path, default=None, help="states_L{N}.npy from lexical_dev.py cache")
    ap.add_argument("--csr", type=Path, default=None, help="cache.npz from lexical_dev.py cache (keys, indptr)")
    ap.add_argument("--min-sense-size", type=int, default=5)
    a = ap.parse_args()
    import torch

    from sensekit.builder.cluster import cluster_samples
    from sensekit.builder.lexical_cluster import CRITERIA, cluster_adaptive

    if a.states is not None:
        c = np.load(a.csr)
        keys, indptr, vectors = c["keys"], c["indptr"], np.load(a.states)
        source = f"cached states {a.states.name}"
    else:
        R = a.tokens or (300 if a.quick else 3000)
        keys, indptr, vectors = synthetic(R)
        source = f"synthetic: {R} tokens, 5..200 samples, d=576"
    log(f"{source}: {len(keys)} tokens, {len(vectors)} samples")
    out = {
        "source": source,
        "tokens": int(len(keys)),
        "samples": int(len(vectors)),
        "device": a.device,
        "torch_threads": torch.get_num_threads(),
    }
    res, wall, cpu = timed(lambda: cluster_samples(keys, indptr, vectors, 10, 3, device=a.device))
    out["cluster_samples_k10"] = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "senses": int(len(res.sense_key))}
    log(json.dumps(out["cluster_samples_k10"]))
    for crit in CRITERIA:
        res, w, c = timed(
            lambda crit=crit: cluster_adaptive(
                keys, indptr, vectors, 10, 3, min_sense_size=a.min_sense_size, criterion=crit, device=a.device
            )
        )
        n_s = np.bincount(np.searchsorted(keys, res.sense_key), minlength=len(keys))
        out[f"adaptive_{crit}"] = {
            "wall_s": round(w, 2),
            "cpu_s": round(c, 2),
            "ratio_to_kmeans_wall": round(w / max(wall, 1e-9), 2),
            "senses": int(len(res.sense_key)),
            "multi_sense_tokens": int((n_s >= 2).sum()),
        }
        log(json.dumps({crit: out[f"adaptive_{crit}"]}))
    out["commit"], out["machine"] = git_commit(), machine()
    if not a.quick:
        name = "lexical_cluster_real.json" if a.states is not None else "lexical_cluster.json"
        write_json(RESULTS / name, out)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
