"""`sensekit distill compare --config experiment.toml [--plan] [--quick] [--until HH:MM] [--max-runs N]`."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Optional

import typer

__all__ = ["app", "compare_cli"]

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def _until(text: Optional[str]) -> Optional[float]:
    """'HH:MM' (UTC, today; tomorrow if already past) -> a time.time() value."""
    from sensekit.errors import InputError

    if not text:
        return None
    try:
        h, m = (int(x) for x in text.split(":"))
        now = dt.datetime.now(dt.timezone.utc)
        t = now.replace(hour=h, minute=m, second=0, microsecond=0)
    except ValueError:
        raise InputError(f"--until {text!r}: write a UTC time of day as HH:MM") from None
    return (t if t > now else t + dt.timedelta(days=1)).timestamp()


@app.command("compare")
def compare_cli(
    config: Path = typer.Option(
        ..., "--config", "-c", help="experiment.toml: data, teacher, sizes, seeds, arms and grids."
    ),
    plan: bool = typer.Option(False, "--plan", help="Print the runs (done or to do) and a time estimate; run nothing."),
    quick: bool = typer.Option(False, "--quick", help="Apply the TOML's \\[quick] table: a smoke run of every path."),
    until: Optional[str] = typer.Option(
        None, "--until", help="Start no new run after this UTC time (HH:MM); report what finished."
    ),
    max_runs: int = typer.Option(
        -1, "--max-runs", help="Start at most N new runs (0: only report the finished ones; -1: all)."
    ),
) -> None:
    """Compare distillation arms (KD, KD + hidden MSE, DSKD) with equal tuning budgets on dev, at several
    dictionary sizes, on a test split of many articles. Resumable: finished runs are reused."""
    from rich.console import Console

    from sensekit.errors import SensekitError

    from .config import load_experiment
    from .runner import Runner, run_experiment

    console = Console(stderr=True)

    def show(stage: str, done: Any = None, total: Any = None, /, **info: Any) -> None:
        if "message" in info:
            console.print(
                f"{dt.datetime.now():%H:%M:%S} {info['message']}", highlight=False, soft_wrap=True, markup=False
            )

    try:
        exp = load_experiment(config, quick=quick)
        if plan:
            p = Runner(exp).plan()
            for row in p["runs"]:
                console.print(
                    f"{'done' if row['done'] else 'todo'}  {row['steps']:>5} steps  {row['run']}",
                    highlight=False,
                    soft_wrap=True,
                    markup=False,
                )
            rate = f"{p['seconds_per_step']:.2f} s/step ({'measured' if p['rate_measured'] else 'a guess'})"
            console.print(
                f"tuning budget per arm (dev runs): {p['tuning_budget']}; stores to build: {p['stores_to_build'] or 'none'}; "
                f"estimate {p['estimate_s'] / 60:.0f} min at {rate}",
                highlight=False,
                soft_wrap=True,
                markup=False,
            )
            return
        report = run_experiment(exp, show, until=_until(until), max_runs=max_runs)
    except SensekitError as exc:
        console.print(f"error: {exc}", soft_wrap=True, highlight=False, markup=False)
        raise typer.Exit(exc.exit_code) from None
    summary = {k: v.get("ppl", {}).get("verdict") for k, v in report["comparisons"].items()}
    console.print(
        f"wrote {exp.results}: {report['ran']['tuning_runs']} tuning + {report['ran']['test_runs']} test runs; "
        f"{len(report['not_run'])} not run; test-ppl verdicts vs {exp.baseline}: {json.dumps(summary)}",
        highlight=False,
        soft_wrap=True,
    )
