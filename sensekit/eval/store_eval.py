"""`evaluate_store`: every registered metric of a sense store as plain data (the CLI renders it).

The metrics themselves live one module each (`sensekit.eval.registry` lists them). Each returns
a dict with `status` ("ok" or "skipped" with a `reason`), its `coverage` (how many items it could
score, out of how many) and a `baseline` measured in the same run. A metric whose data (a
benchmark file, WordNet, the teacher, the index) is missing is skipped with the reason; the
others still run.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

from .config import EvalConfig
from .registry import Skip, metrics
from .run import StoreRun
from .senses import Space, identity

__all__ = ["evaluate_store", "Skip"]

Progress = Callable[[str], None]


def evaluate_store(
    cfg: EvalConfig, progress: Optional[Progress] = None, *, teacher=None, to_space: Optional[Space] = None
) -> dict:
    """Run the selected metrics on `cfg.store`. `teacher`: an already loaded Teacher (tests, benchmarks).
    `to_space`: a similarity transform [n, d] -> [n, d'] overriding `cfg.space` (the store's own, or raw)."""
    from ..store import open_store

    report = progress or (lambda name: None)
    registry = metrics()
    t0 = time.perf_counter()
    with open_store(cfg.store) as store:
        space = (
            {"kind": "custom"}
            if to_space is not None
            else (store.space.describe() if cfg.space == "store" else {"kind": "identity"})
        )
        if to_space is None:
            to_space = store.space.apply if cfg.space == "store" else identity
        run = StoreRun(cfg, store, to_space, teacher)
        results: dict[str, dict] = {}
        for name in cfg.selected:
            report(name)
            t = time.perf_counter()
            try:
                results[name] = registry[name].compute(run)
            except Skip as exc:
                results[name] = {"status": "skipped", "reason": str(exc)}
            results[name]["seconds"] = round(time.perf_counter() - t, 2)
        info = {
            "path": str(store.path),
            "teacher": store.meta.get("teacher"),
            "key_mode": run.key_mode,
            "k": run.k,
            "min_context": run.min_context,
            "space": space,
            "tokens_with_senses": int(len(run.table.token_ids)),
            "token_senses": int(len(run.table.owner)),
        }
    return {"store": info, "config": cfg.to_dict(), "metrics": results, "seconds": round(time.perf_counter() - t0, 2)}
