"""The JSON documents of `sensekit serve`, built from an open SenseStore: plain dicts, no HTTP.

Each function mirrors a call of the Python API (`search` ~ `similar_words`, `word` ~ `tokens` +
`senses` + `relations` + `neighbors`, `sense` ~ `sense(id)`, `plot` ~ the points of `sensekit plot`,
`info` ~ `info()`), so scripts and the page read the same thing. numpy only: no torch, no matplotlib.
"""

from __future__ import annotations

import bisect
from typing import Any

import numpy as np

from ..errors import InputError, NotFound
from ..plot import pca_2d, short_snippet
from ..records import Context, Sense

__all__ = [
    "MAX_WORD",
    "UnknownWord",
    "WordList",
    "check_word",
    "colours",
    "info_doc",
    "neighbors_doc",
    "plot_doc",
    "search_doc",
    "sense_doc",
    "views_of",
    "word_doc",
]

MAX_WORD = 200  # characters; longer input is refused before it reaches the tokenizer
MAX_PLOT_CONTEXTS = 400  # context vectors drawn per word: enough to see each sense's spread

# matplotlib's tab10 and tab20, the colours `sensekit plot` gives senses (tab10 up to 10 senses).
TAB10 = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
]  # fmt: skip
TAB20 = [
    "#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896", "#9467bd", "#c5b0d5",
    "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#7f7f7f", "#c7c7c7", "#bcbd22", "#dbdb8d", "#17becf", "#9edae5",
]  # fmt: skip


class UnknownWord(NotFound):
    """A word the store does not hold; `close` are close spellings it does hold."""

    def __init__(self, message: str, close: list[str]) -> None:
        super().__init__(message)
        self.close = close


def colours(n: int) -> list[str]:
    """The sense colours of `sensekit plot` (sensekit/plot.py `_palette`) as hex strings."""
    table = TAB10 if n <= 10 else TAB20
    return [table[i % len(table)] for i in range(n)]


def check_word(word: str | None) -> str:
    """A stripped, non-empty word of at most MAX_WORD characters, or InputError."""
    word = (word or "").strip()
    if not word:
        raise InputError("the word is empty; give a non-empty word (?w=bank)")
    if len(word) > MAX_WORD:
        raise InputError(f"the word has {len(word):,} characters; at most {MAX_WORD} are looked up")
    if any(ord(c) < 32 for c in word):
        raise InputError("the word contains control characters")
    return word


def views_of(store) -> tuple[list[str], str]:
    """The names of the store's views (sensekit/view.py) and its default view."""
    return list(store.views), store.default_view


class WordList:
    """Sorted lower-cased words of a store (tokens with senses, words with relations) for type-ahead."""

    def __init__(self, store) -> None:
        words = {t.strip() for t in store._token_text.values() if t.strip()}
        words.update(w for w, _, _ in store.words_table())
        self.words = sorted(words, key=lambda w: (w.lower(), w))
        self.keys = [w.lower() for w in self.words]

    def prefixed(self, prefix: str, limit: int) -> list[str]:
        p = prefix.lower()
        i = bisect.bisect_left(self.keys, p)
        out = []
        while i < len(self.keys) and len(out) < limit and self.keys[i].startswith(p):
            out.append(self.words[i])
            i += 1
        return out


def search_doc(store, words: WordList, q: str, limit: int = 10) -> dict[str, Any]:
    """Words starting with `q`, then close spellings (the suggestions `sensekit query` makes)."""
    q = check_word(q)
    found = words.prefixed(q, limit)
    close = [w for w in store.similar_words(q, limit=limit) if w not in found] if len(found) < limit else []
    return {"q": q, "words": found, "close": close[: limit - len(found)]}


def _context(c: Context) -> dict[str, Any]:
    return {
        "rank": c.rank,
        "doc_id": c.doc_id,
        "snippet": c.snippet,
        "mark_start": c.mark_start,
        "mark_end": c.mark_end,
        "distance": round(float(c.distance), 4),
    }


def _sense(s: Sense, total: int | None = None) -> dict[str, Any]:
    doc = {
        "sense_id": s.sense_id,
        "token_id": s.token_id,
        "span_id": s.span_id,
        "sense_index": s.sense_index,
        "count": s.count,
        "text": s.text,
        "view": s.view,
        "synset": s.synset,  # WordNet synset name of a linked sense, else None
        "gloss": s.gloss,
        "lemma": s.lemma,
        "label": s.label,  # "synset: gloss", or an induced sense's distinctive words
        "contexts": [_context(c) for c in s.contexts],
    }
    if total is not None:
        doc["share"] = round(s.count / total, 4)
    return doc


def word_doc(store, word: str, k: int = 10, view: str | None = None) -> dict[str, Any]:
    """A word's tokens, senses (contexts, synonyms and antonyms attached to each), relations by source,
    and nearest senses of other tokens. NotFound (with close spellings) for a word the store does not hold."""
    word = check_word(word)
    tokens = store.tokens(word, view=view)
    senses = store.senses(word, view=view)
    relations = store.relations(word, view=view)
    if not senses and not relations:
        close = [w for w in store.similar_words(word) if w != word]
        hint = f"; did you mean: {', '.join(close)}" if close else ""
        raise UnknownWord(f"unknown word {word[:60]!r}: no senses or relations in this store{hint}", close)
    total = sum(s.count for s in senses) or 1
    attached: dict[int, dict[str, dict[str, float]]] = {s.sense_index: {"syn": {}, "ant": {}} for s in senses}
    by_source: dict[str, dict[str, list]] = {"syn": {}, "ant": {}}
    for r in relations:
        by_source[r.kind].setdefault(r.source, []).append(
            {"related": r.related, "derived": r.derived, "head_sense": r.head_sense, "head_distance": r.head_distance}
        )
        if r.head_sense in attached:  # a word from several sources is listed once, nearest first
            near = attached[r.head_sense][r.kind]
            near[r.related] = min(near.get(r.related, 2.0), r.head_distance if r.head_distance is not None else 2.0)
    unattached = {
        kind: sorted({r.related for r in relations if r.kind == kind and r.head_sense not in attached})
        for kind in ("syn", "ant")
    }
    palette = colours(len(senses))
    out_senses = []
    for i, s in enumerate(senses):
        doc = _sense(s, total)
        doc["colour"] = palette[i]
        for kind in ("syn", "ant"):
            doc[kind] = [w for w, _ in sorted(attached[s.sense_index][kind].items(), key=lambda x: (x[1], x[0]))]
        out_senses.append(doc)
    return {
        "word": word,
        "tokens": [
            {"token_id": t.token_id, "text": t.text, "occurrences": t.occurrences, "n_senses": t.n_senses}
            for t in tokens
        ],
        "senses": out_senses,
        "relations": by_source,
        "unattached": unattached,
        "neighbors": _neighbors(store, word, k, view),
    }


def _neighbors(store, word: str, k: int, view: str | None) -> list[dict[str, Any]]:
    return [
        {
            "sense_id": n.sense.sense_id,
            "token_id": n.sense.token_id,
            "text": n.text,
            "word": n.text.strip(),
            "sense_index": n.sense.sense_index,
            "distance": round(float(n.distance), 4),
        }
        for n in store.neighbors(word, k=k, view=view)
    ]


def neighbors_doc(store, word: str, k: int = 10, view: str | None = None) -> dict[str, Any]:
    """The nearest senses of other tokens to the word's senses (HNSW, in the view's similarity space)."""
    word = check_word(word)
    return {"word": word, "neighbors": _neighbors(store, word, k, view)}


def sense_doc(store, sense_id: int) -> dict[str, Any]:
    """One sense with its contexts; NotFound for an unknown id."""
    try:
        return _sense(store.sense(int(sense_id)))
    except NotFound:  # the store's message names its folder: the page does not
        raise NotFound(f"no sense with id {int(sense_id)} in this store") from None


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def plot_doc(store, word: str, view: str | None = None) -> dict[str, Any]:
    """The points of `sensekit plot` for a word: its senses in `view` and their kept context vectors, in the
    view's similarity space, L2-normalised, projected on a PCA fitted on the drawn points (numpy only)."""
    word = check_word(word)
    senses = store.senses(word, view=view)
    space = store.view(view).space
    if not senses:
        raise NotFound(f"unknown word {word[:60]!r}: it has no senses to plot in this store")
    vectors = store.context_vectors([s.sense_id for s in senses])  # sense_id -> [E, dim]
    per_sense = max(1, MAX_PLOT_CONTEXTS // len(senses))
    owner, ctx_rows, snippets = [], [], []
    for i, s in enumerate(senses):
        v = vectors.get(s.sense_id)
        if v is None:
            continue
        v = v[:per_sense]
        ctx_rows.append(v)
        owner += [i] * len(v)
        # Kept vectors are most central first, as are the contexts: the first ones carry a snippet.
        snippets += [short_snippet(s.contexts[j], 60) if j < len(s.contexts) else None for j in range(len(v))]
    raw = np.concatenate([np.stack([s.embedding for s in senses])] + ctx_rows)
    x = _unit(space.apply(raw))  # [n, dim] in the view's similarity space
    mean, basis, ratio = pca_2d(x)
    xy = (x - mean) @ basis.T  # [n, 2]
    n_s = len(senses)
    palette = colours(n_s)
    return {
        "word": word,
        "space": space.transform,
        "explained_variance": [round(float(v), 4) for v in ratio],
        "senses": [
            {
                "sense_id": s.sense_id,
                "sense_index": s.sense_index,
                "count": s.count,
                "colour": palette[i],
                "x": round(float(xy[i, 0]), 5),
                "y": round(float(xy[i, 1]), 5),
                "snippet": short_snippet(s.contexts[0], 60) if s.contexts else None,
            }
            for i, s in enumerate(senses)
        ],
        "contexts": [
            {
                "sense": int(o),
                "x": round(float(xy[n_s + j, 0]), 5),
                "y": round(float(xy[n_s + j, 1]), 5),
                "snippet": snippets[j],
            }
            for j, o in enumerate(owner)
        ],
    }


def info_doc(store, view: str | None = None) -> dict[str, Any]:
    """The store's provenance, counts, views (each: senses, layer, index, similarity space) and the index and
    space of `view`; the store's folder name only, never its path."""
    i = store.info()
    views, default = views_of(store)
    per_view = dict(getattr(i, "views", None) or {})
    shown = view or default
    return {
        "name": store.path.name,
        "schema_version": i.schema_version,
        "provenance": i.provenance,
        "counts": i.counts,
        "index": dict(per_view.get(shown, {}).get("index", i.index)),
        "space": dict(per_view.get(shown, {}).get("space", i.space)),
        "views": views,
        "default_view": default,
        "view_details": per_view,
    }
