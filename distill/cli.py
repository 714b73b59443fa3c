"""`sensekit distill`: a typer command whose flags are generated from DistillConfig.

spaCy style, two halves: `distill_cli` (the typer half) parses the flags and renders progress
with rich; `distill` (the plain-function half) merges the flags over the TOML file, validates,
trains and returns train()'s summary, printing nothing. Precedence: explicit flags >
`--config FILE.toml` > DistillConfig's defaults. Errors of the user's making (SensekitError)
become one line and exit code 1 or 2.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from sensekit.options import cli_parameters, given

from .config import DistillConfig
from .terms import TERMS

SHOWN = ("total", *TERMS[:-1])  # the progress line: the total, then each loss term of the table

__all__ = ["app", "main", "distill_cli", "distill"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Decoder-based Sense Knowledge Distillation (docs/method.md section 2).",
)


def _command_parameters() -> list[inspect.Parameter]:
    """--config and --resume, then one flag per DistillConfig field."""
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
    return extras + cli_parameters(DistillConfig)


def distill(values: dict[str, Any], config: Path | None = None, resume: bool = False, callback=None) -> dict[str, Any]:
    """The plain-function half: merge flags (None = not given) over the TOML file, validate, train.

    Returns train()'s summary; progress goes to `callback(stage, done, total, **info)` (sensekit.progress);
    prints nothing.
    """
    from .train import train

    flags = given(values)
    cfg = DistillConfig.from_toml(config, **flags) if config is not None else DistillConfig.from_dict(flags, "flags")
    return train(cfg, resume=resume, callback=callback)


def distill_cli(**kwargs: Any) -> None:
    """Distil a student from the teacher with the sense store (KD + CE + lambda * hinge-MSE sense loss)."""
    from rich.console import Console

    from sensekit.errors import SensekitError

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
app.command(name="distill", help=distill_cli.__doc__)(distill_cli)


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
            terms = " ".join(f"{k} {info[k]:.4f}" for k in SHOWN if k in info)
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


def main(argv: list[str] | None = None, prog_name: str = "sensekit distill") -> None:
    """`sensekit distill ARGS`: a training run, as always; `sensekit distill compare ...`: the comparison harness
    (distill.compare). `compare` is a first word no training flag can be, so plain runs keep their flags."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["compare"]:
        from .compare.cli import app as compare_app

        compare_app(args[1:], prog_name=f"{prog_name} compare")
    else:
        app(args, prog_name=prog_name)


if __name__ == "__main__":  # `python -m distill.cli ...` / `accelerate launch -m distill.cli ...`
    main()
