"""`sensekit build`: the typer half. Parses options into a BuildConfig, calls `pipeline.build`,
and draws rich progress. No torch or transformers at import time (the query CLI starts fast)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer

__all__ = ["register", "build_command"]


def _h(name: str) -> str:
    from .pipeline import BuildConfig

    return BuildConfig.help(name)


_STAGES = {"load": "loading teacher", "harvest": "harvesting", "merge": "merging ranks", "cluster": "clustering",
           "contexts": "collecting contexts", "write": "writing store", "relations": "attaching relations"}


class _RichProgress:
    """progress(stage, done, total) -> one rich bar per stage; harvest shows tokens, tokens/s and ETA."""

    def __init__(self, console) -> None:
        from rich.progress import (BarColumn, Progress, ProgressColumn, TaskProgressColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)
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

        self.bar = Progress(TextColumn("{task.description:<19}"), BarColumn(bar_width=24), TaskProgressColumn(), Done(),
                            Rate(), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(compact=True),
                            console=console, transient=False)
        self.tasks: dict[str, int] = {}
        self.current: Optional[str] = None

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        self.bar.__exit__(*exc)

    def __call__(self, stage: str, done: int, total: Optional[int]) -> None:
        if stage != self.current and self.current in self.tasks:
            t = self.tasks[self.current]
            task = self.bar.tasks[t]
            self.bar.update(t, total=task.total or max(task.completed, 1), completed=task.total or max(task.completed, 1))
        self.current = stage
        if stage not in self.tasks:
            unit = {"harvest": "tok", "cluster": "vec", "contexts": "doc"}.get(stage, "")
            self.tasks[stage] = self.bar.add_task(_STAGES.get(stage, stage), total=total, unit=unit)
        self.bar.update(self.tasks[stage], completed=done, total=total)


def build_command(
    corpus: Optional[List[str]] = typer.Argument(None, help=_h("corpus"), show_default=False),
    store: Path = typer.Option(Path("senses.sensekit"), "--store", "-s", help=_h("store")),
    teacher: str = typer.Option("smollm2-135m", "--teacher", help=_h("teacher")),
    device: Optional[str] = typer.Option(None, "--device", help=_h("device")),
    dtype: Optional[str] = typer.Option(None, "--dtype", help=_h("dtype")),
    key: str = typer.Option("next", "--key", help=_h("key")),
    next_token: str = typer.Option("gold", "--next-token", help=_h("next_token")),
    senses_per_token: int = typer.Option(10, "--senses-per-token", "-k", help=_h("senses_per_token")),
    samples_per_token: int = typer.Option(50, "--samples-per-token", "-G", help=_h("samples_per_token")),
    contexts_per_sense: int = typer.Option(3, "--contexts-per-sense", "-E", help=_h("contexts_per_sense")),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help=_h("max_tokens")),
    seq_len: int = typer.Option(256, "--seq-len", help=_h("seq_len")),
    batch_size: int = typer.Option(16, "--batch-size", help=_h("batch_size")),
    text_field: str = typer.Option("text", "--text-field", help=_h("text_field")),
    seed: int = typer.Option(0, "--seed", help=_h("seed")),
    resume: bool = typer.Option(False, "--resume", help=_h("resume")),
    checkpoint_every: int = typer.Option(500, "--checkpoint-every", help=_h("checkpoint_every")),
    reservoir_memory: str = typer.Option("8GB", "--reservoir-memory", help=_h("reservoir_memory")),
    relations: Optional[List[str]] = typer.Option(None, "--relations", help=_h("relations")),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars; print only the summary."),
) -> None:
    """Harvest a teacher's hidden states over a corpus, cluster them into senses, write the store."""
    import os

    # OpenMP threads that spin at barriers lose badly when the cores are shared (2-10x measured on a
    # busy 2-core machine); passive waiting costs nothing measurable on an idle one. Before torch loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from rich.console import Console

    from .pipeline import BuildConfig, build

    cfg = BuildConfig(corpus=tuple(corpus or ()), store=str(store), teacher=teacher, device=device, dtype=dtype,
                      key=key, next_token=next_token, senses_per_token=senses_per_token,
                      samples_per_token=samples_per_token, contexts_per_sense=contexts_per_sense,
                      max_tokens=max_tokens, seq_len=seq_len, batch_size=batch_size, text_field=text_field,
                      seed=seed, resume=resume, checkpoint_every=checkpoint_every,
                      reservoir_memory=reservoir_memory, relations=tuple(relations or ()))
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
    out.print(f"wrote [bold]{result.store}[/]: {result.tokens:,} tokens, {result.senses:,} senses, "
              f"{result.contexts:,} contexts from {result.tokens_processed:,} corpus tokens "
              f"({result.tokens_per_s:,.0f} tok/s, {time.perf_counter() - t0:,.0f} s)")
    if result.relations:
        from ..lexicon.cli import render_attach

        render_attach(result.relations, result.store)


def _quiet_libraries() -> None:
    """transformers' own progress bars and warnings would fight with ours."""
    import os

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def register(app: typer.Typer) -> None:
    """Add `build` to the main sensekit app."""
    app.command("build")(build_command)
