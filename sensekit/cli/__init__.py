"""The `sensekit` command line: one typer app, one module per command group, each mounted the same way.

    store      query, info, export, plot, serve (the commands that read a store)
    annotate   annotate (which sense each word of a text has; loads the teacher)
    distill    distill, distill compare
    build      build
    relations  relations add
    lexicon    lexicon extract
    eval       eval store, eval layers, eval student

Each module holds a `typer.Typer` named `app`: a named one is a command group (`sensekit eval ...`),
an unnamed one adds its commands at the top. A new command group is one module and one entry in
COMMAND_GROUPS. This package is the one part of sensekit that imports distill (its configs only, at
import time: no torch, no transformers, so `sensekit query` starts fast).

Every user error is a `SensekitError`, printed as one line; the exit code is 1 (bad input, unknown
word) or 2 (missing or corrupt store).
"""

from __future__ import annotations

from typing import Optional

import typer
from rich.markup import escape

from ..errors import SensekitError
from . import annotate, build, distill, eval, lexicon, relations, store
from ._common import err

__all__ = ["app", "main", "COMMAND_GROUPS"]

# In the order `sensekit --help` lists them.
COMMAND_GROUPS = (store, annotate, distill, build, relations, lexicon, eval)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Sense dictionaries for decoder LMs (DuckDB + HNSW), and DSKD distillation.",
)
for group in COMMAND_GROUPS:
    app.add_typer(group.app)


def main(argv: Optional[list[str]] = None) -> None:
    """Console entry point. Click handles usage errors (exit 2) itself; a SensekitError becomes
    one line and its exit code."""
    try:
        app(argv, standalone_mode=True)
    except SensekitError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        err.print("interrupted")
        raise SystemExit(130) from None
