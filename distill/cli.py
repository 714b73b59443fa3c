"""`sensekit distill`: a typer command whose flags are generated from DistillConfig.

Precedence: explicit flags > `--config FILE.toml` > DistillConfig's defaults. The command
parses, calls `distill.train.train`, and renders progress with rich; errors of the user's
making (SensekitError) become one line and exit code 1 or 2.
"""

from __future__ import annotations

import inspect
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from .config import DistillConfig

__all__ = ["app", "distill_command", "run_distill"]

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Decoder-based Sense Knowledge Distillation (METHOD.md section 2).")

_TYPES = {"int": int, "float": float, "bool": bool, "str": str, "tuple[str, ...]": list[str]}
_SHORT = {"store": "-s", "data": "-d", "output_dir": "-o", "teacher": "-t"}
_PANELS = {"store": "Inputs", "teacher": "Inputs", "student": "Inputs", "data": "Inputs", "eval_data": "Inputs",
           "tau": "DSKD objective", "alpha": "DSKD objective", "lambda_sense": "DSKD objective", "kappa": "DSKD objective",
           "beta_p": "DSKD objective", "beta_n": "DSKD objective", "neighbors": "DSKD objective",
           "sample_frac": "DSKD objective", "sample_floor": "DSKD objective", "own_senses_negative": "DSKD objective"}


def _default_text(f) -> str:
    value = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
    if isinstance(value, bool):
        return f"--{f.name.replace('_', '-')}" if value else f"--no-{f.name.replace('_', '-')}"
    if isinstance(value, tuple):
        return "none" if not value else " ".join(value)
    return str(value) if value != "" else "none"


def _parameters() -> list[inspect.Parameter]:
    params = [
        inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
            Optional[Path], typer.Option("--config", "-c", help="TOML file with any of these settings (flat, or under \\[distill]); "
                                                              "flags given here override it.")]),
        inspect.Parameter("resume", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[
            bool, typer.Option("--resume", help="Continue the run in --output-dir from its last checkpoint.")]),
    ]
    for f in fields(DistillConfig):
        py = _TYPES[str(f.type)]
        flag = "--" + f.name.replace("_", "-")
        names = [f"{flag}/--no-{f.name.replace('_', '-')}"] if py is bool else [flag]
        if f.name in _SHORT:
            names.append(_SHORT[f.name])
        opt = typer.Option(*names, help=f"{escape(f.metadata['help'])} \\[default: {escape(_default_text(f))}]", show_default=False,
                           rich_help_panel=_PANELS.get(f.name, "Training"))
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                        annotation=Annotated[Optional[py], opt]))
    return params


def run_distill(values: dict[str, Any], config: Path | None = None, resume: bool = False, callback=None) -> dict[str, Any]:
    """The plain-function half: merge flags over the TOML file, validate, train. Returns train()'s summary."""
    from .train import train

    given = {k: v for k, v in values.items() if v is not None}
    cfg = DistillConfig.from_toml(config, **given) if config is not None else DistillConfig.from_dict(given, "flags")
    return train(cfg, resume=resume, callback=callback)


def distill_command(**kwargs: Any) -> None:
    """Distil a student from the teacher with the sense store (KD + CE + lambda * hinge-MSE sense loss)."""
    from rich.console import Console

    from sensekit.errors import SensekitError

    console = Console(stderr=True)
    config, resume = kwargs.pop("config"), kwargs.pop("resume")
    progress = _Progress(console)
    try:
        summary = run_distill(kwargs, config, resume, callback=progress)
    except SensekitError as exc:
        progress.stop()
        console.print(f"[bold red]error:[/] {exc}", soft_wrap=True, highlight=False, markup=True)
        raise typer.Exit(exc.exit_code)
    except KeyboardInterrupt:
        progress.stop()
        console.print("[yellow]interrupted[/]: continue with --resume from the last checkpoint", highlight=False)
        raise typer.Exit(130)
    finally:
        progress.stop()
    last = summary.get("last") or {}
    line = f"done: {summary['steps']} steps, total {last.get('total', float('nan')):.4f}; student in {summary['student_dir']}"
    if summary.get("eval"):
        line += f"; held-out ppl {summary['eval']['ppl']:.3f} (teacher {summary['eval']['teacher_ppl']:.3f})"
    console.print(line, highlight=False, soft_wrap=True)


distill_command.__signature__ = inspect.Signature(_parameters())  # type: ignore[attr-defined]
app.command(name="distill", help=distill_command.__doc__)(distill_command)


class _Progress:
    """The rich progress bar with the loss terms, driven by train()'s callback."""

    def __init__(self, console) -> None:
        self.console = console
        self.bar = None
        self.task = None

    def __call__(self, event: str, payload: dict[str, Any]) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        if event == "start":
            self.bar = Progress(TextColumn("[bold]distill"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                TimeRemainingColumn(), TextColumn("{task.fields[terms]}"), console=self.console, transient=False)
            self.bar.start()
            self.task = self.bar.add_task("distill", total=payload["total"], completed=payload["start"], terms="")
        elif event == "step" and self.bar is not None:
            terms = " ".join(f"{k} {payload[k]:.4f}" for k in ("total", "kd", "ce", "sense_pos", "sense_neg"))
            self.bar.update(self.task, completed=payload["step"], terms=f"{terms} lr {payload['lr']:.2e}")
        elif event == "eval":
            self.console.print(f"step {payload['step']}: held-out ppl {payload['ppl']:.3f}, KL {payload['kl']:.4f}", highlight=False)
        elif event in ("warning", "status"):
            self.console.print(("[yellow]warning:[/] " if event == "warning" else "") + payload["message"], highlight=False)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


if __name__ == "__main__":  # `python -m distill.cli ...` / `accelerate launch -m distill.cli ...`
    app(prog_name="sensekit distill")
