"""Reliability campaign: runs the reliability tests and a full-size concurrency check, and prints
one JSON summary as its last line (also written, with details, to benchmarks/results/reliability.json).

    python benchmarks/reliability.py [--quick] [--processes 8] [--queries 2000] [--out FILE]

1. pytest over tests/test_reliability_*.py and tests/test_families.py (the distill family exactness tests),
   each test's outcome collected by a small plugin:
   - bad_inputs_tried / bad_inputs_clean: the bad-input cases (tests/test_reliability_bad_input.py), and
     those that ended as one line with the right exit code; fuzz_tests_passed: the hypothesis fuzz tests;
   - kills_tried / kills_survived: processes SIGKILLed at a named moment (the tests `test_killed_*`: a build
     in its harvest, clustering, store write, mid-checkpoint write, mid-index write, between the two halves
     of the directory swap; distill after a checkpoint), after which the old store was intact (opens, same
     fingerprint); resumes_equal: resumed runs equal to uninterrupted ones;
   - full_disks_tried / full_disks_clean: full disks (`test_full_disk_*`, need root for a tmpfs): one-line
     error, the old store intact;
   - mismatches_refused: mismatches refused before any work, naming both sides;
   - families_exact: model families (Llama, Qwen2, Mistral, Gemma, GPT-2, Phi, GPT-NeoX, Gemma-2, Cohere,
     Granite, Gemma-3) whose every test passed: split forward == full forward, head(final hidden) == logits.
2. --processes reader processes x --queries queries on one synthetic store (20,000 senses; 200,000 without
   --quick), every answer checked against the one computed beforehand (concurrent_queries_ok); then readers
   (a quarter of the queries with --quick) while a writer alternately rebuilds the store and runs
   `relations add` on it, each answer checked against its version's (queries_during_writes_ok). The readers
   are tests/readers.py; halfway, each waits for a replacement that finished after it opened the store, so
   every reader crosses at least one: queries_crossed_replacement counts the queries asked on a store opened
   before a replacement that had finished (answered from the old version, or "changed, reopen": reopen_messages),
   each read from the store's files: a reader empties its handle's sense cache before every query
   (uncached_queries counts those, so a crossing is never a cached answer).
3. data_lost: failed kill, concurrency and reproducibility tests, plus wrong or unexplained answers of step 2.
   It must be 0.

Skipped tests (no root for the tmpfs, no ../shared data) are counted in `skipped`, never as passed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS, ROOT, machine, passive_omp, write_json
from query import build_store  # the query benchmark's synthetic store

TESTS = ROOT / "tests"
READERS = TESTS / "readers.py"  # the reader processes, run as a program (the concurrency tests import it)
passive_omp()

SUITES = {
    "bad_input": "test_reliability_bad_input.py",
    "fuzz": "test_reliability_fuzz.py",
    "kills": "test_reliability_kills.py",
    "mismatches": "test_reliability_mismatches.py",
    "concurrency": "test_reliability_concurrency.py",
    "reproducibility": "test_reliability_reproducibility.py",
    "families": "test_families.py",
}
GUARDS_DATA = ("kills", "concurrency", "reproducibility")  # a failure here may mean lost or wrong data


class Outcomes:
    """pytest plugin: nodeid -> passed | failed | skipped (a failed setup or teardown counts as failed)."""

    def __init__(self) -> None:
        self.results: dict[str, str] = {}

    def pytest_runtest_logreport(self, report) -> None:
        if report.when == "call" or report.outcome != "passed":
            if self.results.get(report.nodeid) != "failed":
                self.results[report.nodeid] = report.outcome


def run_tests(extra: list[str]) -> dict[str, dict[str, str]]:
    """Run every suite in one pytest session; returns suite -> {nodeid: outcome}."""
    import pytest

    plugin = Outcomes()
    os.chdir(ROOT)
    pytest.main([str(TESTS / f) for f in SUITES.values()] + ["-q", "-p", "no:cacheprovider", *extra], plugins=[plugin])
    by_suite: dict[str, dict[str, str]] = {s: {} for s in SUITES}
    for nodeid, outcome in plugin.results.items():
        for suite, file in SUITES.items():
            if nodeid.split("::")[0].endswith(file):
                by_suite[suite][nodeid] = outcome
    return by_suite


def _count(results: dict[str, str], outcome: str, pattern: str = "") -> int:
    return sum(1 for nodeid, o in results.items() if o == outcome and re.search(pattern, nodeid))


def _tried(results: dict[str, str], pattern: str = "") -> int:
    """Tests that ran (passed or failed, not skipped)."""
    return sum(1 for nodeid, o in results.items() if o != "skipped" and re.search(pattern, nodeid))


def families_exact(results: dict[str, str]) -> tuple[int, list[str], list[str]]:
    """Families (the last part of a test's parameter id) whose every test passed."""
    seen: dict[str, bool] = {}
    for nodeid, outcome in results.items():
        m = re.search(r"\[(?:.*-)?([a-z0-9_]+)\]$", nodeid)
        if m:
            seen[m.group(1)] = seen.get(m.group(1), True) and outcome == "passed"
    exact = sorted(f for f, ok in seen.items() if ok)
    return len(exact), exact, sorted(f for f, ok in seen.items() if not ok)


# -- concurrency at full size -----------------------------------------------------------------------------------------
def _readers(*args) -> list[str]:
    return [sys.executable, str(READERS), *map(str, args)]


def _run_readers(store: Path, work: Path, processes: int, queries: int, reopen_every: int, writer=None) -> dict:
    """`processes` readers x `queries`; with `writer`, it replaces the store until they end (a generation file
    tells the readers when each replacement has finished). Returns the readers' summed counts and the count
    of replacements."""
    gen = work / f"generation-{reopen_every}-{writer is not None}"
    out = work / f"readers-{gen.name}"
    out.mkdir()
    proc = subprocess.Popen(
        _readers(
            "run", store, work / "expected.json", processes, queries, reopen_every, out, *([gen] if writer else [])
        ),
        stdout=subprocess.PIPE,
        text=True,
    )
    replacements = 0
    while writer is not None and proc.poll() is None:
        writer(replacements)
        replacements += 1
        bump_generation(gen, store)
    stdout, _ = proc.communicate(timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"the readers exited {proc.returncode}")
    return {**json.loads(stdout.strip().splitlines()[-1]), "replacements": replacements}


def bump_generation(path: Path, store: Path) -> None:
    """As tests/readers.py's bump_generation: the count of finished replacements and the version now at the
    path, written through a rename."""
    from sensekit import open_store

    n = json.loads(path.read_text())["n"] + 1 if path.is_file() else 1
    with open_store(store) as s:
        version = s.meta["content_sha256"]
    path.with_name(path.name + ".tmp").write_text(json.dumps({"n": n, "version": version}))
    os.replace(path.with_name(path.name + ".tmp"), path)


def concurrency(work: Path, n_senses: int, processes: int, queries: int, writes_queries: int) -> dict:
    """Readers on a synthetic store, alone (`queries` each) and while a writer replaces it (`writes_queries`
    each, every reader crossing at least one replacement). Returns the readers' counts."""
    from sensekit.writer import StoreWriter

    store = work / "bench.sensekit"
    n_tokens = n_senses // 10
    words = [f"w{i}" for i in range(0, n_tokens, max(1, n_tokens // 400))] + ["no-such-word", "w1 w2"]

    def relations_add() -> None:
        with StoreWriter.update(store) as w:
            w.replace_relations(
                "bench:extra",
                {
                    "head": ["w0", "w1"],
                    "related": ["w1", "w0"],
                    "kind": ["ant", "ant"],
                    "derived": [False, False],
                    "provenance": [None, None],
                },
            )

    def expect() -> None:
        subprocess.run(_readers("expect", store, work / "expected.json", *words), check=True, stdout=subprocess.DEVNULL)

    t0 = time.perf_counter()
    build_store(store, n_senses, 64)  # version 0 (a rebuild gives it again: same inputs and seed)
    build_seconds = time.perf_counter() - t0
    expect()
    relations_add()  # version 1
    expect()
    build_store(store, n_senses, 64)  # back to version 0 for the readers

    alone = _run_readers(store, work, processes, queries, reopen_every=0)
    during = _run_readers(
        store,
        work,
        processes,
        writes_queries,
        reopen_every=100,
        writer=lambda i: relations_add() if i % 2 == 0 else build_store(store, n_senses, 64),
    )
    return {
        "alone": alone,
        "during_writes": during,
        "replacements": during.pop("replacements"),
        "words": len(words),
        "store_senses": n_senses,
        "store_build_s": round(build_seconds, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="A 20,000-sense store for the concurrency step.")
    ap.add_argument("--processes", type=int, default=8)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=None, help="Where to write the summary JSON.")
    ap.add_argument("--pytest-args", default="", help="Extra pytest arguments (e.g. '-x').")
    args = ap.parse_args()
    t0 = time.perf_counter()

    tests = run_tests(args.pytest_args.split())
    t_tests = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="sensekit-reliability-") as tmp:
        conc = concurrency(
            Path(tmp),
            20_000 if args.quick else 200_000,
            args.processes,
            args.queries,
            args.queries // 4 if args.quick else args.queries,
        )

    n_families, exact, not_exact = families_exact(tests["families"])
    kills = tests["kills"]
    alone, during = conc["alone"], conc["during_writes"]
    failed_guards = sum(_count(tests[s], "failed") for s in GUARDS_DATA)
    summary = {
        "bad_inputs_tried": len(tests["bad_input"]) - _count(tests["bad_input"], "skipped"),
        "bad_inputs_clean": _count(tests["bad_input"], "passed"),
        "fuzz_tests_passed": _count(tests["fuzz"], "passed"),
        "fuzz_tests": len(tests["fuzz"]),
        "kills_tried": _tried(kills, r"::test_killed_"),
        "kills_survived": _count(kills, "passed", r"::test_killed_"),
        "resumes_equal": _count(kills, "passed", r"::test_killed_.*resume"),
        "full_disks_tried": _tried(kills, r"::test_full_disk_"),
        "full_disks_clean": _count(kills, "passed", r"::test_full_disk_"),
        "mismatches_refused": _count(tests["mismatches"], "passed"),
        "mismatches_tried": len(tests["mismatches"]) - _count(tests["mismatches"], "skipped"),
        "concurrent_queries_ok": alone["ok"],
        "concurrent_queries": args.processes * args.queries,
        "concurrent_errors": len(alone["errors"]),
        "queries_during_writes_ok": during["ok"],
        "queries_during_writes": args.processes * (args.queries // 4 if args.quick else args.queries),
        "store_replacements_during_queries": conc["replacements"],
        "queries_crossed_replacement": during["crossed"],
        "uncached_queries": during["uncached"],
        "reopen_messages": during["reopened"],
        "families_exact": n_families,
        "data_lost": failed_guards
        + alone["wrong"]
        + alone["unknown_version"]
        + during["wrong"]
        + during["unknown_version"],
        "skipped": sum(_count(t, "skipped") for t in tests.values()),
        "tests_failed": sum(_count(t, "failed") for t in tests.values()),
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    details = {
        "quick": args.quick,
        "tests_s": round(t_tests, 1),
        "families": exact,
        "families_not_exact": not_exact,
        "failed": sorted(n for t in tests.values() for n, o in t.items() if o == "failed"),
        "skipped": sorted(n for t in tests.values() for n, o in t.items() if o == "skipped"),
        "concurrency": {
            **{k: v for k, v in conc.items() if k not in ("alone", "during_writes")},
            "alone": {k: v for k, v in alone.items() if k != "errors"},
            "during_writes": {k: v for k, v in during.items() if k != "errors"},
            "errors": (alone["errors"] + during["errors"])[:20],
        },
        "machine": machine(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    write_json(args.out or RESULTS / "reliability.json", {"summary": summary, "details": details})
    print(json.dumps(details["concurrency"]))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
