"""`sensekit annotate`: which sense each word of a text has (sensekit/annotate.py loads the teacher)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..annotate import DEFAULT_PRIOR, DEFAULT_PRIOR_WEIGHT
from ._common import StoreOpt, err, out, quiet_libraries

app = typer.Typer()


def _lines(text: Optional[str], file: Optional[Path]) -> list[str]:
    from ..errors import InputError

    if text is not None and file is not None:
        raise InputError("give the text as an argument or --file, not both")
    if text is not None:
        return text.splitlines() or [text]
    if file is not None:
        if str(file) == "-":
            return sys.stdin.read().splitlines()
        if not file.is_file():
            raise InputError(f"--file {file} does not exist; give a text file with one sentence per line")
        try:
            return file.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise InputError(f"--file {file} is not UTF-8 text") from None
    if sys.stdin.isatty():
        raise InputError("no text: give it as an argument, with --file FILE, or on stdin")
    return sys.stdin.read().splitlines()


@app.command("annotate")
def annotate_cli(
    text: Optional[str] = typer.Argument(None, help="The text (lines are annotated one by one); or --file / stdin."),
    file: Optional[Path] = typer.Option(None, "--file", "-f", help="A text file, one line at a time ('-': stdin)."),
    store: Path = StoreOpt,
    teacher: Optional[str] = typer.Option(None, "--teacher", help="Teacher (default: the one the store records)."),
    device: Optional[str] = typer.Option(None, "--device", help="Device (cpu, cuda, ...); default: cuda if available."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per input line instead of tables."),
    prior: str = typer.Option(
        DEFAULT_PRIOR,
        "--prior",
        help="What the log prior counts: 'samples' (the sense's share of its word's corpus samples) or 'wordnet' "
        "(the SemCor count of the sense's lemma in its synset; needs WordNet).",
    ),
    prior_weight: float = typer.Option(
        DEFAULT_PRIOR_WEIGHT, "--prior-weight", help="Weight of the log prior beside cosine / temperature; 0: off."
    ),
    wordnet_names: bool = typer.Option(
        True,
        "--wordnet-names/--store-senses-only",
        help="Name a word the build did not link, or one without store senses, from its WordNet synsets (first "
        "use: a short teacher pass, then cached; its sense id is '-'), or keep to the store's senses.",
    ),
) -> None:
    """Which sense each word has in its sentence: the store's lexical senses, their WordNet synset and gloss
    when linked, and a probability over the word's senses. A word with neither store senses nor WordNet
    synsets is skipped and counted."""
    quiet_libraries()
    lines = _lines(text, file)
    from ..annotate import Annotator

    with Annotator.open(
        store, teacher, device, prior=prior, prior_weight=prior_weight, name_from_wordnet=wordnet_names
    ) as annotator:
        docs = annotator.annotate(lines)
    unknown = sum(d.pop("unknown") for d in docs)
    words = sum(len(d["words"]) for d in docs)
    if as_json:
        for d in docs:
            print(json.dumps(d, ensure_ascii=False))
    else:
        for d in docs:
            if not d["text"].strip():
                continue
            table = Table(title=escape(d["text"]), title_justify="left", show_lines=False)
            for col in ("word", "chars", "sense", "synset", "score", "gloss"):
                table.add_column(col, overflow="fold")
            for w in d["words"]:
                table.add_row(
                    escape(w["text"]),
                    f"{w['start']}-{w['end']}",
                    "-" if w["sense_id"] is None else str(w["sense_id"]),  # None: a synset named from WordNet
                    escape(w["synset"] or "-"),
                    f"{w['score']:.2f}",
                    escape(w["gloss"] or ""),
                )
            out.print(table)
    err.print(f"{words} words annotated in {len(docs)} lines; {unknown} words without senses skipped")
