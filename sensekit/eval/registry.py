"""The store metrics: one module each, registered here (sentence-transformers' `SentenceEvaluator` idea).

A metric is a `StoreMetric` declared at the bottom of its own module with `register(...)`:
- `name`: the `--metrics` value and the key of its entry in the JSON's `metrics`;
- `title`: what the table says when the metric is skipped;
- `compute(run) -> dict`: its entry, from a `sensekit.eval.run.StoreRun` (the store, its sense
  table, the teacher and WordNet loaded once on demand); it raises `Skip(reason)` when it cannot
  run here;
- `rows(entry) -> [(metric, value, baseline, coverage)]`: its lines of the CLI table (strings);
- `headline(entry) -> [Headline]`: its headline figures (value, baseline, data), for summaries.

The config's metric list (`EvalConfig.metrics` choices), the run order, the JSON and the CLI
table all follow from this registry. **Adding a metric = one new module under `sensekit/eval/`
ending in `register(StoreMetric(...))`, plus its module name in `MODULES` below** (the explicit
list fixes the order of the table and the JSON, and keeps the set of metrics visible in one line)
**and in the metrics layer of the eval contract in pyproject.toml** (a metric imports no other
metric; what several share goes in `items`; tests/test_imports.py checks the two lists agree).

Only numpy is imported at module level here and in the metric modules: the CLI reads the
registry to build its flags.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

__all__ = [
    "MODULES",
    "StoreMetric",
    "Headline",
    "Skip",
    "register",
    "metrics",
    "metric_names",
    "store_rows",
    "headlines",
    "coverage",
    "num",
    "fmt",
    "fmt_coverage",
]

# The metric modules, in the order of the table and the JSON. A new metric adds its module here.
MODULES = ("wic", "similarity", "purity", "bcubed", "wsd", "neighbours", "health")

Row = tuple[str, str, str, str]  # (metric, value, baseline, coverage)


class Skip(Exception):
    """A metric cannot run here (missing data); the message is the reason shown to the user."""


@dataclass(frozen=True)
class Headline:
    """One headline figure of a metric: its value beside its same-run baseline, and the data it used."""

    figure: str
    value: Optional[float]
    baseline: Optional[float]
    baseline_name: str
    data: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "figure": self.figure,
            "value": self.value,
            "baseline": self.baseline,
            "baseline_name": self.baseline_name,
            "data": self.data,
        }


@dataclass(frozen=True)
class StoreMetric:
    name: str
    title: str
    compute: Callable[[Any], dict]  # a run.StoreRun in: the registry sits below the run context, so no import
    rows: Callable[[dict], list[Row]]
    headline: Callable[[dict], list[Headline]] = field(default=lambda entry: [])


_REGISTRY: dict[str, StoreMetric] = {}


def register(metric: StoreMetric) -> StoreMetric:
    """Add `metric` (called at the bottom of its module). A second metric of the same name is refused."""
    old = _REGISTRY.get(metric.name)
    if old is not None and old.compute.__module__ != metric.compute.__module__:
        raise ValueError(f"two eval metrics are named {metric.name!r}")
    _REGISTRY[metric.name] = metric
    return metric


def metrics() -> dict[str, StoreMetric]:
    """Every registered metric, name -> StoreMetric, in `MODULES` order (imports the modules once)."""
    for module in MODULES:
        importlib.import_module(f"{__package__}.{module}")
    order = {m: i for i, m in enumerate(MODULES)}
    return dict(sorted(_REGISTRY.items(), key=lambda kv: order.get(kv[1].compute.__module__.rsplit(".", 1)[-1], 99)))


def metric_names() -> tuple[str, ...]:
    return tuple(metrics())


def store_rows(result: dict) -> list[Row]:
    """(metric, value, baseline, coverage) rows of an `evaluate_store` result, metric by metric."""
    rows: list[Row] = []
    for name, metric in metrics().items():
        entry = result["metrics"].get(name)
        if entry is None:
            continue
        if entry.get("status") == "skipped":
            rows.append((metric.title, "skipped", entry.get("reason", ""), "-"))
        else:
            rows.extend(metric.rows(entry))
    return rows


def headlines(result: dict) -> list[dict[str, Any]]:
    """The headline figures of an `evaluate_store` result, with the metric's name."""
    out = []
    for name, metric in metrics().items():
        entry = result["metrics"].get(name)
        if entry is not None and entry.get("status") != "skipped":
            out.extend({"metric": name, **h.to_dict()} for h in metric.headline(entry))
    return out


# -- helpers the metric modules share ------------------------------------------------------
def coverage(scored: int, total: int) -> dict:
    return {"scored": int(scored), "total": int(total), "share": round(scored / total, 4) if total else 0.0}


def num(x) -> Optional[float]:
    """JSON-safe float: NaN -> None, rounded for reading."""
    x = float(x)
    return None if not np.isfinite(x) else round(x, 4)


def fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.3f}"
    return str(x)


def fmt_coverage(c: dict | None) -> str:
    if not c:
        return "-"
    return f"{c['scored']:,}/{c['total']:,} ({c['share']:.0%})"
