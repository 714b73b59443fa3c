"""A real store's size against its float32 sense matrix, `senses()` first-call latency and HNSW recall@10.

    python benchmarks/store_size.py STORE [STORE ...] [--words 300] [--queries 500] [--migrate V3_STORE] [--out FILE]

For each bundle: the bytes of each file and their sum over the float32 sense matrix (every sense row x dim x 4
bytes: what one copy of the vectors costs), the p50/p90 of a word's first `senses()` call (the LRU emptied
before each call), and recall@10 of each view's HNSW index in its own similarity space against exact cosine
search over the same vectors. The script reads stores of schema 3 too, when run with the sensekit that wrote
them on PYTHONPATH (the v3 side of docs/store.md's table). --migrate times `sensekit migrate` on a copy of a
v3 store. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from common import git_commit, log, machine, write_json

from sensekit import open_store


def _default_view(store) -> str:
    view = getattr(store, "default_view", None)  # schema 4
    return view if isinstance(view, str) else store.view  # schema 3: a string attribute


def bundle_size(path: Path, store) -> dict:
    files = {p.name: p.stat().st_size for p in sorted(path.iterdir()) if p.is_file()}
    rows = len(store._sense_ids)
    matrix = rows * store.dim * 4
    return {
        "files": files,
        "bytes": sum(files.values()),
        "sense_rows": rows,
        "dim": store.dim,
        "float32_matrix_bytes": matrix,
        "ratio": round(sum(files.values()) / matrix, 3),
    }


def first_call_ms(store, words: list[str]) -> dict:
    times = []
    for word in words:
        store._sense_cache.clear()
        t = time.perf_counter()
        store.senses(word)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return {
        "words": len(words),
        "p50_ms": round(statistics.median(times), 4),
        "p90_ms": round(times[int(0.9 * (len(times) - 1))], 4),
    }


def recall_at_10(store, view: str, queries: int, seed: int = 0) -> float:
    m = store.sense_matrix(view=view)
    keep = m["token_id"] >= 0
    ids, vectors = m["sense_id"][keep], m["embedding"][keep]
    space = store.spaces[view]
    index = store.indexes[view]
    x = space.apply(vectors)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(ids), size=min(queries, len(ids)), replace=False)
    exact = np.argsort(-(x[picks] @ x.T), axis=1)[:, :10]  # [q, 10] rows of the brute-force top 10
    labels, _ = index.knn_query(x[picks], k=10)
    hits = [len(set(ids[e].tolist()) & set(map(int, lab))) for e, lab in zip(exact, labels)]
    return round(float(np.sum(hits)) / (10 * len(picks)), 4)


def measure(path: Path, n_words: int, queries: int) -> dict:
    with open_store(path) as s:
        default = _default_view(s)
        tokens = np.unique(s.sense_matrix(view=default)["token_id"])
        tokens = tokens[tokens >= 0]
        rng = np.random.default_rng(0)
        words = [
            s._token_text[int(t)].strip() for t in rng.choice(tokens, size=min(n_words, len(tokens)), replace=False)
        ]
        words = [w for w in words if w and len(s.token_ids(w)) == 1]
        return {
            "store": str(path),
            "schema_version": int(s.meta["schema_version"]),
            "dtype": (s.meta.get("embeddings") or {}).get("dtype", "float32"),
            "size": bundle_size(path, s),
            "senses_first_call": first_call_ms(s, words),
            "recall_at_10": {v: recall_at_10(s, v, queries) for v in s.views if s.indexes[v] is not None},
        }


def time_migrate(v3: Path) -> dict:
    from sensekit.migrate import migrate

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / v3.name
        shutil.copytree(v3, copy)
        t = time.perf_counter()
        result = migrate(copy)
        return {"store": str(v3), "seconds": round(time.perf_counter() - t, 2), **result}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("stores", nargs="+", type=Path)
    ap.add_argument("--words", type=int, default=300)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--migrate", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    results = []
    for path in args.stores:
        log(f"measuring {path}")
        results.append(measure(path, args.words, args.queries))
    doc = {"commit": git_commit(), "machine": machine(), "stores": results}
    if args.migrate:
        log(f"migrating a copy of {args.migrate}")
        doc["migrate"] = time_migrate(args.migrate)
    if args.out:
        write_json(args.out, doc)
    print(json.dumps(doc))


if __name__ == "__main__":
    main()
