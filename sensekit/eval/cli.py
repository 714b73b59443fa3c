"""`sensekit eval store` and `sensekit eval student`: the typer half.

The flags come from `EvalConfig` / `StudentEvalConfig`; the commands call `evaluate_store` /
`distill.student_eval.evaluate_student`, which return plain data, and render it as a rich
table (or one JSON document with `--json`). No torch at import time.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
from typing import Annotated, Any

import typer

from ..options import cli_parameters, given
from .config import EvalConfig, StudentEvalConfig
from .layers import register as _register_layers
from .registry import fmt

__all__ = ["register", "render_store", "render_student"]

eval_app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Measure a sense store or a distilled student on benchmarks, each beside a baseline.",
)
_JSON = typer.Option("--json", help="Print one JSON document instead of tables.")


def store_rows(result: dict) -> list[tuple[str, str, str, str]]:
    """(metric, value, baseline, coverage) rows of an `evaluate_store` result: each metric's own rows."""
    from .registry import store_rows as rows

    return rows(result)


def render_store(result: dict, console) -> None:
    from rich.markup import escape
    from rich.table import Table

    s = result["store"]
    n_pc = s["space"].get("components") or 0
    space = s["space"]["kind"] + (f" ({n_pc} PC{'s' if n_pc > 1 else ''} removed)" if n_pc else "")
    t = Table(
        title=f"sensekit eval store {escape(s['path'])} (teacher {escape(str(s['teacher']))}, "
        f"key={s['key_mode']}, space={escape(space)}, "
        f"{s['token_senses']:,} senses of {s['tokens_with_senses']:,} tokens)",
        title_justify="left",
    )
    for col, kw in (
        ("metric", {}),
        ("value", {"justify": "right"}),
        ("baseline (same run)", {"ratio": 1}),
        ("coverage", {"justify": "right"}),
    ):
        t.add_column(col, **kw)
    for row in store_rows(result):
        t.add_row(*(escape(x) for x in row))
    console.print(t)
    console.print(f"[dim]{result['seconds']:.0f} s; --json for every number[/]")


def store_cli(**values: Any) -> None:
    """Measure a sense store: word in context, word similarity, sense purity, neighbourhoods, health."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: shared cores
    from rich.console import Console

    from .store_eval import evaluate_store

    as_json = values.pop("as_json")
    cfg = EvalConfig(**given(values))
    err = Console(stderr=True, highlight=False)
    _quiet_libraries()
    with err.status("evaluating") as status:
        result = evaluate_store(cfg, progress=lambda name: status.update(f"evaluating: {name}"))
    if as_json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False, default=str) + "\n")
    else:
        render_store(result, Console(highlight=False))


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
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from rich.console import Console

    from distill.student_eval import evaluate_student  # distill depends on sensekit, never the reverse

    as_json = values.pop("as_json")
    cfg = StudentEvalConfig(**given(values))
    _quiet_libraries()
    with Console(stderr=True, highlight=False).status("evaluating") as status:
        result = evaluate_student(cfg, progress=lambda name: status.update(f"evaluating: {name}"))
    if as_json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False, default=str) + "\n")
    else:
        render_student(result, Console(highlight=False))


def _quiet_libraries() -> None:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _with_json(cls: type, **kw) -> inspect.Signature:
    as_json = inspect.Parameter(
        "as_json", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[bool, _JSON]
    )
    return inspect.Signature([*cli_parameters(cls, **kw), as_json])


store_cli.__signature__ = _with_json(EvalConfig)  # type: ignore[attr-defined]
student_cli.__signature__ = _with_json(StudentEvalConfig)  # type: ignore[attr-defined]
eval_app.command("store")(store_cli)
eval_app.command("student")(student_cli)
_register_layers(eval_app)  # `sensekit eval layers` (issue 15): sensekit/eval/layers.py


def register(app: typer.Typer) -> None:
    """Add the `eval` command group (store, student) to the main sensekit app."""
    app.add_typer(eval_app, name="eval")
