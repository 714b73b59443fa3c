"""`sensekit eval store` on the `make demo` store, timed as a whole process.

    python benchmarks/eval_store.py [--store senses.sensekit] [--out benchmarks/results/eval_store_demo.json]
                                    [-- extra `sensekit eval store` flags]

Runs `sensekit eval store --store STORE --json` in a fresh process (imports, teacher load and
every metric included) with the code of the checkout this file sits in (`python -m sensekit.cli`
from its root), checks the issue's budget (under 5 minutes on 2 cores), and writes the metrics
plus how they were measured (command, wall time, cores, machine, commit) to `--out`.
The last line printed is a one-line summary.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from common import RESULTS, ROOT, git_commit, machine, write_json

BUDGET_S = 300.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default="senses.sensekit", help="store bundle (default: the `make demo` store)")
    ap.add_argument("--out", default=str(RESULTS / "eval_store_demo.json"))
    ap.add_argument("extra", nargs="*", help="more `sensekit eval store` flags (after --)")
    args = ap.parse_args(argv)
    store = str(Path(args.store).expanduser().resolve())
    cmd = [sys.executable, "-m", "sensekit.cli", "eval", "store", "--store", store, "--json", *args.extra]
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # CPU time says more than wall time on shared cores
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        return done.returncode
    result = json.loads(done.stdout)
    result["benchmark"] = {
        "command": " ".join(["sensekit", *cmd[3:]]),
        "wall_s": round(wall, 1),
        "budget_s": BUDGET_S,
        "cpu_user_s": round(usage.ru_utime, 1),
        "cpu_sys_s": round(usage.ru_stime, 1),
        "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "within_budget": wall < BUDGET_S,
        "cpu_count": os.cpu_count(),
        "omp_wait_policy": env["OMP_WAIT_POLICY"],
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "commit": git_commit(),
    }
    out = write_json(Path(args.out), result)
    m = result["metrics"]
    summary = {
        "wall_s": round(wall, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "within_budget": wall < BUDGET_S,
        "out": str(out),
        **{k: v.get("status") for k, v in m.items()},
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
