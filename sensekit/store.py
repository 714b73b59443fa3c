"""SenseStore: the read side of a store bundle. Never imports torch or transformers.

A bundle is a directory holding `store.duckdb`, the hnswlib index `senses.hnsw` and the
teacher's `tokenizer.json`. Words map to token ids with the `tokenizers` package, the way
the build tokenized them: a leading space and no special tokens.

An open store keeps answering from the version it opened when the bundle is replaced (a rebuild,
`relations add`): DuckDB reads through its open file and the index is in memory. The one file read
later, the tokenizer, is read only if the bundle at the path is still that version; otherwise
StoreError says the store changed and must be reopened (`changed()` tells without raising).

Views (sensekit/view.py): a store holds one or more views of the same samples, each recorded once in
`meta.views` (name, layer, key mode, index file, similarity space, dim, dtype), each with its own senses,
HNSW index and similarity space. `store.views` maps names to `StoreView` objects and `store.view(name)`
returns one; `open_store(path, view=...)` sets the view every getter answers from by default
(`view.default_view` picks it when none is given); each getter also takes `view=`.
A v3 store is refused with the command that converts it (`sensekit migrate`, sensekit/migrate.py).

Reading one word: its rows are found in memory, its vectors come from `embeddings.npy` (sensekit/sense_array.py,
memory-mapped at open, the store of record for vectors) and its contexts from one DuckDB query over one 2,048-row group. One store may be
shared by threads: each thread other than the opening one queries through its own cursor (`_db()`).
"""

from __future__ import annotations

import copy
import json
import os
import threading
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import _sql
from .errors import InputError, NotFound, SchemaMismatch, StoreError
from .fs import DB_FILE, TOKENIZER_FILE
from .index import load_index
from .records import Context, ContextLoader, Neighbor, Relation, Sense, SenseContexts, StoreInfo, TokenInfo
from .sense_array import CONTEXT_VECTORS_KEY, EMBEDDINGS_KEY, file_sha256, open_vector_file
from .space import SimilaritySpace
from .view import LEXICAL, StoreView, ViewRecord, default_view

SCHEMA_VERSION = 4
_VIEW_STRIDE = 1 << 40  # (view, owner) sort keys: view * stride + owner
WRITING_KEY = "writing"  # meta key a StoreWriter sets while it writes a bundle and removes when it commits
_NO_LABELS = (None, None, None, None)  # a sense's synset, gloss, lemma, label when it has none
SENSE_CACHE_BYTES = 32 << 20  # embeddings kept by the Sense LRU of an open store (its version never changes)

__all__ = ["SenseStore", "open_store", "SCHEMA_VERSION", "WRITING_KEY", "view_records", "bundle_fingerprint"]


def view_records(meta: dict[str, Any]) -> list[ViewRecord]:
    """The views a store records, in the order they were first written."""
    return [ViewRecord.from_json(v) for v in meta.get("views") or []]


def bundle_fingerprint(tables_sha256: str, vector_records: dict[str, dict]) -> str:
    """The content fingerprint of a bundle: its tables' (sensekit/fingerprint.py) and its vector files' sha256."""
    import hashlib

    parts = [tables_sha256] + [f"{k}:{vector_records[k]['sha256']}" for k in sorted(vector_records)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def read_meta(con, path: Path) -> dict[str, Any]:
    """All of `meta`, decoded; refuses another schema version."""
    import duckdb

    try:
        rows = con.execute(_sql.ALL_META).fetchall()
    except duckdb.Error:
        raise StoreError(f"{path} is not a sensekit store (no meta table); rebuild it with `sensekit build`") from None
    meta = {k: json.loads(v) for k, v in rows}
    found = meta.get("schema_version")
    if found == 2:  # the last version without views: refused, never opened for writing either
        raise SchemaMismatch(
            f"store {path} has schema version 2 (no lexical view), this sensekit reads version {SCHEMA_VERSION}; "
            "rebuild the store with this version's `sensekit build` (--lexical-layer none gives the same "
            "loss-only senses), or install the sensekit that wrote it"
        )
    if found == 3:  # the same content with each vector in DuckDB and in embeddings.npy: converted, not rebuilt
        raise SchemaMismatch(
            f"store {path} has schema version 3, this sensekit reads version {SCHEMA_VERSION}; "
            f"convert it in place with `sensekit migrate {path}` (no teacher needed)"
        )
    if found != SCHEMA_VERSION:
        raise SchemaMismatch(
            f"store {path} has schema version {found}, this sensekit reads version {SCHEMA_VERSION}; "
            "rebuild the store with this version's `sensekit build` (or install the sensekit that wrote it)"
        )
    if meta.get(WRITING_KEY):
        raise StoreError(
            f"{path} is an incomplete store: its writer stopped before committing it (killed, or out "
            "of space); open the store it was meant to replace, or run the build again (--resume)"
        )
    return meta


def read_space(con, dim: int, record: dict[str, Any], view: str) -> SimilaritySpace:
    """A view's similarity space (sensekit/space.py), its transform stored as `record["kind"]`; identity when none
    was recorded."""
    rows = con.execute(_sql.SPACE_ROWS, {"view": view}).fetchall()
    if not rows or record.get("kind", "identity") == "identity":
        return SimilaritySpace.identity(dim)
    parts: dict[str, list] = {}
    for part, _, vector in rows:  # ordered by part, idx
        parts.setdefault(part, []).append(vector)
    comps = np.asarray(parts.get("component", []), np.float32).reshape(-1, dim)
    return SimilaritySpace(
        record["kind"], np.asarray(parts["mean"][0], np.float32), np.asarray(parts["scale"][0], np.float32), comps
    )


def _file_id(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def open_store(
    path: str | os.PathLike, read_only: bool = True, ef: int | None = None, view: str | None = None
) -> "SenseStore":
    """Open a store bundle. Raises StoreError (missing/corrupt), SchemaMismatch, IndexMismatch, and InputError
    for a `view` the store does not hold. `view`: the default view of every getter (None: lexical if present)."""
    return SenseStore(path, read_only=read_only, ef=ef, view=view)


class SenseStore:
    """Query a sense store. Plural getters return lists (maybe empty); singular ones raise NotFound."""

    def __init__(
        self, path: str | os.PathLike, read_only: bool = True, ef: int | None = None, view: str | None = None
    ) -> None:
        self.path = Path(path)
        self._tokenizer = None
        self._borrowed = False
        # Sense records by their row positions: an open store answers from the version it opened, so its
        # answers never change and this LRU is keyed by that version. Bounded by embedding bytes.
        self._sense_cache: OrderedDict[bytes, tuple[Sense, ...]] = OrderedDict()
        self._sense_cache_lock = threading.Lock()
        self._sense_cache_rows = 0
        # Loaders of contexts not read yet, of records a caller may still hold: close() reads them first, so
        # that contexts stay readable after the store closes.
        self._unread_contexts: weakref.WeakSet[ContextLoader] = weakref.WeakSet()
        # One DuckDB connection must not be used by two threads at once: the opening thread uses `con`,
        # any other thread its own cursor of it (`_db()`), so that `serve` runs queries side by side.
        self._owner_thread = threading.get_ident()
        self._local = threading.local()
        self._cursors: list = []
        self._cursors_lock = threading.Lock()
        for _ in range(3):  # a bundle replaced while it opens (a rebuild, `relations add`): open the new one
            if self._open(read_only, ef):
                try:
                    self.default_view = self._view(view, default=default_view(list(self.views)))
                except InputError:
                    self.con.close()
                    raise
                return
        raise StoreError(f"store {self.path} kept changing while it was being opened; try again")

    def _open(self, read_only: bool, ef: int | None) -> bool:
        """Connect DuckDB and load the index; False (closed again) when the bundle was replaced meanwhile,
        so that DuckDB and the index file always come from the same version."""
        import duckdb

        db = self.path / DB_FILE
        if not db.is_file():
            moved_aside = [p for p in self.path.parent.glob(f".{self.path.name}.old-*") if (p / DB_FILE).is_file()]
            if moved_aside and not self.path.exists():  # killed between the two renames of a swap (no renameat2)
                raise StoreError(
                    f"no sensekit store at {self.path}: a replacement was interrupted between its two renames; "
                    f"the previous store is complete at {moved_aside[0]}: move it back with "
                    f"`mv {moved_aside[0]} {self.path}`"
                )
            hint = " (an interrupted build left it half-written; run the build again)" if self._leftover() else ""
            raise StoreError(f"no sensekit store at {self.path}{hint}; build one with `sensekit build` or pass --store")
        try:
            self._version = _file_id(db)  # which bundle this is: a replaced one has a new store.duckdb
            # A DuckDB instance of its own, the file attached to it: `duckdb.connect(path)` would hand back
            # the instance cached for the path while an older SenseStore of it is open, and so the replaced
            # file. One thread per query: the store's queries read one row group, where a second thread
            # costs more than it saves, and `serve` runs requests side by side instead.
            self.con = duckdb.connect(config={"threads": 1})
            self.con.execute(_sql.ATTACH_READ_ONLY if read_only else _sql.ATTACH_STORE_FILE, {"path": str(db)})
            self.con.execute(_sql.USE_STORE)
        except (duckdb.Error, OSError) as exc:
            raise StoreError(
                f"cannot open {db}: {str(exc).splitlines()[0]}; the store may be corrupt, rebuild it"
            ) from None
        try:
            self.meta = read_meta(self.con, self.path)
            self.dim = int(self.meta["dim"])
            records = view_records(self.meta)
            self._view_names = [r.name for r in records]  # the sense table's view codes index this list
            self._load_sense_table()
            # [n senses, dim] in sense_id order, memory-mapped: the store of record for sense vectors
            self._embeddings = open_vector_file(self.path, self.meta[EMBEDDINGS_KEY], self.dim, self._sense_ids)
            record = self.meta.get(CONTEXT_VECTORS_KEY)  # [n kept, dim]: the sampled vectors of contexts
            self._context_vectors = open_vector_file(self.path, record, self.dim) if record else None
            self.views: dict[str, StoreView] = {}
            for code, r in enumerate(records):  # each view: its space (every similarity, its index built in it)
                space = read_space(self.con, self.dim, r.space, r.name)
                self.views[r.name] = view = StoreView(self, r, code, space, None)
                if r.index.get("count"):
                    ids = self._indexed_ids(r.name)
                    view.index = load_index(self.path / r.index_file, r.index, ids, ef, probe=self._index_probe(view))
        except StoreError:
            self.con.close()
            if self.changed():
                return False
            raise
        if self.changed():
            self.con.close()
            return False
        return True

    def _index_probe(self, view: StoreView, n: int = 4) -> tuple[np.ndarray, np.ndarray]:
        """A few indexed sense ids and their vectors in the index's space [n, dim]: load_index compares them
        with the index file's own, so an index copied from another store (or view) is refused."""
        positions = self._indexed_positions(view.code)[:n]
        return self._sense_ids[positions], view.space.apply(np.asarray(self._embeddings[positions], np.float32))

    # -- views ----------------------------------------------------------------------------
    def view(self, name: str | None = None) -> StoreView:
        """The view `name` (None: the store's default view); InputError for a view the store does not hold."""
        return self.views[self._view(name)]

    def in_view(self, view: str) -> "SenseStore":
        """This open store answering from `view` by default: the same connection, tables, indexes and caches, no
        second open (`eval store --view all`). Close the store it came from; closing this one does nothing."""
        other = copy.copy(self)
        other.default_view = self._view(view)
        other._borrowed = True
        return other

    def _view(self, view: str | None, default: str | None = None) -> str:
        """The name of `view`, or of the store's default view, checked against the views it holds."""
        v = view or default or self.default_view
        if v not in self.views:
            raise InputError(
                f"store {self.path} has no {v} view (it holds: {', '.join(self.views)}); use one of those, or "
                f"rebuild the store with that view (the {LEXICAL.name} view: `sensekit build --lexical-layer auto`)"
            )
        return v

    @property
    def spaces(self) -> dict[str, SimilaritySpace]:
        """Each view's similarity space, by view name."""
        return {name: v.space for name, v in self.views.items()}

    @property
    def indexes(self) -> dict[str, Any]:
        """Each view's HNSW index (None where it holds no token senses), by view name."""
        return {name: v.index for name, v in self.views.items()}

    @property
    def space(self) -> SimilaritySpace:
        """The default view's similarity space."""
        return self.views[self.default_view].space

    @property
    def index(self):
        """The default view's HNSW index (None when it holds no token senses)."""
        return self.views[self.default_view].index

    def changed(self) -> bool:
        """Whether the bundle at `self.path` is no longer the one this store opened (rebuilt, relations added)."""
        try:
            return _file_id(self.path / DB_FILE) != self._version
        except OSError:
            return True

    def verify(self) -> str:
        """Recompute the content fingerprint and compare it with the one recorded at write time, and hash
        embeddings.npy against its record; returns the fingerprint. Raises StoreError when either differs,
        or when the store records no fingerprint."""
        from .fingerprint import FINGERPRINT_KEY, content_fingerprint

        recorded = self.meta.get(FINGERPRINT_KEY)
        if not recorded:
            raise StoreError(
                f"store {self.path} records no content fingerprint (written before sensekit kept one); "
                "rebuild it, or run `sensekit relations add` on it, to record one"
            )
        records = {k: self.meta[k] for k in (EMBEDDINGS_KEY, CONTEXT_VECTORS_KEY) if k in self.meta}
        for record in records.values():
            if file_sha256(self.path / record["file"]) != record["sha256"]:
                raise StoreError(
                    f"{self.path / record['file']} does not match its recorded sha256: it was changed outside "
                    "sensekit; rebuild the store, or run `sensekit relations add` on it to rewrite the file"
                )
        found = bundle_fingerprint(content_fingerprint(self._db()), records)
        if found != recorded:
            raise StoreError(
                f"store {self.path} content does not match its fingerprint (recorded {recorded[:16]}, "
                f"content {found[:16]}): it was changed outside sensekit; rebuild it"
            )
        return found

    def _leftover(self) -> bool:
        return any(p.name.startswith(f".{self.path.name}.tmp-") for p in self.path.parent.glob(f".{self.path.name}.*"))

    def _load_sense_table(self) -> None:
        """Small per-sense and per-token columns in memory: a word's rows, token counts and neighbours'
        records need no query."""
        cols = self.con.execute(_sql.SENSE_COLUMNS).fetchnumpy()
        self._sense_ids = np.asarray(cols["sense_id"], np.int64)
        view = np.asarray(cols["view"], object)
        self._sense_view = np.full(len(view), -1, np.int64)  # [n] index into self._view_names
        for code, name in enumerate(self._view_names):
            self._sense_view[view == name] = code
        if (self._sense_view < 0).any():
            raise StoreError(f"store {self.path} has senses of a view its meta does not record; rebuild it")
        self._sense_token = np.asarray(np.ma.filled(cols["token_id"], -1), np.int64)
        self._sense_span = np.asarray(np.ma.filled(cols["span_id"], -1), np.int64)
        self._sense_index = np.asarray(cols["sense_index"], np.int64)
        self._sense_count = np.asarray(cols["count"], np.int64)
        # (view, owner) -> positions: a stable sort keeps each owner's senses in sense_index order.
        token_key = self._sense_view * _VIEW_STRIDE + self._sense_token
        span_key = self._sense_view * _VIEW_STRIDE + self._sense_span
        self._by_token = np.lexsort((self._sense_index, token_key))
        self._by_span = np.lexsort((self._sense_index, span_key))
        self._token_sorted = token_key[self._by_token]
        self._span_sorted = span_key[self._by_span]
        token_rows = self.con.execute(_sql.TOKEN_ROWS).fetchall()
        self._token_text = {t: text for t, text, _ in token_rows}
        self._token_occurrences = {t: n for t, _, n in token_rows}
        self._span_text = dict(self.con.execute(_sql.SPAN_TEXTS).fetchall())
        self._span_words = {w: (list(t), sid) for w, t, sid in self.con.execute(_sql.SPAN_WORDS).fetchall()}
        # sense_id -> (synset, gloss, lemma, label), for the labelled senses only
        self._labels = {int(r[0]): tuple(r[1:]) for r in self.con.execute(_sql.SENSE_LABELS).fetchall()}

    def _positions_of(self, owner: int, span: bool, view: str) -> np.ndarray:
        sort_keys, order = (self._span_sorted, self._by_span) if span else (self._token_sorted, self._by_token)
        sort_key = self.views[view].code * _VIEW_STRIDE + owner
        lo, hi = np.searchsorted(sort_keys, [sort_key, sort_key + 1])
        return order[lo:hi]

    def _indexed_positions(self, code: int) -> np.ndarray:
        """Positions of a view's token senses (what its index holds), in sense_id order."""
        return np.flatnonzero((self._sense_span < 0) & (self._sense_view == code))

    def _indexed_ids(self, view: str) -> np.ndarray:
        return self._sense_ids[self._indexed_positions(self.views[view].code)]

    # -- tokenization -------------------------------------------------------------------
    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            path = self.path / TOKENIZER_FILE
            if self.changed():  # the file at the path now belongs to another version of the store
                raise StoreError(
                    f"store {self.path} changed since it was opened (rebuilt, or relations added); reopen it"
                )
            if not path.is_file():
                raise StoreError(f"store is incomplete: {path} is missing; rebuild the store")
            self._tokenizer = Tokenizer.from_file(str(path))
        return self._tokenizer

    def token_ids(self, word: str) -> list[int]:
        """The teacher's token ids for `word` with a leading space and no special tokens."""
        if not isinstance(word, str) or not word.strip():
            raise InputError("the word is empty; give a non-empty word")
        return list(self.tokenizer.encode(" " + word.strip(), add_special_tokens=False).ids)

    # -- the query surface ----------------------------------------------------------------
    def info(self) -> StoreInfo:
        counts = dict(zip(_sql.COUNT_NAMES, self._db().execute(_sql.TABLE_COUNTS).fetchall()[0]))
        for i, v in enumerate(self.views.values()):  # token senses per view: `senses` for the first view
            counts["senses" if i == 0 else f"{v.name}_senses"] = int(len(self._indexed_positions(v.code)))
        skip = ("schema_version", "views", EMBEDDINGS_KEY, CONTEXT_VECTORS_KEY)
        provenance = {k: v for k, v in self.meta.items() if k not in skip}
        default = self.view()
        return StoreInfo(
            str(self.path),
            int(self.meta["schema_version"]),
            provenance,
            counts,
            dict(default.record.index),
            default.space.describe(),
            {name: v.describe() for name, v in self.views.items()},
        )

    def tokens(self, word: str, view: str | None = None) -> list[TokenInfo]:
        """The word's tokens, in order; tokens never seen as keys have occurrences 0. n_senses: in `view`."""
        v = self._view(view)
        return [  # from the in-memory token rows and sense columns: no query
            TokenInfo(
                i, self._token_text[i], self._token_occurrences[i], len(self._positions_of(i, span=False, view=v))
            )
            if i in self._token_text
            else TokenInfo(i, self.tokenizer.decode([i], skip_special_tokens=False), 0, 0)
            for i in self.token_ids(word)
        ]

    def senses(self, word: str, view: str | None = None) -> list[Sense]:
        """A single-token word's senses, or a multi-token word's span cloud, in `view`; [] when there are none.
        Their contexts are read on first use, by one DuckDB query for all of them."""
        return self._senses_at(self._positions_of_word(word, self._view(view)))

    def sense_ids(self, word: str, view: str | None = None) -> list[int]:
        """The ids of `senses(word, view=view)`, from memory (no DuckDB query)."""
        return self._sense_ids[self._positions_of_word(word, self._view(view))].tolist()

    def _positions_of_word(self, word: str, view: str) -> np.ndarray:
        span = self._span_words.get(word.strip())
        if span is not None:
            return self._positions_of(span[1], span=True, view=view)
        ids = self.token_ids(word)
        return self._positions_of(ids[0], span=False, view=view) if len(ids) == 1 else np.zeros(0, np.int64)

    def senses_of_token(self, token_id: int, view: str | None = None) -> list[Sense]:
        return self._senses_at(self._positions_of(int(token_id), span=False, view=self._view(view)))

    def sense(self, sense_id: int) -> Sense:
        pos = int(np.searchsorted(self._sense_ids, sense_id))
        if pos >= len(self._sense_ids) or self._sense_ids[pos] != sense_id:
            raise NotFound(f"no sense with id {sense_id} in {self.path}")
        return self._senses_at(np.array([pos]))[0]

    def _senses_at(self, positions: np.ndarray) -> list[Sense]:
        """Sense records for rows at `positions` of the in-memory columns, from the LRU, else from the memory
        map (their contexts wait for first use). Records are frozen with read-only vectors, so cached ones
        are shared safely."""
        if len(positions) == 0:
            return []
        cache_key = np.asarray(positions, np.int64).tobytes()
        with self._sense_cache_lock:
            hit = self._sense_cache.get(cache_key)
            if hit is not None:
                self._sense_cache.move_to_end(cache_key)
                return list(hit)
        out = self._read_senses(positions)
        limit = max(1, SENSE_CACHE_BYTES // (4 * self.dim))  # senses the budget holds
        with self._sense_cache_lock:
            if cache_key not in self._sense_cache:
                self._sense_cache[cache_key] = tuple(out)
                self._sense_cache_rows += len(out)
            while self._sense_cache_rows > limit and len(self._sense_cache) > 1:
                self._sense_cache_rows -= len(self._sense_cache.popitem(last=False)[1])
        return out

    def _read_senses(self, positions: np.ndarray) -> list[Sense]:
        ids = self._sense_ids[positions]
        embeddings = np.asarray(self._embeddings[positions], np.float32)  # [n, dim], in the order of `positions`
        embeddings.flags.writeable = False  # shared by the cached records
        loader = ContextLoader(lambda: self._contexts_between(int(ids.min()), int(ids.max())))
        self._unread_contexts.add(loader)
        out = []
        for row, (pos, sid) in enumerate(zip(positions.tolist(), ids.tolist())):
            tok, span = int(self._sense_token[pos]), int(self._sense_span[pos])
            out.append(
                Sense(
                    sid,
                    tok if tok >= 0 else None,
                    span if span >= 0 else None,
                    int(self._sense_index[pos]),
                    int(self._sense_count[pos]),
                    self._token_text.get(tok, "") if tok >= 0 else self._span_text.get(span, ""),
                    embeddings[row],
                    SenseContexts(loader, sid),
                    self._view_names[int(self._sense_view[pos])],
                    *self._labels.get(sid, _NO_LABELS),
                )
            )
        return out

    def _contexts_between(self, lo: int, hi: int) -> dict[int, tuple[Context, ...]]:
        """The contexts of sense ids lo..hi, by sense: one DuckDB query over a sense_id range (rows are
        stored in id order, so zone maps read one row group)."""
        if self._embeddings is None:
            raise StoreError(f"store {self.path} is closed: read a sense's contexts before closing the store")
        by_sense: dict[int, list[Context]] = {}
        for c in sorted(self._db().execute(_sql.CONTEXTS_IN_RANGE, {"lo": lo, "hi": hi}).fetchall()):
            by_sense.setdefault(c[0], []).append(Context(*c[1:]))
        return {sid: tuple(cs) for sid, cs in by_sense.items()}

    def context_vectors(self, sense_ids: Sequence[int]) -> dict[int, np.ndarray]:
        """The raw sampled vectors kept with the senses' contexts: sense_id -> [n, dim] float32, most
        central first. Senses without kept vectors (NULL) are left out."""
        ids = sorted({int(i) for i in sense_ids})
        if not ids or self._context_vectors is None:
            return {}
        got = self._db().execute(_sql.CONTEXT_VECTORS, {"lo": ids[0], "hi": ids[-1], "ids": ids}).fetchnumpy()
        if not len(got["sense_id"]):
            return {}
        owner = np.asarray(got["sense_id"])  # [n]
        vectors = np.asarray(self._context_vectors[np.asarray(got["vector_row"], np.int64)], np.float32)  # [n, dim]
        cuts = np.flatnonzero(np.diff(owner)) + 1  # rows come grouped by sense
        return {int(o[0]): v for o, v in zip(np.split(owner, cuts), np.split(vectors, cuts))}

    def relations(
        self, word: str, kind: str | None = None, source: str | None = None, view: str | None = None
    ) -> list[Relation]:
        """The word's relations; head_sense / head_distance: the head's sense in `view` each is attached to."""
        if kind not in (None, "syn", "ant"):
            raise InputError(f"relation kind must be 'syn' or 'ant', got {kind!r}")
        params = {"word": word.strip()}
        attached = {
            r: (h, d)
            for r, h, d in self._db().execute(_sql.HEAD_SENSES_OF_WORD, {**params, "view": self._view(view)}).fetchall()
        }
        rows = [
            (*r, *attached.get(r[0], (None, None)))
            for r in self._db().execute(_sql.RELATIONS_OF_WORD, params).fetchall()
        ]
        # Filtering and ordering here keep the SQL a plain index lookup.
        rows = sorted(
            (r for r in rows if kind in (None, r[1]) and source in (None, r[2])),
            key=lambda r: (r[1] != "syn", r[2], r[0]),
        )
        out = []
        for rel, k, src, der, prov, head_sense, head_distance in rows:
            span = self._span_words.get(rel)
            token_ids = tuple(span[0]) if span else tuple(self.token_ids(rel))
            out.append(
                Relation(
                    word.strip(),
                    rel,
                    k,
                    src,
                    bool(der),
                    json.loads(prov) if prov else {},
                    token_ids,
                    len(token_ids) > 1,
                    None if head_sense is None else int(head_sense),
                    None if head_distance is None else float(head_distance),
                )
            )
        return out

    def neighbors(self, query: str | int | np.ndarray, k: int = 10, view: str | None = None) -> list[Neighbor]:
        """Nearest token senses (HNSW) to a word's senses, a sense id, or a raw vector [dim], in one view.

        Distances are cosine distances in the view's similarity space (`self.spaces[view]`), which its
        index was built in; a raw query vector is mapped into it first. For a word, each of its senses
        is a query and the word's own token is excluded; for a sense id, that sense is excluded and the
        sense's own view is searched (unless `view` says otherwise). Returned senses carry no embedding or
        contexts (use `sense(id)` for those), which keeps this call at hnswlib speed.
        """
        exclude_token = -1
        exclude_sense = -1
        if isinstance(query, (int, np.integer)) and not isinstance(query, bool):
            own_sense = self.sense(int(query))
            view = self._view(view, default=own_sense.view)
            vectors = own_sense.embedding[None, :]
            exclude_sense = int(query)
        else:
            view = self._view(view)
        index = self.views[view].index
        if index is None or k < 1:
            return []
        if isinstance(query, str):
            own = self.senses(query, view=view)
            if not own:
                return []
            vectors = np.stack([s.embedding for s in own])
            exclude_token = own[0].token_id if own[0].token_id is not None else -1
        elif exclude_sense < 0:
            vectors = np.asarray(query, dtype=np.float32).reshape(-1, self.dim)
        vectors = self.views[view].space.apply(vectors)
        n = index.get_current_count()
        extra = len(vectors) * 10 if exclude_token >= 0 else 1 if exclude_sense >= 0 else 0
        labels, dists = index.knn_query(vectors, k=min(n, k + extra))
        # hnswlib labels are uint64: cast, or searchsorted converts the whole id column every call
        labels, dists = labels.ravel().astype(np.int64), dists.ravel()
        pos = np.searchsorted(self._sense_ids, labels)
        keep = (self._sense_token[pos] != exclude_token) | (exclude_token < 0)
        keep &= labels != exclude_sense
        labels, dists, pos = labels[keep], dists[keep], pos[keep]
        if len(vectors) == 1:  # hnswlib already returns unique labels sorted by distance
            chosen = np.arange(min(k, len(labels)))
        else:  # a sense hit from several query vectors keeps its smallest distance
            order = np.lexsort((dists, labels))
            first = np.ones(len(order), bool)
            first[1:] = labels[order][1:] != labels[order][:-1]
            chosen = order[first]
            chosen = chosen[np.argsort(dists[chosen], kind="stable")][:k]
        return [self._neighbor(int(pos[i]), float(dists[i])) for i in chosen]

    def _neighbor(self, pos: int, distance: float) -> Neighbor:
        tok = int(self._sense_token[pos])
        sense = Sense(
            int(self._sense_ids[pos]),
            tok,
            None,
            int(self._sense_index[pos]),
            int(self._sense_count[pos]),
            self._token_text.get(tok, ""),
            None,
            (),
            self._view_names[int(self._sense_view[pos])],
            *self._labels.get(int(self._sense_ids[pos]), _NO_LABELS),
        )
        return Neighbor(sense, distance)

    def similar_words(self, word: str, limit: int = 5) -> list[str]:
        """Up to `limit` token texts spelled like `word` (Jaro-Winkler), for 'did you mean'."""
        return [
            w
            for w, score in self._db().execute(_sql.SIMILAR_WORDS, {"word": word.strip(), "limit": limit}).fetchall()
            if score > 0.6
        ]

    # -- bulk access for build/distill ------------------------------------------------------
    def sense_matrix(self, view: str | None = None) -> dict[str, np.ndarray]:
        """All sense rows of one view (the default view unless told): sense_id, token_id (-1 for spans), span_id
        (-1 for tokens), sense_index [n]; embedding [n, dim] float32."""
        rows = self._sense_view == self.view(view).code  # in sense_id order
        return {
            "sense_id": self._sense_ids[rows],
            "token_id": self._sense_token[rows],
            "span_id": self._sense_span[rows],
            "sense_index": self._sense_index[rows],
            "embedding": np.asarray(self._embeddings[rows], np.float32),
        }

    def words_table(self) -> list[tuple[str, list[int], int | None]]:
        return [(w, list(t), s) for w, t, s in self._db().execute(_sql.ALL_WORDS).fetchall()]

    def relations_table(self) -> list[tuple[str, str, str, str, bool]]:
        return self._db().execute(_sql.ALL_RELATIONS).fetchall()

    def sense_counts(self, view: str | None = None) -> np.ndarray:
        """Senses per token id [max token id + 1] (0 where a token has none) in `view`, from memory."""
        rows = (self._sense_token >= 0) & (self._sense_view == self.view(view).code)
        return np.bincount(self._sense_token[rows], minlength=int(self._sense_token.max(initial=-1)) + 1)

    def table_names(self) -> list[str]:
        return [r[0] for r in self._db().execute(_sql.TABLE_NAMES).fetchall()]

    def export_parquet(self, folder: str | os.PathLike, view: str | None = None) -> list[Path]:
        """Write every table to `folder`/NAME.parquet; senses, contexts and similarity_space hold the rows of
        `view` only (the default view unless told). Returns the files written."""
        view = self._view(view)
        written = []
        for name in self.table_names():
            path = Path(folder) / f"{name}.parquet"
            if name == "senses":  # with each sense's vector, from embeddings.npy
                import pyarrow as pa
                import pyarrow.parquet as pq

                tbl = self._db().sql(_sql.EXPORT_VIEW_TABLES[name], params={"view": view}).to_arrow_table()
                pos = np.searchsorted(self._sense_ids, tbl.column("sense_id").to_numpy())
                flat = np.asarray(self._embeddings[pos], np.float32).reshape(-1)
                pq.write_table(tbl.append_column("embedding", pa.FixedSizeListArray.from_arrays(flat, self.dim)), path)
            elif name in _sql.EXPORT_VIEW_TABLES:
                self._db().sql(_sql.EXPORT_VIEW_TABLES[name], params={"view": view}).write_parquet(str(path))
            else:
                self._db().table(name).write_parquet(str(path))
            written.append(path)
        return written

    def _db(self):
        """This thread's DuckDB connection: `con` in the thread that opened the store, else a cursor of it."""
        if threading.get_ident() == self._owner_thread:
            return self.con
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._local.cursor = self.con.cursor()
            cursor.execute(_sql.USE_STORE)  # a cursor starts in the instance's in-memory database
            with self._cursors_lock:
                self._cursors.append(cursor)
        return cursor

    def close(self) -> None:
        """Close every cursor, then the connection: DuckDB releases the file only when the last one closes."""
        if self._borrowed:  # from in_view(): the store it came from owns the connection
            return
        with self._sense_cache_lock:  # its records die with it, unless a caller holds them
            self._sense_cache.clear()
            self._sense_cache_rows = 0
        for loader in list(self._unread_contexts):  # what callers hold
            loader.load()
        with self._cursors_lock:
            for cursor in self._cursors:
                cursor.close()
            self._cursors.clear()
        self.con.close()
        self._embeddings = self._context_vectors = None  # unmaps the vector files (cached records hold copies)

    def __enter__(self) -> "SenseStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
