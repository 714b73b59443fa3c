"""`sensekit distill` (a training run) and `sensekit distill compare` (distill/compare: arms compared
with equal tuning budgets).

`distill_cli` parses the flags (generated from DistillConfig) and renders progress with rich;
`distill` (the plain-function half) merges the flags over the TOML file, validates, trains and
returns train()'s summary, printing nothing. Precedence: explicit flags > `--config FILE.toml` >
DistillConfig's defaults. distill's own modules that load torch are imported inside the commands.
Multi-process: `accelerate launch -m sensekit.cli distill --store ... --data ...`.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..distill.config import DistillConfig
from ..errors import InputError
from ..options import cli_parameters, given

__all__ = ["app", "distill_cli", "distill", "compare_cli"]

app = typer.Typer(
    name="distill",
    no_args_is_help=True,
    subcommand_metavar="[COMMAND] [ARGS]...",
    help="Distil a student from the teacher with the sense store (KD + CE + lambda * hinge-MSE sense loss); "
    "`sensekit distill compare --config experiment.toml` compares arms (distill/compare).",
)


def _shown_terms() -> tuple[str, ...]:
    """The progress line's terms: the total, then each loss term of the table (distill.terms loads torch)."""
    from ..distill.terms import TERMS

    return ("total", *TERMS[:-1])


def _command_parameters() -> list[inspect.Parameter]:
    """The click context, --config and --resume, then one flag per DistillConfig field."""
    extras = [
        inspect.Parameter(
            "config",
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[
                Optional[Path],
                typer.Option(
                    "--config",
                    "-c",
                    help="TOML file with any of these settings (flat, or under "
                    "\\[distill]); flags given here override it.",
                ),
            ],
        ),
        inspect.Parameter(
            "resume",
            inspect.Parameter.KEYWORD_ONLY,
            default=False,
            annotation=Annotated[
                bool, typer.Option("--resume", help="Continue the run in --output-dir from its last checkpoint.")
            ],
        ),
    ]
    context = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
    return [context, *extras, *cli_parameters(DistillConfig)]


def distill(values: dict[str, Any], config: Path | None = None, resume: bool = False, callback=None) -> dict[str, Any]:
    """The plain-function half: merge flags (None = not given) over the TOML file, validate, train.

    Returns train()'s summary; progress goes to `callback(stage, done, total, **info)` (sensekit.progress);
    prints nothing.
    """
    from ..distill.train import train

    flags = given(values)
    cfg = DistillConfig.from_toml(config, **flags) if config is not None else DistillConfig.from_dict(flags, "flags")
    return train(cfg, resume=resume, callback=callback)


def distill_cli(ctx: typer.Context, **kwargs: Any) -> None:
    """Distil a student from the teacher with the sense store (KD + CE + lambda * hinge-MSE sense loss)."""
    if ctx.invoked_subcommand is not None:  # `sensekit distill compare ...`: no training run
        extra = sorted(k for k, v in given(kwargs).items() if v is not False)
        if extra:
            raise InputError(
                f"{', '.join('--' + k.replace('_', '-') for k in extra)}: training flags belong to "
                f"`sensekit distill` alone, not to `sensekit distill {ctx.invoked_subcommand}`"
            )
        return
    from rich.console import Console

    from ..errors import SensekitError

    console = Console(stderr=True)
    config, resume = kwargs.pop("config"), kwargs.pop("resume")
    progress = _Progress(console)
    try:
        summary = distill(kwargs, config, resume, callback=progress)
    except SensekitError as exc:
        progress.stop()
        console.print(f"[bold red]error:[/] {exc}", soft_wrap=True, highlight=False, markup=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        progress.stop()
        console.print("[yellow]interrupted[/]: continue with --resume from the last checkpoint", highlight=False)
        raise typer.Exit(130) from None
    finally:
        progress.stop()
    console.print(_done_line(summary), highlight=False, soft_wrap=True)


def _done_line(summary: dict[str, Any]) -> str:
    last = summary.get("last") or {}
    line = (
        f"done: {summary['steps']} steps, total {last.get('total', float('nan')):.4f}; "
        f"student in {summary['student_dir']}"
    )
    if summary.get("eval"):
        line += f"; held-out ppl {summary['eval']['ppl']:.3f} (teacher {summary['eval']['teacher_ppl']:.3f})"
    return line


distill_cli.__signature__ = inspect.Signature(_command_parameters())  # type: ignore[attr-defined]
app.callback(invoke_without_command=True)(distill_cli)


class _Progress:
    """The rich progress bar with the loss terms (distill.terms.TERMS, total first), driven by train()'s progress."""

    def __init__(self, console) -> None:
        self.console = console
        self.bar = None
        self.task = None

    def __call__(self, stage: str, done: Optional[int] = None, total: Optional[int] = None, /, **info: Any) -> None:
        if stage == "start":
            self._start(done or 0, total or 0)
        elif stage == "step" and self.bar is not None:
            terms = " ".join(f"{k} {info[k]:.4f}" for k in _shown_terms() if k in info)
            self.bar.update(self.task, completed=done, terms=f"{terms} lr {info['lr']:.2e}")
        elif stage == "eval":
            self.console.print(f"step {done}: held-out ppl {info['ppl']:.3f}, KL {info['kl']:.4f}", highlight=False)
        elif stage in ("warning", "status"):
            self.console.print(
                ("[yellow]warning:[/] " if stage == "warning" else "") + info["message"], highlight=False
            )

    def _start(self, start: int, total: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("[bold]distill"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[terms]}"),
            console=self.console,
            transient=False,
        )
        self.bar.start()
        self.task = self.bar.add_task("distill", total=total, completed=start, terms="")

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def _until(text: Optional[str]) -> Optional[float]:
    """'HH:MM' (UTC, today; tomorrow if already past) -> a time.time() value."""
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

    from ..distill.compare.config import load_experiment
    from ..distill.compare.runner import Runner, run_experiment
    from ..errors import SensekitError

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
                    f"{'done' if row['done'] else 'running' if row.get('running') else 'todo'}  "
                    f"{row['steps']:>5} steps  {row['run']}",
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
