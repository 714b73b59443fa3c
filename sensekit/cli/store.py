"""The commands that read a store: `query`, `info`, `export`, `plot` and `serve`.

`sensekit query` must start fast: the store and its readers are imported inside the commands.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import InputError, NotFound
from ._common import StoreOpt, ViewOpt, err, out, quiet_libraries, shown

app = typer.Typer()


# -- query ------------------------------------------------------------------------------
def query_word(store, word: str, k: int = 10) -> dict:
    """Everything `sensekit query` shows, as plain data, from the store's default view (`open_store(view=...)`).
    Raises NotFound for an unknown word."""
    tokens = store.tokens(word)
    senses = store.senses(word)
    relations = store.relations(word)
    if not senses and not relations:
        close = [w for w in store.similar_words(word) if w != word.strip()]
        shape = "a single token" if len(tokens) == 1 else f"{len(tokens)} tokens"
        hint = f"; did you mean: {', '.join(close)}" if close else ""
        raise NotFound(
            f"unknown word {shown(word.strip())}: it is {shape} with no senses or relations in {store.path}{hint}"
        )
    total = sum(s.count for s in senses) or 1
    grouped: dict[str, dict[str, list]] = {"syn": {}, "ant": {}}
    by_sense: dict[int, dict[str, dict[str, float]]] = {s.sense_index: {"syn": {}, "ant": {}} for s in senses}
    for r in relations:
        grouped[r.kind].setdefault(r.source, []).append(
            {
                "related": r.related,
                "derived": r.derived,
                "is_span": r.is_span,
                "token_ids": list(r.related_token_ids),
                "provenance": r.provenance,
                "sense_ids": store.sense_ids(r.related),
                "head_sense": r.head_sense,
                "head_distance": r.head_distance,
            }
        )
        if r.head_sense in by_sense:  # the same word from several sources is listed once, nearest first
            words = by_sense[r.head_sense][r.kind]
            words[r.related] = min(words.get(r.related, 2.0), r.head_distance)
    unattached = {
        kind: sorted({r.related for r in relations if r.kind == kind and r.head_sense not in by_sense})
        for kind in ("syn", "ant")
    }
    return {
        "word": word.strip(),
        "store": str(store.path),
        "view": store.default_view,
        "tokens": [
            {"token_id": t.token_id, "text": t.text, "occurrences": t.occurrences, "n_senses": t.n_senses}
            for t in tokens
        ],
        "senses": [
            {
                "sense_id": s.sense_id,
                "sense_index": s.sense_index,
                "count": s.count,
                "share": round(s.count / total, 4),
                **{  # a sense's WordNet link and label, when it has them
                    name: getattr(s, name)
                    for name in ("synset", "gloss", "lemma", "label")
                    if getattr(s, name, None) is not None
                },
                "contexts": [
                    {
                        "doc_id": c.doc_id,
                        "char_start": c.char_start,
                        "char_end": c.char_end,
                        "snippet": c.snippet,
                        "mark_start": c.mark_start,
                        "mark_end": c.mark_end,
                        "distance": round(c.distance, 4),
                    }
                    for c in s.contexts
                ],
                **{
                    kind: [w for w, _ in sorted(by_sense[s.sense_index][kind].items(), key=lambda x: (x[1], x[0]))]
                    for kind in ("syn", "ant")
                },
            }
            for s in senses
        ],
        "relations": grouped,
        "unattached": unattached,
        "neighbors": [
            {
                "sense_id": n.sense.sense_id,
                "token_id": n.sense.token_id,
                "text": n.text,
                "sense_index": n.sense.sense_index,
                "distance": round(n.distance, 4),
            }
            for n in store.neighbors(word, k=k)
        ],
    }


def _marked(c: dict) -> str:
    s = c["snippet"]
    a, b = c["mark_start"], c["mark_end"]
    return escape(s[:a]) + "[bold yellow]" + escape(s[a:b]) + "[/]" + escape(s[b:])


def _sense_label(s: dict) -> str:
    """A sense's WordNet synset and gloss, or its label, as the first line of its table cell ('' when none)."""
    if s.get("synset"):  # a linked sense's label repeats its synset and gloss
        gloss = f": [dim]{escape(s['gloss'])}[/]" if s.get("gloss") else ""
        return f"[bold]{escape(s['synset'])}[/]{gloss}"
    return f"[bold]{escape(s['label'])}[/]" if s.get("label") else ""


def _word_list(words: list[str], limit: int = 6) -> str:
    shown = ", ".join(escape(w) for w in words[:limit])
    return (shown + f" [dim](+{len(words) - limit})[/]" if len(words) > limit else shown) or "-"


def render_query(result: dict) -> None:
    word = escape(result["word"])
    t = Table(title=f"tokens of {word!r}", title_justify="left")
    for col in ("token id", "text", "occurrences", "senses"):
        t.add_column(col)
    for tok in result["tokens"]:
        t.add_row(str(tok["token_id"]), escape(repr(tok["text"])), str(tok["occurrences"]), str(tok["n_senses"]))
    out.print(t)

    t = Table(
        title=f"{result['view']} senses of {word!r}, with the synonyms and antonyms nearest to each",
        title_justify="left",
        show_lines=True,
    )
    for col, kw in (
        ("#", {}),
        ("count", {"justify": "right"}),
        ("share", {"justify": "right"}),
        ("representative contexts", {"ratio": 3}),
        ("synonyms", {"ratio": 1}),
        ("antonyms", {"ratio": 1}),
    ):
        t.add_column(col, **kw)
    for s in result["senses"]:
        t.add_row(
            str(s["sense_index"]),
            str(s["count"]),
            f"{s['share']:.0%}",
            "\n".join([_sense_label(s)] * bool(_sense_label(s)) + [_marked(c) for c in s["contexts"]]) or "-",
            _word_list(s["syn"]),
            _word_list(s["ant"]),
        )
    out.print(t if result["senses"] else f"[dim]{word!r} has no senses in this store[/]")

    for kind, label in (("syn", "synonyms"), ("ant", "antonyms")):
        sources = {src: len(rows) for src, rows in result["relations"][kind].items()}
        line = ", ".join(f"{escape(src)} {n}" for src, n in sources.items()) or "none"
        loose = result["unattached"][kind]
        if loose:
            line += f"; without senses to attach: {_word_list(loose, 12)}"
        out.print(f"[bold]{label}[/] by source: {line}")

    t = Table(title="nearest senses of other tokens (HNSW, in the store's similarity space)", title_justify="left")
    for col in ("token", "sense", "distance"):
        t.add_column(col)
    for n in result["neighbors"]:
        t.add_row(escape(repr(n["text"])), str(n["sense_index"]), f"{n['distance']:.4f}")
    out.print(t)


@app.command()
def query(
    word: str = typer.Argument(..., help="The word to look up (tokenized with a leading space)."),
    store: Path = StoreOpt,
    k: int = typer.Option(10, "-k", min=1, max=1000, help="How many nearest senses to show."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document instead of tables."),
    ef: Optional[int] = typer.Option(None, "--ef", min=1, help="HNSW query beam (default: the store's)."),
    view: Optional[str] = ViewOpt,
) -> None:
    """Show a word's tokens, senses, synonyms/antonyms and nearest senses."""
    from ..store import open_store

    with open_store(store, ef=ef, view=view) as s:
        result = query_word(s, word, k=k)
    if as_json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
    else:
        render_query(result)


@app.command()
def info(
    store: Path = StoreOpt,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    verify: bool = typer.Option(
        False,
        "--verify",
        help="Recompute the content fingerprint (content_sha256) "
        "and check it against the one recorded when the store was written.",
    ),
) -> None:
    """Print a store's provenance (with its content fingerprint), counts and index parameters."""
    from ..store import open_store

    with open_store(store) as s:
        i = s.info()
        verified = s.verify() if verify else None  # StoreError (exit 2) when the content does not match
    if as_json:
        doc = {
            "path": i.path,
            "schema_version": i.schema_version,
            "provenance": i.provenance,
            "counts": i.counts,
            "index": i.index,
            "space": i.space,
            "views": i.views,
        }
        sys.stdout.write(json.dumps({**doc, "verified": verified} if verify else doc, default=str) + "\n")
        return
    for title, data in (
        ("provenance", {"schema_version": i.schema_version, **i.provenance}),
        ("counts", i.counts),
        ("HNSW index", i.index),
        ("similarity space", i.space),
    ):
        t = Table(title=f"{title} ({escape(i.path)})" if title == "provenance" else title, title_justify="left")
        t.add_column("key")
        t.add_column("value")
        for key, value in data.items():
            t.add_row(key, escape(json.dumps(value) if isinstance(value, (dict, list)) else str(value)))
        out.print(t)
    t = Table(title="views (each with its own senses, HNSW index and similarity space)", title_justify="left")
    for col in ("view", "layer", "senses", "index count", "space", "default"):
        t.add_column(col)
    for name, v in i.views.items():
        space = v["space"]["kind"] + (f" ({v['space']['components']} PCs)" if v["space"].get("components") else "")
        t.add_row(name, str(v["layer"]), str(v["senses"]), str(v["index"].get("count", 0)), space, "yes" * v["default"])
    out.print(t)
    fingerprint = i.provenance.get("content_sha256")
    if fingerprint:  # whole, on its own line: a table cell would cut it to the terminal's width
        out.print(
            f"content fingerprint (sha256 over the tables): {fingerprint}" + (" verified" if verified else ""),
            soft_wrap=True,
        )


@app.command()
def migrate(
    store: Path = typer.Argument(..., help="The schema-3 store bundle to convert in place."),
    dtype: str = typer.Option(
        "float32",
        "--store-dtype",
        help="Dtype of the stored vectors: float32 keeps them exact and the index files as they are; "
        "float16 halves them and rebuilds each view's index.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Convert a schema-3 store to schema 4 in place, without the teacher (atomic: a kill keeps the old store)."""
    from ..migrate import migrate as migrate_store

    result = migrate_store(store, dtype=dtype)
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
        return
    out.print(
        f"migrated {escape(str(store))} to schema 4: {result['senses']:,} senses, "
        f"{result['context_vectors']:,} context vectors, views {', '.join(result['views'])}, "
        f"{result['dtype']}, {result['seconds']:.1f} s"
    )


@app.command()
def export(
    store: Path = StoreOpt,
    fmt: str = typer.Option("parquet", "--format", help="Output format (parquet)."),
    output: Path = typer.Option(Path("export"), "--output", "-o", help="Directory for one file per table."),
    view: Optional[str] = ViewOpt,
) -> None:
    """Write every table of the store as Parquet files (senses, contexts and similarity_space: one view's rows)."""
    from ..store import open_store

    if fmt != "parquet":
        raise InputError(f"unknown export format {fmt!r}; use --format parquet")
    if output.exists() and not output.is_dir():
        raise InputError(f"--output {output} is not a directory; give a folder for the Parquet files")
    output.mkdir(parents=True, exist_ok=True)
    with open_store(store, view=view) as s:
        written = s.export_parquet(output)
    for path in written:
        out.print(f"wrote {path}")


@app.command("plot")
def plot_cli(
    word: str = typer.Argument(..., help="The word whose senses to draw."),
    store: Path = StoreOpt,
    output: Path = typer.Option(..., "--output", "-o", help="The PNG file to write (its folder must exist)."),
    relations: bool = typer.Option(False, "--relations", help="Also draw the senses of its synonyms and antonyms."),
    view: Optional[str] = ViewOpt,
) -> None:
    """Draw a word's senses and their context vectors (PCA of the store's similarity space) as a PNG."""
    from ..plot import plot_word
    from ..store import open_store

    with open_store(store, view=view) as s:
        r = plot_word(s, word, output, relations=relations)
    related = f", {r['synonyms']} synonyms, {r['antonyms']} antonyms" if relations else ""
    out.print(
        f"wrote {escape(r['path'])} ({r['width']}x{r['height']} px): {r['senses']} senses, "
        f"{r['contexts']} context vectors{related}",
        soft_wrap=True,
    )
    if r["note"]:
        out.print(f"[dim]note: {escape(r['note'])}[/]", soft_wrap=True)


@app.command("serve")
def serve_cli(
    store: Path = StoreOpt,
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to bind (loopback by default; 0.0.0.0 exposes it, with --allow-host)."
    ),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    ef: Optional[int] = typer.Option(None, "--ef", min=1, help="HNSW query beam (default: the store's)."),
    allow_host: Optional[list[str]] = typer.Option(
        None,
        "--allow-host",
        help="A host name clients use in their URLs (repeatable); the Host header of every request must be a "
        "loopback name, the bound address or one of these. Needed with a --host beyond loopback.",
    ),
    annotate: bool = typer.Option(
        False,
        "--annotate",
        help="Also load the store's teacher: an annotate box on the page and /api/annotate (which sense each word "
        "of a text has; see `sensekit annotate`).",
    ),
) -> None:
    """Browse a store in the web browser: a local, read-only web app and JSON API (sensekit/serve)."""
    try:
        from ..serve import serve, served_hosts
    except ImportError as exc:
        from ..errors import MissingDependency

        raise MissingDependency(f"sensekit serve needs {exc.name}: pip install 'sensekit[serve]'") from None
    served_hosts(host, allow_host or ())  # a --host beyond loopback without --allow-host: one line, before serving
    annotator = None
    if annotate:  # the teacher loads here, in the command layer: sensekit.serve never imports torch
        from ..annotate import Annotator

        quiet_libraries()
        annotator = Annotator.open(store).annotate
    err.print(
        f"serving {escape(str(store))} at http://{escape(host)}:{port}/ (read-only; Ctrl-C stops)", soft_wrap=True
    )
    serve(store, host=host, port=port, ef=ef, allow_hosts=allow_host or (), annotator=annotator)
