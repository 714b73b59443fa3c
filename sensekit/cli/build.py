"""`sensekit build`: `build_cli` parses the flags (generated from BuildConfig's fields) into a
BuildConfig, calls `builder.pipeline.build`, and renders its progress and result with rich.
No torch or transformers at import time (the query CLI starts fast)."""

from __future__ import annotations

import inspect
import time
from typing import Annotated, Any, Optional

import typer

from ..builder.config import BuildConfig
from ..options import cli_parameters, given
from ._common import quiet_libraries

__all__ = ["app", "build_cli"]

_STAGES = {
    "load": "loading teacher",
    "harvest": "harvesting",
    "merge": "merging ranks",
    "cluster": "clustering",
    "contexts": "collecting contexts",
    "write": "writing store",
    "relations": "attaching relations",
}


class _RichProgress:
    """progress(stage, done, total) -> one rich bar per stage; harvest shows tokens, tokens/s and ETA."""

    def __init__(self, console) -> None:
        from rich.progress import (
            BarColumn,
            Progress,
            ProgressColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        class Rate(ProgressColumn):
            def render(self, task):
                speed = task.finished_speed or task.speed
                if task.fields.get("unit") != "tok" or not speed:
                    return Text("")
                return Text(f"{speed:,.0f} tok/s", style="cyan")

        class Done(ProgressColumn):
            def render(self, task):
                unit = task.fields.get("unit", "")
                total = f"/{task.total:,.0f}" if task.total else ""
                return Text(f"{task.completed:,.0f}{total} {unit}".strip())

        self.bar = Progress(
            TextColumn("{task.description:<19}"),
            BarColumn(bar_width=24),
            TaskProgressColumn(),
            Done(),
            Rate(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(compact=True),
            console=console,
            transient=False,
        )
        self.tasks: dict[str, int] = {}
        self.current: Optional[str] = None

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        self.bar.__exit__(*exc)

    def __call__(self, stage: str, done: Optional[int] = None, total: Optional[int] = None, /, **info) -> None:
        if stage != self.current and self.current in self.tasks:
            t = self.tasks[self.current]
            task = self.bar.tasks[t]
            end = task.total or max(task.completed, 1)  # a finished stage shows full
            self.bar.update(t, total=end, completed=end)
        self.current = stage
        if stage not in self.tasks:
            unit = {"harvest": "tok", "cluster": "vec", "contexts": "doc"}.get(stage, "")
            self.tasks[stage] = self.bar.add_task(_STAGES.get(stage, stage), total=total, unit=unit)
        self.bar.update(self.tasks[stage], completed=done, total=total)


def build_cli(**values: Any) -> None:
    """Harvest a teacher's hidden states over a corpus, cluster them into senses, write the store."""
    import os

    # OpenMP threads that spin at barriers lose badly when the cores are shared (2-10x measured on a
    # busy 2-core machine); passive waiting costs nothing measurable on an idle one. Before torch loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from rich.console import Console

    from ..builder.pipeline import build

    quiet = values.pop("quiet")
    cfg = BuildConfig(**given(values))  # the flags not given take the dataclass' defaults
    console = Console(stderr=True, highlight=False)
    _quiet_libraries()
    t0 = time.perf_counter()
    if quiet or int(os.environ.get("RANK", "0")) != 0:  # one set of bars for a multi-process build
        result = build(cfg)
    else:
        with _RichProgress(console) as bar:
            result = build(cfg, progress=bar)
    if result.store is None:  # a non-zero rank of a multi-process build
        return
    out = Console(highlight=False)
    lexical = f" (loss view) + {result.lexical_senses:,} lexical senses" if result.lexical_senses else ""
    out.print(
        f"wrote [bold]{result.store}[/]: {result.tokens:,} tokens, {result.senses:,} senses{lexical}, "
        f"{result.contexts:,} contexts from {result.tokens_processed:,} corpus tokens "
        f"({result.tokens_per_s:,.0f} tok/s, {time.perf_counter() - t0:,.0f} s)"
    )
    for line in result.warnings:
        console.print(f"[yellow]warning:[/] {line}", soft_wrap=True)
    if result.relations:
        from .relations import render_attach

        render_attach(result.relations, result.store)


def _parameters() -> list[inspect.Parameter]:
    """BuildConfig's fields as flags (the corpus as the positional argument), plus --quiet, which is not a setting."""
    quiet = typer.Option("--quiet", "-q", help="No progress bars; print only the summary.")
    quiet_param = inspect.Parameter(
        "quiet", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[bool, quiet]
    )
    return [*cli_parameters(BuildConfig, arguments=("corpus",)), quiet_param]


build_cli.__signature__ = inspect.Signature(_parameters())  # type: ignore[attr-defined]


def _quiet_libraries() -> None:
    """transformers' own progress bars and warnings would fight with ours."""
    import os

    quiet_libraries()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


app = typer.Typer()
app.command("build")(build_cli)
