"""Reader processes that query one store while a writer replaces it: the concurrency tests and
benchmarks/reliability.py both use them (the tests import this module; the benchmark runs it as a program).

Each reader answers `n` queries, checking every answer against the one computed beforehand for the store
version it came from (known by its content fingerprint). Only the query path is imported: no torch.

Every query reads the store: the handle's sense cache is emptied first (`drop_sense_cache`), so the
senses come from DuckDB and embeddings.npy of the version the handle opened, not from memory (a handle
caches a word's senses after its first query, and there are only a few words).

Crossing a replacement, for certain: after each replacement the writer records the version now at the path
(its content fingerprint) in a small "generation" file (`bump_generation`). A query asked on a store handle
whose version differs from the recorded one "crossed a replacement" (`crossed`): the store was replaced
after the reader opened it, and the query is read from the replaced files of the version the reader holds,
or refused with a "store changed, reopen" StoreError (`reopened`) and asked again on the new version. Only
queries that began with an empty sense cache are counted (`uncached`; `crossed` <= `uncached`). (A
replacement whose record is not written yet is not counted: the count is a lower bound.) Halfway through,
each reader waits until another version has replaced the one it holds, so that every reader crosses at
least one replacement, however the processes are scheduled.

    python tests/readers.py expect STORE EXPECTED.json WORD...       add STORE's answers to EXPECTED.json
    python tests/readers.py read STORE EXPECTED.json N REOPEN_EVERY OUT.json [GENERATION]
    python tests/readers.py run STORE EXPECTED.json PROCESSES N REOPEN_EVERY OUT_DIR [GENERATION]
        start PROCESSES readers, wait for them, print their summed counts as one JSON line
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from sensekit import open_store
from sensekit.errors import StoreError

GATE_TIMEOUT_S = 1800.0  # a reader waits this long at most for the writer's next replacement
COUNTS = ("ok", "wrong", "reopened", "unknown_version", "crossed", "uncached")


def drop_sense_cache(store) -> None:
    """Empty a store handle's sense cache: its next query reads DuckDB and embeddings.npy of the version it
    opened (the files a replacement renamed away, when one did), not the answers of earlier queries."""
    with store._sense_cache_lock:
        store._sense_cache.clear()
        store._sense_cache_rows = 0


def answer(store, word: str) -> dict:
    """What a reader asks for one word: its senses, relations and 3 nearest neighbours, as plain data."""
    senses = store.senses(word)
    return {
        "senses": [[x.sense_id, x.sense_index, x.count, float(round(float(x.embedding.sum()), 4))] for x in senses],
        "relations": sorted([r.related, r.kind, r.source] for r in store.relations(word)),
        "neighbors": [[n.sense.sense_id, round(n.distance, 4)] for n in store.neighbors(word, k=3)],
    }


def answers(path: Path, words: list[str]) -> tuple[str, dict]:
    """(content fingerprint, {word: answer}) of the store at `path` now."""
    with open_store(path) as s:
        return s.meta["content_sha256"], {w: answer(s, w) for w in words}


def add_expected(path: Path, expected_file: Path, words: list[str]) -> str:
    """Add the store's current answers to EXPECTED.json (a {fingerprint: {word: answer}} map); returns the
    fingerprint."""
    expected_file = Path(expected_file)
    known = json.loads(expected_file.read_text()) if expected_file.is_file() else {}
    fp, got = answers(path, words)
    known[fp] = got
    expected_file.write_text(json.dumps(known))
    return fp


def latest(path: Path | None) -> str | None:
    """The content fingerprint of the writer's last finished replacement (None before the first)."""
    try:
        return json.loads(Path(path).read_text())["version"] if path else None
    except (FileNotFoundError, ValueError, KeyError):
        return None


def bump_generation(path: Path, store: Path) -> int:
    """The writer: one more replacement of `store` has finished; records their count and the version now at
    the path (written through a rename: readers never read half a file)."""
    try:
        n = json.loads(Path(path).read_text())["n"] + 1
    except (FileNotFoundError, ValueError, KeyError):
        n = 1
    with open_store(store) as s:
        version = s.meta["content_sha256"]
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps({"n": n, "version": version}))
    os.replace(tmp, path)
    return n


def read(store: str, expected: dict, n: int, reopen_every: int, gen_file: str | None = None) -> dict:
    """One reader: `n` queries, reopening the store every `reopen_every` (0: hold it open throughout)."""
    words = sorted(next(iter(expected.values())))
    counts: dict = {k: 0 for k in COUNTS} | {"errors": [], "versions": {}}
    s, since_open, t0, i, waited = None, 0, time.perf_counter(), 0, False
    while i < n:
        if s is None or (reopen_every and since_open >= reopen_every):
            if s is not None:
                s.close()
            s, since_open = open_store(store), 0
        mine = s.meta.get("content_sha256")
        if gen_file and i == n // 2 and not waited:  # halfway, once: wait until another version replaced this one
            deadline = time.monotonic() + GATE_TIMEOUT_S
            while latest(gen_file) in (None, mine) and time.monotonic() < deadline:
                time.sleep(0.01)
            if latest(gen_file) in (None, mine):
                counts["errors"].append(f"no replacement within {GATE_TIMEOUT_S:.0f} s")
            waited = True  # once only: a reopened handle waiting again could be refused ("reopen") forever
        # the store at the path is another version than this reader's (a replacement finished since it opened)
        crossed = latest(gen_file) not in (None, mine)
        version = s.meta.get("content_sha256")
        word = words[i % len(words)]
        drop_sense_cache(s)
        uncached = not s._sense_cache  # nothing in memory: this query reads the store's files
        counts["uncached"] += uncached
        crossed = crossed and uncached
        try:
            got = answer(s, word)
        except StoreError as exc:
            if "changed" in str(exc) and "reopen" in str(exc):
                counts["reopened"] += 1
                counts["crossed"] += crossed
                s.close()
                s = None
                continue  # the same query again, on the store's new version
            counts["errors"].append(f"{type(exc).__name__}: {exc}"[:300])
            got = None
        except Exception as exc:  # a crash: reported, never hidden
            counts["errors"].append(f"{type(exc).__name__}: {exc}"[:300])
            got = None
        if got is not None:
            counts["crossed"] += crossed
            if version not in expected:
                counts["unknown_version"] += 1
            elif got == expected[version][word]:
                counts["ok"] += 1
            else:
                counts["wrong"] += 1
                want = expected[version][word]
                counts["errors"].append(f"wrong answer for {word!r} on {version[:12]}: {got} != {want}"[:300])
        counts["versions"][version[:12]] = counts["versions"].get(version[:12], 0) + 1
        i += 1
        since_open += 1
    if s is not None:
        s.close()
    counts["seconds"] = time.perf_counter() - t0
    return counts


def start_readers(
    store: Path,
    expected: Path,
    out_dir: Path,
    processes: int,
    queries: int,
    reopen_every: int,
    gen_file: Path | None = None,
) -> list[tuple[subprocess.Popen, Path]]:
    """Start `processes` reader processes (this file, `read`); each writes its counts to OUT_DIR/reader-I.json."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    procs = []
    for i in range(processes):
        out = Path(out_dir) / f"reader-{i}.json"
        argv = ["read", store, expected, queries, reopen_every, out] + ([gen_file] if gen_file else [])
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), *map(str, argv)], env=env, stderr=subprocess.PIPE
        )
        procs.append((proc, out))
    return procs


def collect(procs: list[tuple[subprocess.Popen, Path]], timeout: float = 1800) -> dict:
    """Sum the readers' counts; a reader that died is reported with its stderr. A reader still running after
    `timeout` seconds is killed (never left behind) and reported."""
    total: dict = {k: 0 for k in COUNTS} | {"errors": [], "versions": {}, "seconds": 0.0}
    deadline = time.monotonic() + timeout
    for proc, out in procs:
        try:
            _, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            total["errors"].append(f"reader still running after {timeout:.0f} s: killed")
            continue
        if proc.returncode != 0 or not out.is_file():
            total["errors"].append(f"reader exited {proc.returncode}: {err.decode(errors='replace')[-500:]}")
            continue
        counts = json.loads(out.read_text())
        for key in COUNTS:
            total[key] += counts[key]
        total["errors"] += counts["errors"]
        for v, k in counts["versions"].items():
            total["versions"][v] = total["versions"].get(v, 0) + k
        total["seconds"] = max(total["seconds"], counts["seconds"])
    return total


def main(argv: list[str]) -> None:
    cmd, args = argv[0], argv[1:]
    if cmd == "expect":
        print(add_expected(Path(args[0]), Path(args[1]), args[2:]))
    elif cmd == "read":
        store, expected, n, reopen_every, out = args[:5]
        counts = read(store, json.loads(Path(expected).read_text()), int(n), int(reopen_every), *args[5:6])
        Path(out).write_text(json.dumps(counts))
    elif cmd == "run":
        store, expected, processes, n, reopen_every, out_dir = args[:6]
        gen_file = Path(args[6]) if len(args) > 6 else None
        procs = start_readers(
            Path(store), Path(expected), Path(out_dir), int(processes), int(n), int(reopen_every), gen_file
        )
        print(json.dumps(collect(procs)))
    else:
        raise SystemExit(f"unknown command {cmd!r}: expect, read or run")


if __name__ == "__main__":
    main(sys.argv[1:])
