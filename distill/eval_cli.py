"""`sensekit eval student`: the typer half (the plain-function half is `distill.student_eval`).

`app` is the command on its own: sensekit/cli.py, the one command layer that may import
distill, runs it as `sensekit eval student` when it is called (importing distill loads torch,
which `sensekit query` must not pay for). `register(eval_app)` mounts the command directly on
an `eval` group instead (tests, the CLI reference). The flags come from `StudentEvalConfig`
(distill/eval_config.py).
"""

from __future__ import annotations

import os
from typing import Any

import typer

from sensekit.eval.cli import print_json, quiet_libraries, status_progress, with_json
from sensekit.eval.registry import fmt
from sensekit.options import given

from .eval_config import StudentEvalConfig

__all__ = ["app", "register", "student_cli", "render_student"]


def render_student(result: dict, console) -> None:
    from rich.markup import escape
    from rich.table import Table

    t = Table(
        title=f"sensekit eval student {escape(result['student'])} (teacher {escape(result['teacher'])})",
        title_justify="left",
    )
    for col, kw in (
        ("metric", {}),
        ("student", {"justify": "right"}),
        ("teacher", {"justify": "right"}),
        ("coverage / note", {"ratio": 1}),
    ):
        t.add_column(col, **kw)
    for metric, s, tv, note in result["rows"]:
        t.add_row(escape(metric), escape(fmt(s)), escape(fmt(tv)), escape(note))
    console.print(t)
    for note in result.get("notes", []):
        console.print(f"[dim]{escape(note)}[/]")


def student_cli(**values: Any) -> None:
    """Measure a student beside its teacher: perplexity, agreement, WiC, synonym/antonym separation."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: shared cores
    from rich.console import Console

    from .student_eval import evaluate_student

    as_json = values.pop("as_json")
    cfg = StudentEvalConfig(**given(values))
    quiet_libraries()
    with Console(stderr=True, highlight=False).status("evaluating") as status:
        result = evaluate_student(cfg, progress=status_progress(status))
    if as_json:
        print_json(result)
    else:
        render_student(result, Console(highlight=False))


student_cli.__signature__ = with_json(StudentEvalConfig)  # type: ignore[attr-defined]
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, help=student_cli.__doc__)
app.command("student")(student_cli)


def register(eval_app: typer.Typer) -> None:
    """Add `student` to sensekit's `eval` command group (once)."""
    if not any(c.name == "student" for c in eval_app.registered_commands):
        eval_app.command("student")(student_cli)
