"""The representative contexts of the senses: snippets of the documents the chosen samples came from.

The reservoirs keep only (document ordinal, char start, char end) per sample. After clustering,
the documents of the chosen contexts come from the stream's in-memory cache, or from a second
pass over the corpus that reads only those (cheap: `docs(select)` skips the others' costly part).
"""

from __future__ import annotations

from typing import Callable, Iterable, Optional

import numpy as np

__all__ = ["SNIPPET_CHARS", "snippet", "fetch_documents", "context_columns"]

SNIPPET_CHARS = 80  # characters of context on each side of the key token

Documents = Callable[..., Iterable[tuple[str, str]]]  # docs(select) -> (doc_id, text), as harvest.BatchStream reads


def snippet(text: str, cs: int, ce: int) -> tuple[str, int, int, int, int]:
    """(snippet, mark_start, mark_end, char_start, char_end) with the key span trimmed of whitespace."""
    cs, ce = max(0, min(cs, len(text))), max(0, min(ce, len(text)))
    while cs < ce and text[cs].isspace():
        cs += 1
    while ce > cs and text[ce - 1].isspace():
        ce -= 1
    a, b = max(0, cs - SNIPPET_CHARS), min(len(text), ce + SNIPPET_CHARS)
    if a > 0:  # start and end on word boundaries
        sp = text.find(" ", a, cs)
        a = sp + 1 if sp >= 0 else a
    if b < len(text):
        sp = text.rfind(" ", ce, b)
        b = sp if sp >= 0 else b
    snip = text[a:b].replace("\n", " ").replace("\t", " ").replace("\r", " ")  # same length: marks stay valid
    return snip, cs - a, ce - a, cs, ce


def fetch_documents(
    ordinals: np.ndarray,
    cached: dict[int, tuple[str, str]],
    docs: Documents,
    report: Optional[Callable[[int, int], None]] = None,
) -> dict[int, tuple[str, str]]:
    """{ordinal: (doc_id, text)} for the sorted, unique `ordinals`: from `cached`, the rest re-read from `docs`."""
    wanted_all = ordinals.tolist()
    texts = {o: cached[o] for o in wanted_all if o in cached}
    missing = [o for o in wanted_all if o not in texts]
    if missing:  # documents not kept in memory (other ranks', or past the cache): read them again
        wanted = set(missing)
        last = missing[-1]
        for ordinal, (doc_id, text) in enumerate(docs(wanted.__contains__)):
            if ordinal in wanted:
                texts[ordinal] = (doc_id, text)
                if report:
                    report(len(texts), len(wanted_all))
            if ordinal >= last:
                break
    return texts


def context_columns(origins: np.ndarray, texts: dict[int, tuple[str, str]]) -> dict[str, list | np.ndarray]:
    """origins [C, 3] (doc ordinal, char start, char end) -> the contexts table's text columns, one row each."""
    rows: dict[str, list] = {k: [] for k in ("doc_id", "char_start", "char_end", "snippet", "mark_start", "mark_end")}
    for o, cs, ce in origins.tolist():  # one row per stored context (k x E per token), not per corpus position
        doc_id, text = texts.get(o, (str(o), ""))
        snip, ms, me, cs2, ce2 = snippet(text, cs, ce)
        for column, value in zip(rows, (doc_id, cs2, ce2, snip, ms, me)):
            rows[column].append(value)
    return {
        "doc_id": rows["doc_id"],
        "char_start": np.asarray(rows["char_start"], np.int32),
        "char_end": np.asarray(rows["char_end"], np.int32),
        "snippet": rows["snippet"],
        "mark_start": np.asarray(rows["mark_start"], np.int32),
        "mark_end": np.asarray(rows["mark_end"], np.int32),
    }
