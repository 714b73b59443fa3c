"""The bundle layout behind `senses(word)`, side by side: DuckDB row-group size for the contexts query.

    python benchmarks/store_layout.py [--senses N] [--dim D] [--store PATH] [--words W] [--out FILE]

Writes the synthetic store of benchmarks/query.py twice in a temporary folder, once with the writer's
2,048-row row groups and once with DuckDB's default 122,880, timing each write (rows, index, vector files).
With --store PATH (any schema-4 store), its tables are copied into the two layouts instead (rows in their
order; the index, tokenizer and vector files linked), and its own single-token words are asked.
Then it times a word's first `senses()` call (LRU emptied) in each layout, rotating in blocks of 25
words: the vectors are a slice of the memory-mapped embeddings.npy in both, so the layouts differ only
in the one DuckDB query for the word's contexts. Sizes on disk are reported beside. The last line
printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from common import git_commit, log, machine, write_json
from query import SENSES_PER_TOKEN, build_store, first_call_times, word_of, word_sample

import sensekit.writer
from sensekit import open_store
from sensekit.fs import DB_FILE, EMBEDDINGS_FILE

LAYOUTS = {"rows_2048": 2048, "rows_122880": 122_880}


def copy_store(src: Path, dst: Path, rows: int) -> None:
    """The bundle at `src` with its tables rewritten in row groups of `rows` (schemas/store.sql's DDL, rows
    in their stored order) and its other files linked."""
    import duckdb

    from sensekit import _sql
    from sensekit.paths import schema_text

    dst.mkdir()
    for f in src.iterdir():
        if f.name != DB_FILE:
            (dst / f.name).symlink_to(f.resolve())
    con = duckdb.connect()
    con.execute(_sql.ATTACH_STORE, {"path": str(dst / DB_FILE), "rows": rows})
    con.execute(_sql.USE_STORE)
    con.execute("ATTACH $path AS src (READ_ONLY)", {"path": str(src / DB_FILE)})
    dim = con.execute("SELECT value FROM src.meta WHERE key = 'dim'").fetchall()[0][0]
    con.execute(schema_text("store.sql").replace("{dim}", str(int(dim))))
    for (table,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = 'src'").fetchall():
        con.execute(f"INSERT INTO store.{table} SELECT * FROM src.{table} ORDER BY rowid")  # fixed table names
    con.execute("CHECKPOINT store")
    con.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--senses", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=576)
    ap.add_argument("--store", type=Path, default=None, help="copy this real store into the two layouts")
    ap.add_argument("--words", type=int, default=400)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    result: dict = {"store": str(args.store) if args.store else "synthetic", "words": args.words, "layouts": {}}
    if not args.store:
        result.update({"senses": args.senses, "dim": args.dim})
    with tempfile.TemporaryDirectory(prefix="store-layout-") as tmp:
        stores = {}
        for name, rows in LAYOUTS.items():
            sensekit.writer.ROW_GROUP_ROWS = rows  # what StoreWriter attaches the database with
            path = Path(tmp) / f"{name}.sensekit"
            t = time.perf_counter()
            if args.store:
                copy_store(args.store, path, rows)
            else:
                build_store(path, args.senses, args.dim)
            seconds = time.perf_counter() - t
            log(f"{name}: written in {seconds:.1f} s")
            result["layouts"][name] = {
                "write_s": round(seconds, 1),
                "duckdb_mb": round((path / DB_FILE).stat().st_size / 1e6, 1),
                "embeddings_mb": round((path / EMBEDDINGS_FILE).stat().st_size / 1e6, 1),
            }
            stores[name] = open_store(path)
        rng = np.random.default_rng(1)
        if args.store:
            words = word_sample(stores["rows_2048"], args.words, rng)
        else:
            words = [word_of(i) for i in rng.integers(0, args.senses // SENSES_PER_TOKEN, args.words)]
        for store in stores.values():  # warm-up: plans, page cache
            for w in words[:20]:
                store.senses(w)
        arms = {name: (store, True) for name, store in stores.items()}
        times = first_call_times(arms, words)
        for store in stores.values():
            store.close()
    p50 = {arm: round(statistics.median(v) * 1e3, 3) for arm, v in times.items()}
    result.update(
        {
            "senses_first_call_p50_ms": p50,
            "default_over_2048_first_call": round(p50["rows_122880"] / p50["rows_2048"], 2),
            "write_s_ratio_2048_over_default": round(
                result["layouts"]["rows_2048"]["write_s"] / result["layouts"]["rows_122880"]["write_s"], 2
            ),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "machine": machine(),
            "commit": git_commit(),
        }
    )
    if args.out:
        write_json(args.out, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
