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

__all__ = ["register", "render_store", "render_student"]

eval_app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Measure a sense store or a distilled student on benchmarks, each beside a baseline.",
)
_JSON = typer.Option("--json", help="Print one JSON document instead of tables.")


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.3f}"
    return str(x)


def _cov(c: dict | None) -> str:
    if not c:
        return "-"
    return f"{c['scored']:,}/{c['total']:,} ({c['share']:.0%})"


def store_rows(result: dict) -> list[tuple[str, str, str, str]]:
    """(metric, value, baseline, coverage) rows of an `evaluate_store` result."""
    m = result["metrics"]
    rows: list[tuple[str, str, str, str]] = []

    def skipped(name: str, entry: dict) -> bool:
        if entry.get("status") == "skipped":
            rows.append((name, "skipped", entry.get("reason", ""), "-"))
            return True
        return False

    if "wic" in m and not skipped("WiC accuracy", m["wic"]):
        w = m["wic"]
        rows.append(
            (
                f"WiC accuracy (nearest sense, state={w['state']})",
                _fmt(w["accuracy"]),
                f"cosine threshold {_fmt(w['baseline']['accuracy'])}; majority {_fmt(w['majority_class'])}",
                _cov(w["coverage"]),
            )
        )
        c = w.get("in_store_context")
        if c and c["min_context"]:
            rows.append(
                (
                    f"WiC accuracy, states with >= {c['min_context']} tokens read (the build's rule)",
                    _fmt(c["accuracy"]),
                    f"cosine threshold {_fmt(c['baseline_accuracy'])}",
                    f"{c['pairs']} pairs",
                )
            )
    if "similarity" in m and not skipped("word similarity", m["similarity"]):
        for name, s in m["similarity"].items():
            if not isinstance(s, dict) or skipped(name, s):
                continue
            rows.append(
                (
                    f"{name} Spearman MaxSim / AvgSim / centroid",
                    f"{_fmt(s['maxsim'])} / {_fmt(s['avgsim'])} / {_fmt(s['centroid'])}",
                    f"input embeddings {_fmt(s['baseline'].get('spearman'))}",
                    _cov(s["coverage"]),
                )
            )
    if "purity" in m and not skipped("sense purity (WordNet)", m["purity"]):
        p = m["purity"]
        rows.append(
            (
                "sense purity (WordNet): ARI / purity",
                f"{_fmt(p['ari'])} / {_fmt(p['purity'])}",
                f"shuffled {_fmt(p['baseline']['ari'])} / {_fmt(p['baseline']['purity'])}; one cluster "
                f"{_fmt(p['one_cluster']['purity'])}",
                f"{p['coverage']['scored']:,} words of {p['coverage']['total']:,} eligible "
                f"(sample cap {p['coverage']['sample_cap']:,}), {p['coverage']['occurrences']:,} examples",
            )
        )
    if "neighbours" in m and not skipped("neighbourhood quality", m["neighbours"]):
        n = m["neighbours"]
        rows.append(
            (
                f"neighbours: WordNet-related share of top {n['k']}",
                _fmt(n["related_share"]),
                f"random tokens {_fmt(n['baseline']['related_share'])}",
                f"{n['coverage']['scored']:,} sampled of {n['coverage']['total']:,}",
            )
        )
        rows.append(("neighbours at distance < 1e-4", _fmt(n["zero_distance_share"]), "0 expected", "-"))
    if "health" in m and not skipped("store health", m["health"]):
        h = m["health"]
        d, r, a = h["duplicates"], h["raw_tokens"], h["anisotropy"]
        rows.append(
            (
                f"duplicate senses (cos > {d['cos_above']})",
                f"{d['senses']:,} ({_fmt(d['share'])})",
                "0 expected",
                _cov(h["coverage"]),
            )
        )
        rows.append((f"raw-sample tokens (n <= k = {r['k']})", f"{r['tokens']:,} ({_fmt(r['share'])})", "-", "-"))
        rows.append(
            (
                "anisotropy (mean cosine of random senses)",
                _fmt(a["mean_cosine"]),
                f"centred {_fmt(a['baseline_centred'])}; in the similarity space {_fmt(a['in_similarity_space'])}",
                f"{a['pairs']:,} pairs",
            )
        )
    return rows


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
        t.add_row(escape(metric), escape(_fmt(s)), escape(_fmt(tv)), escape(note))
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
