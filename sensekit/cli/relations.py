"""`sensekit relations add`: `relations_add_cli` parses its flags (generated from `RelationsConfig`)
and calls `lexicon.attach.attach_relations`, which returns counts and prints nothing; `render_attach`
shows them (`sensekit build` renders its relations with it too)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any, List

import typer

from ..lexicon.config import RelationsConfig
from ..lexicon.sources import source_help
from ..options import cli_parameters, given

__all__ = ["app", "relations_add_cli", "render_attach"]

app = typer.Typer(
    name="relations",
    help="Synonym / antonym relations of a store (Wiktionary, WordNet, pair lists).",
    no_args_is_help=True,
)


def relations_add_cli(sources: List[str], store: Path, **flags: Any) -> None:
    """Add or refresh relations in an existing store; each source's rows are replaced atomically."""
    from ..lexicon.attach import attach_relations

    result = attach_relations(store, sources, RelationsConfig(**given(flags)))
    render_attach(result, store)


# The command's parameters: SOURCE... and --store, then one flag per RelationsConfig field.
relations_add_cli.__signature__ = inspect.Signature(
    [
        inspect.Parameter(
            "sources",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[
                List[str], typer.Argument(help=source_help(), metavar="SOURCE...", show_default=False)
            ],
        ),
        inspect.Parameter(
            "store",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[
                Path, typer.Option("--store", "-s", help="The store bundle to update (e.g. senses.sensekit).")
            ],
        ),
        *cli_parameters(RelationsConfig),
    ]
)
app.command("add")(relations_add_cli)


def render_attach(result: dict, store) -> None:
    """Print `attach_relations`' counts as a table, then the first malformed lines of each source."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"relations in {store}")
    for col in ("source", "read", "bad", "pairs", "rows", "syn", "ant", "derived", "dropped"):
        table.add_column(col, justify="left" if col == "source" else "right")
    for name, c in result["sources"].items():
        dropped = c.get("dropped_head", 0) + c.get("dropped_related", 0) + c.get("dropped_no_senses", 0)
        table.add_row(
            name,
            f"{c['read']:,}",
            f"{c['bad']:,}",
            f"{c['pairs']:,}",
            f"{c['rows']:,}",
            f"{c['syn']:,}",
            f"{c['ant']:,}",
            f"{c['derived']:,}",
            f"{dropped:,}",
        )
    console.print(table)
    console.print(f"words {result['words']:,}, span clouds {result['spans']:,} ({result['span_rows']:,} rows)")
    for name, c in result["sources"].items():
        if c["bad"]:
            shown = c["errors"][:10]
            console.print(f"[yellow]{name}: {c['bad']:,} malformed line(s) skipped[/yellow]")
            for line, msg in shown:
                console.print(f"  line {line}: {msg}", markup=False)
            if c["bad"] > len(shown):
                console.print(f"  ... and {c['bad'] - len(shown):,} more")
