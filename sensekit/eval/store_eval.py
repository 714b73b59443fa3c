"""`evaluate_store`: every registered metric of a sense store as plain data (the CLI renders it).

The metrics themselves live one module each (`sensekit.eval.registry` lists them). Each returns
a dict with `status` ("ok" or "skipped" with a `reason`), its `coverage` (how many items it could
score, out of how many) and a `baseline` measured in the same run. A metric whose data (a
benchmark file, WordNet, the teacher, the index) is missing is skipped with the reason; the
others still run.
"""

from __future__ import annotations

import time
from typing import Optional

from ..errors import InputError
from ..progress import Progress, no_progress
from .config import EvalConfig
from .registry import Skip, headlines, metrics
from .run import StoreRun
from .senses import Space, identity

__all__ = ["evaluate_store", "evaluate_views", "Skip"]


def evaluate_store(
    cfg: EvalConfig,
    progress: Progress = no_progress,
    *,
    teacher=None,
    to_space: Optional[Space] = None,
    store=None,
) -> dict:
    """Run the selected metrics on `cfg.store`. `progress(metric, done, total)` before each metric
    (sensekit.progress). `teacher`: an already loaded Teacher (tests, benchmarks). `to_space`: a
    similarity transform [n, d] -> [n, d'] overriding `cfg.cosine` (the store's own, or plain).
    `store`: that store already open (it stays open; `cfg.view` is read from it)."""
    from contextlib import nullcontext

    from ..store import open_store

    if cfg.view == "all":
        raise InputError("view 'all' runs every view of the store: call evaluate_views(cfg)")
    registry = metrics()
    t0 = time.perf_counter()
    opened = nullcontext(store.in_view(cfg.view or store.default_view)) if store is not None else None
    with opened or open_store(cfg.store, view=cfg.view) as store:  # every metric reads this view
        in_space = cfg.cosine == "store-space"
        space = (
            {"kind": "custom"}
            if to_space is not None
            else (store.space.describe() if in_space else {"kind": "identity"})
        )
        if to_space is None:
            to_space = store.space.apply if in_space else identity
        run = StoreRun(cfg, store, to_space, teacher)
        results: dict[str, dict] = {}
        for i, name in enumerate(cfg.selected):
            progress(name, i, len(cfg.selected))
            t = time.perf_counter()
            try:
                results[name] = registry[name].compute(run)
            except Skip as exc:
                results[name] = {"status": "skipped", "reason": str(exc)}
            results[name]["seconds"] = round(time.perf_counter() - t, 2)
        progress("done", len(cfg.selected), len(cfg.selected))
        info = {
            "path": str(store.path),
            "view": store.default_view,
            "views": list(store.views),
            "teacher": store.meta.get("teacher"),
            "key_mode": run.key_mode,
            "k": run.k,
            "min_context": run.min_context,
            "corpus": store.meta.get("corpus"),
            "corpus_heldout": store.meta.get("corpus_heldout"),
            "space": space,
            "tokens_with_senses": int(len(run.table.token_ids)),
            "token_senses": int(len(run.table.owner)),
        }
    result = {"store": info, "config": cfg.to_dict(), "metrics": results, "warnings": run.warnings}
    result["headlines"] = headlines(result)  # each metric's headline figures, with the data they used
    result["seconds"] = round(time.perf_counter() - t0, 2)
    return result


def evaluate_views(cfg: EvalConfig, progress: Progress = no_progress, *, teacher=None) -> dict:
    """`--view all`: `evaluate_store` once per view the store holds -> {"views": {view: result}, "seconds"}.

    The teacher is loaded once and shared by the runs (a teacher that cannot load skips the metrics
    that need it, in every view, with the reason)."""
    import dataclasses

    from ..errors import SensekitError
    from ..store import open_store

    t0 = time.perf_counter()
    with open_store(cfg.store) as store:
        views = list(store.views)
        if teacher is None:
            from ..model.store_check import load_store_teacher

            try:
                teacher = load_store_teacher(store, cfg.teacher, cfg.device, cfg.dtype)
            except (SensekitError, OSError):
                teacher = None  # each run records why
        results = {}
        for view in views:  # the store opened once, each run reading its view

            def in_view(stage, *args, _view=view, **info):
                progress(f"{_view}: {stage}", *args, **info)

            results[view] = evaluate_store(dataclasses.replace(cfg, view=view), in_view, teacher=teacher, store=store)
    return {"views": results, "seconds": round(time.perf_counter() - t0, 2)}
