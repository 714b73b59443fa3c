"""Query-path benchmark: a synthetic store of clustered sense vectors (or a real store), timed side by side.

    python benchmarks/query.py [--quick] [--senses N] [--dim D] [--store-dtype T] [--store PATH] [--out FILE]

Builds (once, cached under benchmarks/.cache) a store of N senses x D dims over N/10 tokens, with
synonym/antonym relations and the vectors in embeddings.npy at `--store-dtype` (float16, the build's
default, or float32), then measures p50 latencies of the query API, HNSW recall@10 against brute force
in the space the index searches (the view's similarity space, sensekit/space.py; raw cosine beside it for
comparison), our `neighbors` against a raw `hnswlib.knn_query` on the same index (interleaved, same
queries), and `sensekit query` as a whole process. `senses(word)` is timed three ways in one run: a
word's first call (a slice of the memory-mapped embeddings.npy; contexts wait for first use), the same
call with every sense's contexts read (plus one DuckDB query), in alternating blocks of words, and calls
for words already asked (the LRU). `--store PATH` measures a real store instead (no build, no CLI timing).
The load average is printed with the result: the machine may be shared. The last line printed is one
JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from common import git_commit, log, machine, write_json

from sensekit import open_store
from sensekit.store import SCHEMA_VERSION
from sensekit.writer import StoreWriter

CACHE = Path(__file__).resolve().parent / ".cache"
SENSES_PER_TOKEN = 10


def word_of(i: int) -> str:
    return f"w{i}"


def build_store(path: Path, n_senses: int, dim: int, seed: int = 0, dtype: str = "float16") -> None:
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
    with StoreWriter(path, dim=dim, tokenizer_json=tok_path, provenance={"teacher": "synthetic"}, dtype=dtype) as w:
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


def p50_ms(fn, args, before=None) -> float:
    times = []
    for a in args:
        if before is not None:
            before()
        t = time.perf_counter()
        fn(a)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def recall_at_10(store, queries: np.ndarray, space) -> float:
    """Mean overlap of `neighbors(q, k=10)` with the exact top 10 by cosine in `space`, over the indexed
    (token) senses, the set the index holds."""
    m = store.sense_matrix(view=store.default_view)
    keep = m["token_id"] >= 0
    ids, emb = m["sense_id"][keep], m["embedding"][keep]

    def unit(x):
        x = space.apply(x)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    truth = np.argsort(-(unit(queries) @ unit(emb).T), axis=1)[:, :10]
    found = [[n.sense.sense_id for n in store.neighbors(q, k=10)] for q in queries]
    return float(np.mean([len(set(f) & set(ids[t].tolist())) / 10 for f, t in zip(found, truth)]))


def first_call_times(store, arms: dict, words: list[str], block: int = 25) -> dict[str, list[float]]:
    """Seconds of each word's first call (its LRU emptied), per arm: name -> a function of the word.
    Arms take turns in blocks of `block` words, in a rotating order: per call, one arm's DuckDB scans would
    evict the other's working set from the CPU caches."""
    names = list(arms)
    times: dict[str, list[float]] = {name: [] for name in names}
    for turn, start in enumerate(range(0, len(words), block)):
        for name in names[turn % len(names) :] + names[: turn % len(names)]:
            call = arms[name]
            for w in words[start : start + block]:
                store._sense_cache.clear()
                t = time.perf_counter()
                call(w)
                times[name].append(time.perf_counter() - t)
    return times


def word_sample(store, n: int, rng) -> list[str]:
    """`n` words (with repeats) of a real store whose single token has senses in the default view."""
    words = sorted(
        {t.strip() for t in store._token_text.values() if t.strip() and t.startswith(" ") and t.strip().isalnum()}
    )
    words = [w for w in words if store.sense_ids(w)]
    return [words[i] for i in rng.integers(0, len(words), n)]


def measure(store, words: list[str], queries: np.ndarray) -> dict:
    """The in-process timings and recall of one open store."""
    from sensekit.space import SimilaritySpace

    for w in words[:20]:  # warm-up: DuckDB plans, page cache
        store.senses(w), store.relations(w), store.neighbors(queries[0])
    arms = {  # contexts are read on first use: `senses()` alone never queries DuckDB
        "senses": store.senses,
        "with_contexts": lambda w: [len(x.contexts) for x in store.senses(w)],
    }
    first = first_call_times(store, arms, words)
    for w in words:
        store.senses(w)
    cached_ms = p50_ms(store.senses, words)
    relations_ms = p50_ms(store.relations, words)

    # Interleaved: ours and raw hnswlib on the same index and queries, alternating per query.
    ours, raw = [], []
    for q in queries:
        t = time.perf_counter()
        store.index.knn_query(store.space.apply(q), k=10)
        raw.append(time.perf_counter() - t)
        t = time.perf_counter()
        store.neighbors(q, k=10)
        ours.append(time.perf_counter() - t)
    return {
        "senses_p50_ms": round(cached_ms, 4),
        "senses_first_call_p50_ms": round(statistics.median(first["senses"]) * 1e3, 3),
        "senses_and_contexts_first_call_p50_ms": round(statistics.median(first["with_contexts"]) * 1e3, 3),
        "contexts_over_senses": round(
            statistics.median(first["with_contexts"]) / statistics.median(first["senses"]), 2
        ),
        "first_call_over_cached": round(statistics.median(first["senses"]) * 1e3 / cached_ms, 1),
        "store_dtype": str(store._embeddings.dtype),
        "relations_p50_ms": round(relations_ms, 3),
        "neighbors_p50_ms": round(statistics.median(ours) * 1e3, 3),
        "overhead_vs_hnswlib": round(statistics.median(ours) / statistics.median(raw), 3),
        "recall_at_10": round(recall_at_10(store, queries, store.space), 4),
        "recall_at_10_raw_cosine": round(recall_at_10(store, queries, SimilaritySpace.identity(store.dim)), 4),
        "space": store.space.transform,
        "view": store.default_view,
        "n_senses": int((store.sense_matrix(view=store.default_view)["token_id"] >= 0).sum()),
        "dim": store.dim,
        "ef": store.index.ef if hasattr(store.index, "ef") else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="50,000 senses (under 60 s)")
    ap.add_argument("--senses", type=int, default=None, help="number of senses (default 500,000; 50,000 with --quick)")
    ap.add_argument("--dim", type=int, default=576)
    ap.add_argument("--store-dtype", choices=("float16", "float32"), default="float16", help="of the synthetic store")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--ef", type=int, default=None, help="HNSW query beam (default: the store's recorded ef)")
    ap.add_argument("--store", type=Path, default=None, help="measure this real store instead of a synthetic one")
    ap.add_argument("--out", type=Path, default=None, help="also write the result JSON to this file")
    ap.add_argument("--rebuild", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    build_s = None
    if args.store:
        path = args.store
    else:
        n_senses = args.senses or (50_000 if args.quick else 500_000)
        # float16 keeps the plain name, the one benchmarks/serve.py builds and reuses
        suffix = "" if args.store_dtype == "float16" else f"-{args.store_dtype}"
        path = CACHE / f"synthetic-{n_senses}x{args.dim}{suffix}-v{SCHEMA_VERSION}.sensekit"
        if path.exists() and args.rebuild:
            shutil.rmtree(path)
        if not path.exists():
            t = time.perf_counter()
            build_store(path, n_senses, args.dim, dtype=args.store_dtype)
            build_s = time.perf_counter() - t
            log(f"built {path} in {build_s:.1f} s")

    t = time.perf_counter()
    store = open_store(path, ef=args.ef)
    open_s = time.perf_counter() - t
    if args.store:
        words = word_sample(store, args.queries, rng)
    else:
        words = [word_of(i) for i in rng.integers(0, n_senses // SENSES_PER_TOKEN, args.queries)]
    m = store.sense_matrix(view=store.default_view)
    emb = m["embedding"][m["token_id"] >= 0]
    scale = float(np.linalg.norm(emb, axis=1).mean() / np.sqrt(store.dim))  # noise relative to the vectors
    queries = emb[rng.integers(0, len(emb), args.queries)] + 0.3 * scale * rng.standard_normal(
        (args.queries, store.dim)
    ).astype(np.float32)
    result = measure(store, words, queries)
    store.close()

    if not args.store:
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
        result["cli_cold_start_s"] = round(statistics.median(cold), 3)

    result.update(
        {
            "open_store_s": round(open_s, 3),
            "store": path.name,
            "synthetic": not args.store,
            "store_build_s": round(build_s, 1) if build_s else None,
            "queries": args.queries,
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "machine": machine(),
            "commit": git_commit(),
            "quick": args.quick,
        }
    )
    if args.out:
        write_json(args.out, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
