"""`sensekit relations add` and `sensekit lexicon extract`: typer halves over plain functions.

The lead's `sensekit/cli.py` calls `register(app)`. Module-level imports stay light (typer
only); the work and rich rendering are imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

__all__ = ["register", "relations_app", "lexicon_app"]

relations_app = typer.Typer(help="Synonym / antonym relations of a store (Wiktionary, WordNet, pair lists).",
                            no_args_is_help=True)
lexicon_app = typer.Typer(help="Lexicon files: turn a Wiktionary dump into wiktextract JSONL.", no_args_is_help=True)

_SOURCE_HELP = (
    "wordnet | wordnet:DIR | FILE.jsonl[.gz|.bz2] (kaikki/wiktextract) | FILE.xml.bz2 (Wiktionary dump) | "
    "pairs:FILE.tsv, optionally NAME=SPEC to store the rows under NAME"
)


def register(app: typer.Typer) -> None:
    """Add the `relations` and `lexicon` command groups to the main sensekit app."""
    app.add_typer(relations_app, name="relations")
    app.add_typer(lexicon_app, name="lexicon")


@relations_app.command("add")
def relations_add(
    sources: list[str] = typer.Argument(..., help=_SOURCE_HELP, metavar="SOURCE..."),
    store: Path = typer.Option(..., "--store", "-s", help="The store bundle to update (e.g. senses.sensekit)."),
    head_min_chars: int = typer.Option(3, help="A head word is one token of at least this many characters."),
    max_span_tokens: int = typer.Option(3, help="A related word may span 1..N tokens (N >= 2 gets a span cloud)."),
    polarity: bool = typer.Option(False, "--polarity/--no-polarity",
                                  help="Polarity normalisation: syn(unhappy, sad) -> ant(happy, sad), marked derived."),
    lang: str = typer.Option("en", help="Wiktionary: keep entries with this lang_code ('all' keeps every language)."),
    on_error: str = typer.Option("skip", help="A malformed input line: skip (counted and reported) or fail."),
    similar_tos: bool = typer.Option(False, "--similar-tos", help="WordNet: adjective similar_to links as synonyms."),
    binary_labels: Optional[str] = typer.Option(None, help="Pair lists with 0/1 labels: 'ant' (1 = antonym) or 'syn' (1 = synonym)."),
    cloud_rows: Optional[int] = typer.Option(None, help="Rows per span cloud K (default: the store's k)."),
    require_senses: bool = typer.Option(False, "--require-senses",
                                        help="Keep only pairs whose words have senses (or a span cloud) in the store."),
    processes: Optional[int] = typer.Option(None, help="Wiktionary dumps: parser processes (default: CPU count)."),
) -> None:
    """Add or refresh relations in an existing store; each source's rows are replaced atomically."""
    from .attach import attach_relations

    result = attach_relations(
        store, sources, head_min_chars=head_min_chars, max_span_tokens=max_span_tokens, polarity=polarity,
        lang_code=None if lang in ("all", "*") else lang, on_error=on_error, similar_tos=similar_tos,
        binary_labels=binary_labels, cloud_rows=cloud_rows, require_senses=require_senses, processes=processes,
    )
    render_attach(result, store)


def render_attach(result: dict, store) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"relations in {store}")
    for col in ("source", "read", "bad", "pairs", "rows", "syn", "ant", "derived", "dropped"):
        table.add_column(col, justify="left" if col == "source" else "right")
    for name, c in result["sources"].items():
        dropped = c.get("dropped_head", 0) + c.get("dropped_related", 0) + c.get("dropped_no_senses", 0)
        table.add_row(name, f"{c['read']:,}", f"{c['bad']:,}", f"{c['pairs']:,}", f"{c['rows']:,}", f"{c['syn']:,}",
                      f"{c['ant']:,}", f"{c['derived']:,}", f"{dropped:,}")
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
def lexicon_extract(
    dump: Path = typer.Argument(..., help="A MediaWiki Wiktionary dump (.xml or .xml.bz2)."),
    out: Path = typer.Option(..., "--out", "-o", help="The JSONL to write (.jsonl, .jsonl.gz or .jsonl.bz2)."),
    lang: str = typer.Option("all", help="Keep entries with this lang_code ('all' keeps every captured language)."),
    processes: Optional[int] = typer.Option(None, help="Parser processes (default: CPU count)."),
) -> None:
    """Parse a Wiktionary dump with wiktextract and write its entries as JSONL (kaikki format)."""
    from rich.console import Console

    from .wiktionary import extract

    counts = extract(dump, out, lang_code=None if lang in ("all", "*") else lang, processes=processes)
    Console().print(
        f"wrote {counts['entries']:,} entries ({counts['pages']:,} pages, {counts['seconds']:.1f} s, "
        f"{counts['synonyms']:,} synonym and {counts['antonyms']:,} antonym links) to {out}")
