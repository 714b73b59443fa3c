"""The `sensekit eval` group: `eval store` (sensekit/eval), `eval layers` (sensekit/eval/layers.py)
and `eval student` (distill/student_eval.py). Each command's flags come from its config dataclass
(`EvalConfig`, `StudentEvalConfig`); the measuring functions return plain data, rendered here as a
rich table or, with `--json`, one JSON document. No torch at import time.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from ..distill.eval_config import StudentEvalConfig
from ..eval.config import EvalConfig
from ..eval.registry import fmt
from ..options import given
from ._common import print_json, quiet_libraries, status_progress, with_json

__all__ = ["app", "render_store", "render_views", "render_student", "store_rows", "store_cli", "student_cli"]

app = typer.Typer(
    name="eval",
    no_args_is_help=True,
    help="Measure a sense store or a distilled student on benchmarks, each beside a baseline.",
)


def store_rows(result: dict) -> list[tuple[str, str, str, str]]:
    """(metric, value, baseline, coverage) rows of an `evaluate_store` result: each metric's own rows."""
    from ..eval.registry import store_rows as rows

    return rows(result)


def render_store(result: dict, console) -> None:
    from rich.markup import escape
    from rich.table import Table

    s = result["store"]
    n_pc = s["space"].get("components") or 0
    space = s["space"]["kind"] + (f" ({n_pc} PC{'s' if n_pc > 1 else ''} removed)" if n_pc else "")
    t = Table(
        title=f"sensekit eval store {escape(s['path'])} (teacher {escape(str(s['teacher']))}, "
        f"view={s['view']}, key={s['key_mode']}, space={escape(space)}, "
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

    from ..eval.store_eval import evaluate_store, evaluate_views

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


store_cli.__signature__ = with_json(EvalConfig)  # type: ignore[attr-defined]
app.command("store")(store_cli)


@app.command("layers")
def layers_cli(
    wic: Optional[Path] = typer.Option(
        None,
        "--wic",
        help="WiC JSONL file (word, sentence1/2, start/end1/2, label); default: the held-out WordNet pairs.",
    ),
    teacher: Optional[str] = typer.Option(
        None, "--teacher", help="HF id or folder of a causal LM (default: the bundled smollm2-135m)."
    ),
    representations: str = typer.Option(
        "first,mean,repeat",
        "--representations",
        help="Occurrence representations to compare (comma-separated): first, mean, repeat.",
    ),
    layers: Optional[str] = typer.Option(
        None,
        "--layers",
        help="Layers to measure, e.g. 0-12 or 3,9,15 (default: every third, the auto layer, the last).",
    ),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write the curve as a PNG."),
    wordnet: Optional[str] = typer.Option(None, "--wordnet", help="WordNet 3.0 folder for the held-out pairs."),
    heldout_share: Optional[float] = typer.Option(
        None, "--heldout-share", min=0.0, max=0.5, help="Held-out share of WordNet's examples (default 0.2)."
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the held-out pairs' sample."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, ... (default: auto)."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="auto, float32, bfloat16, float16."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Read only the first N pairs."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document instead of a table."),
) -> None:
    """Per-layer curve of each occurrence representation: ROC AUC of same- vs different-sense cosine on dev and test halves."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from rich.console import Console

    from ..errors import InputError
    from ..eval.layers import layer_curve, render_table, save_png
    from ..options import parse_layer_list

    if output is not None and output.suffix.lower() != ".png":
        raise InputError(f"-o {output}: the curve is written as PNG; name a .png file")
    reps = tuple(r.strip() for r in representations.split(",") if r.strip())
    chosen = None if layers is None else parse_layer_list(layers, "layers")
    err = Console(stderr=True, highlight=False)
    with err.status("running the teacher over the pairs"):
        result = layer_curve(
            wic,
            teacher=teacher,
            device=device,
            dtype=dtype,
            limit=limit,
            representations=reps,
            layers=chosen,
            wordnet=wordnet,
            heldout_share=heldout_share,
            seed=seed,
        )
    if output is not None:
        save_png(result, output)
        result["png"] = str(output)
    if as_json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
    else:
        render_table(result, Console(highlight=False))
        if output is not None:
            err.print(f"wrote {output}")


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

    from ..distill.student_eval import evaluate_student

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
app.command("student")(student_cli)
