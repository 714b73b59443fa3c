"""Lexicon throughput: Wiktionary dump parsing, kaikki JSONL ingestion, normalisation, span clouds.

    python benchmarks/lexicon.py [--quick] [--dump PATH] [--entries N] [--processes P]

- dump_pages_per_s: the shared test dump (or --dump) through wiktextract (`lexicon extract`'s
  full capture), P worker processes; --quick parses only its first 80 pages.
- kaikki_entries_per_s: a synthetic JSONL of N entries (300,000; --quick 100,000) made by
  repeating the parsed dump's entries with renamed words (head and linked words get the
  copy's suffix), read with `kaikki_pairs` (orjson, schema validation, pairs); target >= 20,000/s.
- relations_total: symmetric, deduplicated relation rows of that file (`normalize`).
- span_cloud_ms_per_1000: `span_clouds` for 1,000 spans of 2-3 tokens over 5,000 tokens x 10
  senses of width 1024 (K = 10).

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sensekit.lexicon.kaikki import kaikki_pairs
from sensekit.lexicon.pairs import ReadReport, normalize
from sensekit.lexicon.tokens import SenseTable, span_clouds
from sensekit.lexicon.wiktionary_dump import dump_entries
from sensekit.paths import shared_dir


def head_of_dump(path: Path, pages: int, out: Path) -> Path:
    """The first `pages` pages of a (bz2) dump as a small XML dump."""
    import bz2

    opener = bz2.open if path.suffix == ".bz2" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        text = fh.read()
    starts = [m.start() for m in re.finditer(r"<page>", text)]
    end = starts[pages] if pages < len(starts) else text.rindex("</mediawiki>")
    out.write_text(text[:end] + "</mediawiki>\n", encoding="utf-8")
    return out


def rename(line: bytes, suffix: str) -> dict:
    import orjson

    e = orjson.loads(line)
    e["word"] = e["word"] + suffix
    for holder in [e] + list(e.get("senses") or ()):
        for field in ("synonyms", "antonyms"):
            for link in holder.get(field) or ():
                link["word"] = link["word"] + suffix
    return e


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a run under a minute")
    ap.add_argument(
        "--dump", type=Path, default=shared_dir() / "data" / "wiktionary" / "enwiktionary-test-pages-articles.xml.bz2"
    )
    ap.add_argument("--entries", type=int, default=None)
    ap.add_argument("--processes", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("NLTK_DATA", str(shared_dir() / "data" / "nltk_data"))
    n_entries = args.entries or (100_000 if args.quick else 300_000)
    result: dict = {"quick": args.quick}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        dump = head_of_dump(args.dump, 80, tmp / "head.xml") if args.quick else args.dump
        stats: dict = {}
        entries = list(dump_entries(dump, processes=args.processes, lang_code="en", full=True, stats=stats))
        result.update(
            dump_pages=stats["pages"],
            dump_entries=stats["entries"],
            dump_seconds=round(stats["seconds"], 2),
            dump_pages_per_s=round(stats["pages"] / stats["seconds"], 1),
            dump_processes=args.processes,
        )
        print(
            f"dump: {stats['pages']} pages -> {stats['entries']} entries in {stats['seconds']:.1f} s", file=sys.stderr
        )

        import orjson

        lines = [orjson.dumps(e) for e in entries]
        path = tmp / "synthetic.jsonl"
        with open(path, "wb") as fh:
            i = 0
            while i < n_entries:
                for _ in entries:
                    if i >= n_entries:
                        break
                    copy_no = i // len(entries)
                    fh.write(
                        lines[i % len(lines)]
                        if copy_no == 0
                        else orjson.dumps(rename(lines[i % len(lines)], f"_{copy_no}"))
                    )
                    fh.write(b"\n")
                    i += 1
        size = path.stat().st_size
        report = ReadReport("synthetic")
        t0 = time.perf_counter()
        pairs = list(kaikki_pairs(path, report))
        dt = time.perf_counter() - t0
        result.update(
            kaikki_entries=report.read,
            kaikki_bytes=size,
            kaikki_seconds=round(dt, 2),
            kaikki_entries_per_s=round(report.read / dt),
            kaikki_pairs=len(pairs),
        )
        print(f"kaikki: {report.read} entries ({size / 1e6:.0f} MB) in {dt:.2f} s", file=sys.stderr)
        t0 = time.perf_counter()
        rows = normalize(pairs)
        result.update(relations_total=len(rows["head"]), normalize_seconds=round(time.perf_counter() - t0, 2))

    rng = np.random.default_rng(0)
    n_tok, k, d = 5000, 10, 1024
    table = SenseTable(
        np.repeat(np.arange(n_tok), k),
        np.tile(np.arange(k), n_tok),
        rng.standard_normal((n_tok * k, d), dtype=np.float32),
    )
    spans = [tuple(rng.integers(0, n_tok, size=int(rng.integers(2, 4)))) for _ in range(1000)]
    span_clouds(table, spans[:10])
    t0 = time.perf_counter()
    s_idx, _, emb = span_clouds(table, spans)
    result.update(
        span_cloud_ms_per_1000=round((time.perf_counter() - t0) * 1000, 1),
        span_cloud_dim=d,
        span_cloud_k=k,
        span_cloud_rows=int(len(s_idx)),
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
