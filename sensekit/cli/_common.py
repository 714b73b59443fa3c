"""What the command modules share: the consoles, the --store and --view options, `--json` output,
the status line, and quieting the model libraries. Light imports only (no torch, no transformers)."""

from __future__ import annotations

import inspect
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from ..options import cli_parameters
from ..progress import Progress

DEFAULT_STORE = Path("senses.sensekit")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

StoreOpt = typer.Option(DEFAULT_STORE, "--store", "-s", help="Store bundle directory.")
ViewOpt = typer.Option(
    None,
    "--view",
    help="Which senses: 'lexical' (a middle layer's state at the word: word senses) or 'loss' (the "
    "post-norm senses distill reads); default: lexical when the store has it.",
)
_JSON = typer.Option("--json", help="Print one JSON document instead of tables.")


def shown(text: str, limit: int = 60) -> str:
    """`text` quoted for a message, cut to `limit` characters with an ellipsis: a 10,000-character
    word is not echoed back whole."""
    text = str(text)
    if len(text) <= limit:
        return repr(text)
    return f"{text[: limit - 1] + '…'!r} ({len(text):,} characters)"


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
