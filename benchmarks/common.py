"""What the benchmark scripts share: where the repository, the results and the shared corpus are, where to
log, what machine ran them, and how a result file is written.

A script imports it as `from common import ...`: Python puts a script's own folder (benchmarks/) first on
sys.path when it runs `python benchmarks/NAME.py`, and sensekit itself is installed (editable) in the
environment, so no script edits sys.path.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from sensekit.paths import shared_dir

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
ENWIKI = "enwiki-sample-pages-articles.xml.bz2"

__all__ = [
    "ROOT",
    "RESULTS",
    "ENWIKI",
    "passive_omp",
    "log",
    "shared_corpus",
    "git_commit",
    "machine",
    "memory_gib",
    "write_json",
    "report",
]


def passive_omp() -> None:
    """As `sensekit build` does: OpenMP threads wait passively, so busy shared cores are not spun on.
    Call it before torch is imported."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def log(msg: str) -> None:
    """Progress goes to stderr; a script's last stdout line is its JSON result."""
    print(msg, file=sys.stderr, flush=True)


def shared_corpus(name: str = ENWIKI) -> Path:
    """A corpus file of the shared data folder (`SENSEKIT_SHARED`, default ../shared); it may not exist."""
    return shared_dir() / "data" / "corpus" / name


def git_commit() -> str | None:
    """The short commit of the checkout, or None (an exported tree has no history)."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip() or None


def machine() -> dict:
    """The machine a result came from."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "memory_gib": memory_gib(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }


def memory_gib() -> float | None:
    """The machine's physical memory in GiB, or None where the OS does not say."""
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (AttributeError, ValueError, OSError):
        return None


def write_json(path: Path, doc: dict) -> Path:
    """Write a result file (indented, a newline at the end), making its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def report(path: Path, doc: dict) -> dict:
    """Add where and when a result came from (load average, machine, commit), write it to `path` and
    print it as the last line (one JSON object)."""
    doc = {**doc, "load_average": [round(x, 2) for x in os.getloadavg()], "machine": machine(), "commit": git_commit()}
    write_json(path, doc)
    print(json.dumps(doc))
    return doc


def side_by_side(arms: dict, repeats: int) -> dict[str, tuple[float, object]]:
    """name -> (median seconds, last result) of each no-argument function, alternating per repeat."""
    times: dict[str, list[float]] = {name: [] for name in arms}
    results: dict = {}
    for _ in range(repeats):
        for name, fn in arms.items():
            t = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - t)
    return {name: (statistics.median(times[name]), results[name]) for name in arms}
