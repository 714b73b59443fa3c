"""`sensekit lexicon extract`: a Wiktionary dump to wiktextract JSONL (`lexicon.wiktionary_dump.extract`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

__all__ = ["app", "lexicon_extract_cli"]

app = typer.Typer(
    name="lexicon", help="Lexicon files: turn a Wiktionary dump into wiktextract JSONL.", no_args_is_help=True
)


@app.command("extract")
def lexicon_extract_cli(
    dump: Path = typer.Argument(..., help="A MediaWiki Wiktionary dump (.xml or .xml.bz2)."),
    out: Path = typer.Option(..., "--out", "-o", help="The JSONL to write (.jsonl, or compressed: .gz, .bz2, .xz)."),
    lang: str = typer.Option("all", help="Keep entries of this language, by code or name ('all' keeps every one)."),
    processes: Optional[int] = typer.Option(None, help="Parser processes (default: CPU count)."),
) -> None:
    """Parse a Wiktionary dump with wiktextract and write its entries as JSONL (kaikki format)."""
    from rich.console import Console

    from ..lexicon.wiktionary_dump import extract

    counts = extract(dump, out, lang_code=lang, processes=processes)
    Console().print(
        f"wrote {counts['entries']:,} entries ({counts['pages']:,} pages, {counts['seconds']:.1f} s, "
        f"{counts['synonyms']:,} synonym and {counts['antonyms']:,} antonym links) to {out}"
    )
