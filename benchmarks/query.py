"""Query-path benchmark: a synthetic store of clustered sense vectors, timed side by side.

    python benchmarks/query.py [--quick] [--senses N] [--dim D]

Builds (once, cached under benchmarks/.cache) a store of N senses x D dims over N/10 tokens,
with synonym/antonym relations, then measures p50 latencies of the query API, HNSW recall@10
against brute force, our `neighbors` against a raw `hnswlib.knn_query` on the same index
(interleaved, same queries), and `sensekit query` as a whole process. The last line printed
is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sensekit import open_store  # noqa: E402
from sensekit.writer import StoreWriter  # noqa: E402

CACHE = Path(__file__).resolve().parent / ".cache"
SENSES_PER_TOKEN = 10


def word_of(i: int) -> str:
    return f"w{i}"


def build_store(path: Path, n_senses: int, dim: int, seed: int = 0) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    rng = np.random.default_rng(seed)
    n_tokens = n_senses // SENSES_PER_TOKEN
    tok = Tokenizer(models.WordLevel({word_of(i): i for i in range(n_tokens)} | {"[UNK]": n_tokens}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    path.parent.mkdir(parents=True, exist_ok=True)
    tok_path = path.parent / f"{path.name}.tokenizer.json"
    tok.save(str(tok_path))
    # Clustered: each token's senses sit around a few of 2,000 shared centres.
    centres = rng.standard_normal((2000, dim)).astype(np.float32)
    owners = np.repeat(np.arange(n_tokens), SENSES_PER_TOKEN)
    vectors = centres[rng.integers(0, len(centres), n_senses)] + 0.5 * rng.standard_normal((n_senses, dim)).astype(
        np.float32
    )
    pairs = rng.integers(0, n_tokens, (n_tokens * 2, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    kinds = np.where(rng.random(len(pairs)) < 0.8, "syn", "ant")
    heads = [word_of(a) for a in pairs[:, 0]] + [word_of(b) for b in pairs[:, 1]]
    related = heads[len(pairs) :] + heads[: len(pairs)]
    with StoreWriter(path, dim=dim, tokenizer_json=tok_path, provenance={"teacher": "synthetic"}) as w:
        w.add_tokens(np.arange(n_tokens), [" " + word_of(i) for i in range(n_tokens)], np.full(n_tokens, 100))
        sids = w.add_senses(
            vectors, np.tile(np.arange(SENSES_PER_TOKEN), n_tokens), np.full(n_senses, 10), token_ids=owners
        )
        w.add_contexts(
            {
                "sense_id": sids,
                "rank": np.zeros(n_senses, np.int16),
                "doc_id": ["synthetic"] * n_senses,
                "char_start": np.zeros(n_senses, np.int32),
                "char_end": np.full(n_senses, 5, np.int32),
                "snippet": ["a context snippet around the key token"] * n_senses,
                "mark_start": np.full(n_senses, 2, np.int32),
                "mark_end": np.full(n_senses, 9, np.int32),
                "distance": np.zeros(n_senses, np.float32),
            }
        )
        w.add_words([word_of(i) for i in range(n_tokens)], [[i] for i in range(n_tokens)], [None] * n_tokens)
        w.replace_relations(
            "synthetic",
            {
                "head": heads,
                "related": related,
                "kind": list(kinds) * 2,
                "derived": [False] * len(heads),
                "provenance": [{"gloss": "synthetic"}] * len(heads),
            },
        )


def p50_ms(fn, args) -> float:
    times = []
    for a in args:
        t = time.perf_counter()
        fn(a)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="50,000 senses (under 60 s)")
    ap.add_argument("--senses", type=int, default=None, help="number of senses (default 500,000; 50,000 with --quick)")
    ap.add_argument("--dim", type=int, default=576)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--ef", type=int, default=None, help="HNSW query beam (default: the store's recorded ef)")
    ap.add_argument("--rebuild", action="store_true")
    args = ap.parse_args()
    n_senses = args.senses or (50_000 if args.quick else 500_000)
    path = CACHE / f"synthetic-{n_senses}x{args.dim}.sensekit"
    if args.rebuild and path.exists():
        shutil.rmtree(path)
    build_s = None
    if not path.exists():
        t = time.perf_counter()
        build_store(path, n_senses, args.dim)
        build_s = time.perf_counter() - t
        print(f"built {path} in {build_s:.1f} s", file=sys.stderr)

    rng = np.random.default_rng(1)
    n_tokens = n_senses // SENSES_PER_TOKEN
    words = [word_of(i) for i in rng.integers(0, n_tokens, args.queries)]
    t = time.perf_counter()
    store = open_store(path, ef=args.ef)
    open_s = time.perf_counter() - t
    emb = store.sense_matrix()["embedding"]
    queries = emb[rng.integers(0, n_senses, args.queries)] + 0.3 * rng.standard_normal((args.queries, args.dim)).astype(
        np.float32
    )

    for w in words[:20]:  # warm-up: DuckDB plans, page cache
        store.senses(w), store.relations(w), store.neighbors(queries[0])
    senses_ms = p50_ms(store.senses, words)
    relations_ms = p50_ms(store.relations, words)

    # Interleaved: ours and raw hnswlib on the same index and queries, alternating per query.
    ours, raw = [], []
    for q in queries:
        t = time.perf_counter()
        store.index.knn_query(q, k=10)
        raw.append(time.perf_counter() - t)
        t = time.perf_counter()
        store.neighbors(q, k=10)
        ours.append(time.perf_counter() - t)
    neighbors_ms = statistics.median(ours) * 1e3
    overhead = statistics.median(ours) / statistics.median(raw)

    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    uq = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    truth = np.argsort(-(uq @ unit.T), axis=1)[:, :10]
    sense_ids = store.sense_matrix()["sense_id"]
    found = [[n.sense.sense_id for n in store.neighbors(q, k=10)] for q in queries]
    recall = float(np.mean([len(set(f) & set(sense_ids[t])) / 10 for f, t in zip(found, truth)]))
    store.close()

    exe = shutil.which("sensekit") or None
    cmd = [exe] if exe else [sys.executable, "-m", "sensekit.cli"]
    cold = []
    for w in words[:5]:
        t = time.perf_counter()
        subprocess.run(
            cmd + ["query", w, "--store", str(path), "--json"] + (["--ef", str(args.ef)] if args.ef else []),
            check=True,
            capture_output=True,
        )
        cold.append(time.perf_counter() - t)

    result = {
        "senses_p50_ms": round(senses_ms, 3),
        "relations_p50_ms": round(relations_ms, 3),
        "neighbors_p50_ms": round(neighbors_ms, 3),
        "recall_at_10": round(recall, 4),
        "overhead_vs_hnswlib": round(overhead, 3),
        "cli_cold_start_s": round(statistics.median(cold), 3),
        "open_store_s": round(open_s, 3),
        "n_senses": n_senses,
        "dim": args.dim,
        "ef": args.ef or store.meta["index"]["ef"],
        "store_build_s": round(build_s, 1) if build_s else None,
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "quick": args.quick,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
