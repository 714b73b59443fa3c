"""`sensekit eval store`: the typer half, and the `eval` command group.

The flags come from `EvalConfig`; the command calls `evaluate_store`, which returns plain data,
and renders it as a rich table (or one JSON document with `--json`). No torch at import time.
`eval student` is distill's (distill/eval_cli.py), mounted on `eval_app` by sensekit/cli.py;
it uses `with_json`, `quiet_libraries`, `print_json` and `status_progress` from here.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
from typing import Annotated, Any, Optional

import typer

from ..options import cli_parameters, given
from ..progress import Progress
from .config import EvalConfig
from .layers import register as _register_layers

__all__ = [
    "register",
    "eval_app",
    "render_store",
    "render_views",
    "store_rows",
    "with_json",
    "quiet_libraries",
    "print_json",
    "status_progress",
]

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
        f"view={s.get('view', 'loss')}, key={s['key_mode']}, space={escape(space)}, "
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


def render_views(result: dict, console) -> None:
    """`--view all`: one table, each view's value, baseline and coverage side by side, row by metric."""
    from rich.markup import escape
    from rich.table import Table

    views = list(result["views"])
    rows = {view: {r[0]: r[1:] for r in store_rows(result["views"][view])} for view in views}
    names = list(dict.fromkeys(name for view in views for name in rows[view]))
    first = result["views"][views[0]]["store"]
    t = Table(
        title=f"sensekit eval store {escape(first['path'])} (teacher {escape(str(first['teacher']))}, "
        f"views {', '.join(views)} side by side)",
        title_justify="left",
    )
    t.add_column("metric")
    for view in views:
        t.add_column(f"{view} ({result['views'][view]['store']['token_senses']:,} senses)", justify="right")
    for what in ("baseline", "coverage"):
        t.add_column(f"{what} ({' / '.join(views)})", ratio=1 if what == "baseline" else None)
    for name in names:
        cells = [rows[view].get(name, ("-", "", "")) for view in views]  # (value, baseline, coverage) per view
        t.add_row(
            escape(name),
            *(escape(c[0]) for c in cells),
            *(escape(" / ".join(dict.fromkeys(c[i] for c in cells))) for i in (1, 2)),
        )
    console.print(t)
    console.print(f"[dim]{result['seconds']:.0f} s; --json for every number[/]")


def store_cli(**values: Any) -> None:
    """Measure a sense store: word in context, word similarity, sense purity, neighbourhoods, health."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: shared cores
    from rich.console import Console

    from .store_eval import evaluate_store, evaluate_views

    as_json = values.pop("as_json")
    cfg = EvalConfig(**given(values))
    err = Console(stderr=True, highlight=False)
    quiet_libraries()
    every_view = cfg.view == "all"
    with err.status("evaluating") as status:
        evaluate = evaluate_views if every_view else evaluate_store
        result = evaluate(cfg, progress=status_progress(status))
    from rich.markup import escape

    runs = result["views"].values() if every_view else [result]
    for warning in dict.fromkeys(w for run in runs for w in run.get("warnings", [])):  # stderr: JSON stays one document
        err.print(f"[bold yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    if as_json:
        print_json(result)
    else:
        (render_views if every_view else render_store)(result, Console(highlight=False))


def quiet_libraries() -> None:
    """Silence transformers' and the hub's own logging and bars (before they load)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def with_json(cls: type, **kw) -> inspect.Signature:
    """A command signature: one flag per field of the config dataclass `cls`, then `--json`."""
    as_json = inspect.Parameter(
        "as_json", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[bool, _JSON]
    )
    return inspect.Signature([*cli_parameters(cls, **kw), as_json])


def status_progress(status) -> Progress:
    """A `sensekit.progress` callback that shows the stage on a rich status line: 'evaluating: wic (1/5)'."""

    def show(stage: str, done: Optional[int] = None, total: Optional[int] = None, /, **info: Any) -> None:
        step = f" ({done + 1}/{total})" if done is not None and total and done < total else ""
        status.update(f"evaluating: {stage}{step}")

    return show


def print_json(result: dict) -> None:
    sys.stdout.write(json.dumps(result, ensure_ascii=False, default=str) + "\n")


store_cli.__signature__ = with_json(EvalConfig)  # type: ignore[attr-defined]
eval_app.command("store")(store_cli)
_register_layers(eval_app)  # `sensekit eval layers` (issue 15): sensekit/eval/layers.py


def register(app: typer.Typer) -> None:
    """Add the `eval` command group to the main sensekit app. `eval student` lives in distill
    (distill/eval_cli.py): the one command layer, sensekit/cli.py, mounts it on `eval_app`."""
    app.add_typer(eval_app, name="eval")
