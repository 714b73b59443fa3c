"""`sensekit relations add` and `sensekit lexicon extract`: typer halves over plain functions.

- `relations_add_cli` parses its flags (generated from `RelationsConfig`) and calls `attach.attach_relations`;
- `lexicon_extract_cli` calls `wiktionary_dump.extract`.

The plain functions return data and print nothing; rendering happens here. The lead's
`sensekit/cli.py` calls `register(app)`. Module-level imports stay light (typer and the config
dataclass only); the work and rich rendering are imported inside the commands.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any, List, Optional

import typer

from ..options import cli_parameters, given
from .config import RelationsConfig

__all__ = ["register", "relations_app", "lexicon_app", "relations_add_cli", "lexicon_extract_cli", "render_attach"]

relations_app = typer.Typer(
    help="Synonym / antonym relations of a store (Wiktionary, WordNet, pair lists).", no_args_is_help=True
)
lexicon_app = typer.Typer(help="Lexicon files: turn a Wiktionary dump into wiktextract JSONL.", no_args_is_help=True)

_SOURCE_HELP = (
    "wordnet | wordnet:DIR | FILE.jsonl[.gz|.bz2] (kaikki/wiktextract) | FILE.xml.bz2 (Wiktionary dump) | "
    "pairs:FILE.tsv, optionally NAME=SPEC to store the rows under NAME"
)


def register(app: typer.Typer) -> None:
    """Add the `relations` and `lexicon` command groups to the main sensekit app."""
    app.add_typer(relations_app, name="relations")
    app.add_typer(lexicon_app, name="lexicon")


def relations_add_cli(sources: List[str], store: Path, **flags: Any) -> None:
    """Add or refresh relations in an existing store; each source's rows are replaced atomically."""
    from .attach import attach_relations

    result = attach_relations(store, sources, RelationsConfig(**given(flags)))
    render_attach(result, store)


# The command's parameters: SOURCE... and --store, then one flag per RelationsConfig field.
relations_add_cli.__signature__ = inspect.Signature(
    [
        inspect.Parameter(
            "sources",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[List[str], typer.Argument(help=_SOURCE_HELP, metavar="SOURCE...", show_default=False)],
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
relations_app.command("add")(relations_add_cli)


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


@lexicon_app.command("extract")
def lexicon_extract_cli(
    dump: Path = typer.Argument(..., help="A MediaWiki Wiktionary dump (.xml or .xml.bz2)."),
    out: Path = typer.Option(..., "--out", "-o", help="The JSONL to write (.jsonl, or compressed: .gz, .bz2, .xz)."),
    lang: str = typer.Option("all", help="Keep entries of this language, by code or name ('all' keeps every one)."),
    processes: Optional[int] = typer.Option(None, help="Parser processes (default: CPU count)."),
) -> None:
    """Parse a Wiktionary dump with wiktextract and write its entries as JSONL (kaikki format)."""
    from rich.console import Console

    from .wiktionary_dump import extract

    counts = extract(dump, out, lang_code=lang, processes=processes)
    Console().print(
        f"wrote {counts['entries']:,} entries ({counts['pages']:,} pages, {counts['seconds']:.1f} s, "
        f"{counts['synonyms']:,} synonym and {counts['antonyms']:,} antonym links) to {out}"
    )
