"""Word similarity of one store's senses under each similarity space, side by side in one run.

    python benchmarks/space_ablation.py --store senses.sensekit [--components 6]

Fits every space of sensekit/space.py on the store's raw token senses and prints, per space, the
mean cosine of random sense pairs (anisotropy) and the Spearman correlation of MaxSim, AvgSim and
the centroid cosine with SimLex-999 and WordSim-353 (pairs of single-token words with senses).
The store's own space is not used: this is how its default was compared with the alternatives.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from scipy.stats import spearmanr

from sensekit import open_store
from sensekit.paths import shared_dir
from sensekit.space import SPACE_TRANSFORMS, fit_space


def read_pairs(path) -> list[tuple[str, str, float]]:
    rows = []
    for line in open(path, encoding="utf-8"):
        if line.startswith("#") or not line.strip():
            continue
        a, b, v = line.rstrip("\n").split("\t")[:3]
        rows.append((a.lower(), b.lower(), float(v)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default="senses.sensekit")
    ap.add_argument("--components", type=int, default=None, help="abtt components (default d/100)")
    args = ap.parse_args()
    store = open_store(args.store)
    m = store.sense_matrix()
    keep = m["token_id"] >= 0
    order = np.argsort(m["token_id"][keep], kind="stable")
    tok, raw = m["token_id"][keep][order], m["embedding"][keep][order]
    evals = {
        name: read_pairs(shared_dir() / "data" / "eval" / f)
        for name, f in (("simlex999", "simlex999.txt"), ("wordsim353", "wordsim353.tsv"))
    }

    def rows(word):
        ids = store.token_ids(word)
        lo, hi = np.searchsorted(tok, [ids[0], ids[0] + 1]) if len(ids) == 1 else (0, 0)
        return (lo, hi) if hi > lo else None

    rng = np.random.default_rng(0)
    a, b = rng.integers(0, len(raw), 20000), rng.integers(0, len(raw), 20000)
    out = {}
    for transform in SPACE_TRANSFORMS:
        x = fit_space(raw, transform, args.components).apply(raw)
        x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        res = {"anisotropy": round(float((x[a] * x[b]).sum(1).mean()), 4)}
        for name, pairs in evals.items():
            gold, scores = [], []
            for w1, w2, v in pairs:
                r1, r2 = rows(w1), rows(w2)
                if r1 is None or r2 is None:
                    continue
                A, B = x[r1[0] : r1[1]], x[r2[0] : r2[1]]
                sim = A @ B.T
                ca, cb = A.mean(0), B.mean(0)
                gold.append(v)
                scores.append((sim.max(), sim.mean(), ca @ cb / np.linalg.norm(ca) / np.linalg.norm(cb)))
            s = np.asarray(scores)
            res[name] = {
                "pairs": len(gold),
                **{
                    k: round(float(spearmanr(gold, s[:, i]).statistic), 3)
                    for i, k in enumerate(("maxsim", "avgsim", "centroid"))
                },
            }
        out[transform] = res
        print(f"{transform:12s} {json.dumps(res)}", flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
