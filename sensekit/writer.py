"""StoreWriter: writes a store bundle atomically.

Everything is written into a temporary sibling directory (`.NAME.tmp-PID`); `commit()`
builds the HNSW index, records it in `meta`, and only then renames the directory into
place. A crash before that leaves the old bundle untouched. `StoreWriter.update(path)`
copies an existing bundle into such a temporary directory so that, for example, relation
rows can be replaced per source without ever exposing a half-written store.

While it is written, the bundle's `meta` holds `writing = true` (`store.WRITING_KEY`), removed by
`commit()`: a temporary bundle left by a killed process is refused by `open_store` as incomplete.
Views (sensekit/view.py): every sense row belongs to one view (`add_senses(view=...)`; `declare_view` sets
a view's layer and key mode). `commit()` fits one similarity space and builds one HNSW index per view whose
token senses changed, and records each view once in `meta.views` (name, layer, key mode, index file,
space, index with its checksum, dim, dtype).
Vectors are staged in float32 files inside the temporary bundle while it is written and become
`embeddings.npy` and `context_vectors.npy` of the store's dtype at commit (sensekit/sense_array.py).
`commit()` also records the content fingerprint (`sensekit/fingerprint.py`). A full disk (or a
file-size limit) becomes a one-line StoreError, and the old bundle stays as it was.

The writer needs pyarrow (bulk inserts); the read path does not.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import errno
import json
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import _sql
from .errors import InputError, StoreError
from .fingerprint import FINGERPRINT_KEY, content_fingerprint
from .fs import CONTEXT_VECTORS_FILE, DB_FILE, EMBEDDINGS_FILE, TOKENIZER_FILE, swap_into_place, temp_sibling
from .index import IndexParams, build_index, check_index_file, index_record, record_metric
from .paths import schema_text
from .sense_array import CONTEXT_VECTORS_KEY, EMBEDDINGS_KEY, VectorStage, check_dtype, write_vector_file
from .space import DEFAULT_SPACE, SimilaritySpace, fit_space
from .store import SCHEMA_VERSION, WRITING_KEY, bundle_fingerprint, read_meta, read_space, view_records
from .view import LOSS, ViewRecord, new_view

__all__ = ["StoreWriter", "ROW_GROUP_ROWS"]

ROW_GROUP_ROWS = 2048  # DuckDB's smallest row group (one vector); see StoreWriter.__init__


def _vector_block(values, dim: int) -> np.ndarray:
    """Vectors given as a numpy array or an arrow FixedSizeList column, as float32 [n, dim]."""
    if hasattr(values, "flatten") and not isinstance(values, np.ndarray):  # pyarrow (Chunked)Array
        if hasattr(values, "combine_chunks"):
            values = values.combine_chunks()
        return np.asarray(values.flatten().to_numpy(zero_copy_only=False), np.float32).reshape(-1, dim)
    return np.asarray(values, np.float32).reshape(-1, dim)


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_DISK_FULL_TEXT = ("no space left on device", "disk quota exceeded", "file too large", "could not write all bytes")


def _disk_full(exc: BaseException) -> bool:
    """Whether `exc` says the disk (or a quota or file-size limit) is full: OSError, DuckDB or hnswlib."""
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
        return True
    return any(text in str(exc).lower() for text in _DISK_FULL_TEXT)


class StoreWriter:
    """Write (or rewrite) a store bundle. Use as a context manager: commit on success, abort on error.

    Arrays are numpy; ids are int; embeddings are float32 [n, dim].
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        dim: int,
        tokenizer_json: str | os.PathLike | None,
        provenance: dict[str, Any] | None = None,
        index_params: IndexParams | None = None,
        space: str = DEFAULT_SPACE,
        space_components: int | None = None,
        dtype: str = "float32",
        _existing: bool = False,
    ) -> None:
        import duckdb

        if not isinstance(dim, int) or not 1 <= dim <= 65536:
            raise InputError(f"embedding dim must be an integer in 1..65536, got {dim!r}")
        check_dtype(dtype)
        self.path = Path(path)
        self.dim = dim
        self.dtype = dtype  # of the stored vectors (an update keeps the bundle's own)
        self.tmp = temp_sibling(self.path)
        self.index_params = index_params or IndexParams()
        self.space_transform, self.space_components = space, space_components
        self.spaces: dict[str, SimilaritySpace] = {}  # per view, fitted at commit; an update keeps the bundle's own
        self._records: dict[str, ViewRecord] = {}  # the views, in the order they were first written
        self._dirty_views: set[str] = set()
        self._next_sense_id = 0
        if not _existing:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.tmp.exists():
                shutil.rmtree(self.tmp)
            self.tmp.mkdir()
            if tokenizer_json is not None:
                shutil.copyfile(tokenizer_json, self.tmp / TOKENIZER_FILE)
        # Small row groups: a reader's lookup by sense_id (contexts) or head (relations) skips every group
        # but one by its zone map, where DuckDB's default of 122,880 rows decodes a whole table of them.
        self.con = duckdb.connect()
        self.con.execute(_sql.ATTACH_STORE, {"path": str(self.tmp / DB_FILE), "rows": ROW_GROUP_ROWS})
        self.con.execute(_sql.USE_STORE)
        # Vectors while the bundle is written: sense rows by sense id, context rows by `contexts.vector_row`.
        self._sense_stage = VectorStage(self.tmp / ".embeddings.stage", dim)
        self._context_stage = VectorStage(self.tmp / ".context_vectors.stage", dim)
        self._staged_ids: list[np.ndarray] = []  # sense ids of the staged rows, ascending
        self._staged_sorted: np.ndarray | None = None
        if not _existing:
            self.con.execute(schema_text("store.sql").replace("{dim}", str(dim)))
            meta = {"schema_version": SCHEMA_VERSION, "dim": dim, **(provenance or {})}
            self.set_meta(**meta)
        else:
            self._next_sense_id = int(self.con.execute(_sql.MAX_SENSE_ID).fetchall()[0][0]) + 1
            meta = read_meta(self.con, self.path)
            self._records = {r.name: r for r in view_records(meta)}
            self.spaces = {v: read_space(self.con, dim, r.space, v) for v, r in self._records.items()}
            self.space_transform = self.space.transform
            self.space_components = len(self.space.components) if self.space.transform.endswith("abtt") else None
            self._stage_existing(meta)
        self.set_meta(**{WRITING_KEY: True})  # until commit(): a bundle left by a killed writer never opens

    def _stage_existing(self, meta: dict[str, Any]) -> None:
        """Stage the vectors of the bundle being updated (its files are rewritten at commit)."""
        from .sense_array import open_vector_file

        ids = np.asarray(self.con.execute(_sql.SENSE_IDS).fetchnumpy()["sense_id"], np.int64)
        record = meta[EMBEDDINGS_KEY]
        self.dtype = str(record.get("dtype", "float32"))
        for stage, rec, own_ids in (
            (self._sense_stage, record, ids),
            (self._context_stage, meta.get(CONTEXT_VECTORS_KEY), None),
        ):
            if rec is None:
                continue
            array = open_vector_file(self.tmp, rec, self.dim, own_ids)
            for lo in range(0, len(array), 8192):
                stage.append(array[lo : lo + 8192])
            del array
        self._staged_ids.append(ids)

    @property
    def views(self) -> tuple[str, ...]:
        """The names of the views the bundle holds, in the order they were first written."""
        return tuple(self._records)

    @property
    def space(self) -> SimilaritySpace | None:
        """The first view's similarity space (None until commit() fits it in a new bundle)."""
        return self.spaces.get(self.views[0]) if self.views else None

    def declare_view(self, record: ViewRecord) -> None:
        """Record a view's name, layer and key mode before its senses are added (a view given to add_senses by
        name only gets `view.new_view(name)`)."""
        self._records[record.name] = dataclasses.replace(
            record, index_file=record.index_file or new_view(record.name).index_file
        )

    # -- opening an existing bundle for modification ------------------------------------
    @classmethod
    def update(cls, path: str | os.PathLike) -> "StoreWriter":
        """Copy the bundle at `path` into a temporary sibling and open it for writing."""
        import duckdb

        path = Path(path)
        if not (path / DB_FILE).is_file():
            raise StoreError(f"no store at {path}: build one with `sensekit build`")
        try:  # the store's own meta first: another schema version is refused before anything is copied
            con = duckdb.connect(str(path / DB_FILE), read_only=True)
        except duckdb.Error as exc:
            raise StoreError(
                f"cannot open {path / DB_FILE}: {str(exc).splitlines()[0]}; the store may be corrupt, rebuild it"
            ) from None
        try:
            meta = read_meta(con, path)
        finally:
            con.close()
        index = next((r.index for r in view_records(meta) if r.index), {})  # every view's index has the same params
        params = IndexParams(
            metric=record_metric(index), **{k: index[k] for k in ("M", "ef_construction", "ef") if k in index}
        )  # hnswlib's
        tmp = temp_sibling(path)
        if tmp.exists():
            shutil.rmtree(tmp)
        try:
            shutil.copytree(path, tmp)
            return cls(path, dim=int(meta["dim"]), tokenizer_json=None, index_params=params, _existing=True)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if _disk_full(exc):
                raise StoreError(
                    f"no space left to copy {path} for the update ({exc}); free space; the store is unchanged"
                ) from None
            raise

    # -- writes ---------------------------------------------------------------------------
    def set_meta(self, **values: Any) -> None:
        rows = [(k, json.dumps(v, default=str)) for k, v in values.items()]
        self.con.executemany(_sql.UPSERT_META, rows)

    def _insert(self, table: str, columns: dict[str, Any]) -> None:
        import pyarrow as pa

        arrow_table = pa.table(columns)  # noqa: F841  (DuckDB reads it by name)
        self.con.execute(_sql.INSERT_FROM_ARROW[table])

    def add_tokens(self, token_ids: Sequence[int], texts: Sequence[str], occurrences: Sequence[int]) -> None:
        self._insert(
            "tokens",
            {
                "token_id": np.asarray(token_ids, np.int32),
                "text": list(texts),
                "occurrences": np.asarray(occurrences, np.int64),
            },
        )

    def add_senses(
        self,
        embeddings: np.ndarray,
        sense_index: Sequence[int],
        counts: Sequence[int],
        *,
        token_ids: Sequence[int] | None = None,
        span_ids: Sequence[int] | None = None,
        view: str | None = None,
        synset: Sequence[str | None] | None = None,
        gloss: Sequence[str | None] | None = None,
        lemma: Sequence[str | None] | None = None,
        label: Sequence[str | None] | None = None,
    ) -> np.ndarray:
        """Add sense rows of `view` (None: the first view written, else `view.LOSS`) owned by tokens
        (`token_ids`) or spans (`span_ids`). Returns their new ids [n].

        synset, gloss, lemma, label: optional per-sense text [n] (None entries: unknown), read back as the
        fields of the same name of `Sense`."""
        import pyarrow as pa

        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        n = embeddings.shape[0]
        if embeddings.ndim != 2 or embeddings.shape[1] != self.dim:
            raise InputError(f"embeddings must be [n, {self.dim}], got {list(embeddings.shape)}")
        if (token_ids is None) == (span_ids is None):
            raise InputError("give exactly one of token_ids or span_ids")
        view = view or (self.views[0] if self.views else LOSS.name)
        if not isinstance(view, str) or not view.isidentifier():
            raise InputError(f"a view name must be a plain identifier, got {view!r}")
        if not np.isfinite(embeddings).all():
            raise InputError("sense embeddings contain NaN or inf; check the teacher's dtype (fp16 overflow?)")
        labels = {"synset": synset, "gloss": gloss, "lemma": lemma, "label": label}
        for name, values in labels.items():
            if values is not None and len(values) != n:
                raise InputError(f"{name} must hold one entry per sense ({n}), got {len(values)}")
        ids = np.arange(self._next_sense_id, self._next_sense_id + n, dtype=np.int32)
        none = pa.nulls(n, pa.int32())
        self._insert(
            "senses",
            {
                "sense_id": ids,
                "view": [view] * n,
                "token_id": pa.array(np.asarray(token_ids, np.int32)) if token_ids is not None else none,
                "span_id": pa.array(np.asarray(span_ids, np.int32)) if span_ids is not None else none,
                "sense_index": np.asarray(sense_index, np.int16),
                "count": np.asarray(counts, np.int32),
                **{
                    name: pa.array([None if v is None else str(v) for v in values], pa.string())
                    for name, values in labels.items()
                    if values is not None
                },
            },
        )
        self._sense_stage.append(self._stored(embeddings))  # as readers will read them
        self._staged_ids.append(ids.astype(np.int64))
        self._staged_sorted = None
        self._next_sense_id += n
        if view not in self._records:
            self.declare_view(new_view(view))
        if token_ids is not None:
            self._dirty_views.add(view)
        return ids

    def stage_senses(self, sense_ids: np.ndarray, vectors: np.ndarray) -> None:
        """The vectors [n, dim] of sense rows inserted without add_senses (`sensekit migrate`), ids ascending and
        above every staged one."""
        self._sense_stage.append(self._stored(_vector_block(vectors, self.dim)))
        self._staged_ids.append(np.asarray(sense_ids, np.int64))
        self._staged_sorted = None

    def stage_context_vectors(self, vectors: np.ndarray) -> int:
        """Stage kept context vectors [n, dim] (`sensekit migrate`); returns the staged row of the first, the
        `contexts.vector_row` to give them until commit renumbers them."""
        return self._context_stage.append(self._stored(_vector_block(vectors, self.dim)))

    def adopt_index(self, view: str, source: Path | None) -> None:
        """Keep the index file `source` of a view whose vectors and space are unchanged (copied into the bundle as
        its record's index_file); None: rebuild the view's index at commit."""
        if source is None:
            self._dirty_views.add(view)
        else:
            shutil.copyfile(source, self.tmp / self._records[view].index_file)
            self._dirty_views.discard(view)

    def _vectors_of(self, sense_ids: np.ndarray) -> np.ndarray:
        """The staged embeddings [len(sense_ids), dim] float32 of senses of this bundle."""
        if self._staged_sorted is None:
            self._staged_sorted = np.concatenate(self._staged_ids) if self._staged_ids else np.zeros(0, np.int64)
        return self._sense_stage.read(np.searchsorted(self._staged_sorted, np.asarray(sense_ids, np.int64)))

    def add_contexts(self, rows: dict[str, Sequence[Any]]) -> None:
        """rows: column -> values for sense_id, rank, doc_id, char_start, char_end, snippet,
        mark_start, mark_end, distance (see schemas/store.sql), and optionally `vector`: the sampled vectors
        [n, dim] (numpy, or an arrow FixedSizeList column), kept for plots in context_vectors.npy."""
        rows = dict(rows)
        vectors = rows.pop("vector", None)
        if vectors is not None:
            block = self._stored(_vector_block(vectors, self.dim))
            first = self._context_stage.append(block)
            rows["vector_row"] = np.arange(first, first + len(block), dtype=np.int32)  # renumbered at commit
        self._insert("contexts", rows)

    def add_spans(self, span_ids: Sequence[int], token_ids: Sequence[Sequence[int]], texts: Sequence[str]) -> None:
        import pyarrow as pa

        self._insert(
            "spans",
            {
                "span_id": np.asarray(span_ids, np.int32),
                "token_ids": pa.array([list(map(int, t)) for t in token_ids], pa.list_(pa.int32())),
                "text": list(texts),
            },
        )

    def add_words(
        self, words: Sequence[str], token_ids: Sequence[Sequence[int]], span_ids: Sequence[int | None]
    ) -> None:
        import pyarrow as pa

        self.con.execute(_sql.DELETE_WORDS_IN, [list(words)])
        self._insert(
            "words",
            {
                "word": list(words),
                "token_ids": pa.array([list(map(int, t)) for t in token_ids], pa.list_(pa.int32())),
                "span_id": pa.array(list(span_ids), pa.int32()),
            },
        )

    def replace_relations(self, source: str, rows: dict[str, Sequence[Any]]) -> int:
        """Replace every relation row of `source`. rows: head, related, kind, derived, provenance
        (dicts, JSON-encoded here). Returns the number of rows written."""
        n = len(rows["head"])
        self.con.execute(_sql.DELETE_RELATIONS_OF_SOURCE, {"source": source})
        self._insert(
            "relations",
            {
                "head": list(rows["head"]),
                "related": list(rows["related"]),
                "kind": list(rows["kind"]),
                "source": [source] * n,
                "derived": [bool(d) for d in rows["derived"]],
                "provenance": [
                    json.dumps(p, ensure_ascii=False) if p is not None else None for p in rows["provenance"]
                ],
            },
        )
        self.con.execute(_sql.DELETE_STALE_HEAD_SENSES)  # attachments of pairs no source holds any more
        return n

    def next_span_id(self) -> int:
        return int(self.con.execute(_sql.MAX_SPAN_ID).fetchall()[0][0]) + 1

    def delete_span_senses(self) -> None:
        """Drop all spans, their cloud rows and the words' links to them (before re-deriving)."""
        for stmt in _sql.DELETE_SPANS:
            self.con.execute(stmt)

    def clear_words(self) -> None:
        """Drop every row of `words` (before rebuilding it from the relations)."""
        self.con.execute(_sql.DELETE_ALL_WORDS)

    # -- reads of the bundle being written ------------------------------------------------
    def relation_words(self) -> list[str]:
        """Every word that appears in a relation, as head or related (all sources), sorted: the span ids a
        build gives follow this order, so two builds of the same input number their spans alike."""
        return [w for (w,) in self.con.execute(_sql.RELATION_WORDS).fetchall()]

    def token_senses(
        self, token_ids: Sequence[int], view: str | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The senses of `token_ids` in `view` (None: the first view), ordered by token and sense index:
        token_id [n], sense_index [n], embedding [n, dim] float32."""
        import pyarrow as pa

        needed_tokens = pa.table({"token_id": pa.array(list(token_ids), pa.int32())})  # noqa: F841 (DuckDB scan)
        got = self.con.execute(_sql.TOKEN_SENSES_OF, {"view": view or self.views[0]}).fetchnumpy()
        return (
            np.asarray(got["token_id"]),
            np.asarray(got["sense_index"]),
            self._vectors_of(np.asarray(got["sense_id"], np.int64)),
        )

    def words_rows(self) -> list[tuple[str, list[int], int | None]]:
        """Every row of `words`: (word, token_ids, span_id or None)."""
        return [(w, list(t), s) for w, t, s in self.con.execute(_sql.ALL_WORDS).fetchall()]

    def relation_pairs(self) -> tuple[list[str], list[str]]:
        """Every distinct (head, related) pair of the relations, all sources."""
        rows = self.con.execute(_sql.RELATION_PAIRS).fetchall()
        return [h for h, _ in rows], [r for _, r in rows]

    def set_head_senses(
        self,
        heads: Sequence[str],
        related: Sequence[str],
        sense_index: np.ndarray,
        distance: np.ndarray,
        view: str | None = None,
    ) -> None:
        """Record, per (head, related) pair, the head's sense in `view` (None: the first view) the related word
        belongs to (-1: none, no row); replaces the view's earlier attachments."""
        view = view or self.views[0]
        found = np.asarray(sense_index) >= 0
        self.con.execute(_sql.DELETE_HEAD_SENSES, {"view": view})
        self._insert(
            "relation_senses",
            {
                "view": [view] * int(found.sum()),
                "head": [h for h, f in zip(heads, found) if f],
                "related": [r for r, f in zip(related, found) if f],
                "head_sense": np.asarray(sense_index, np.int16)[found],
                "head_distance": np.asarray(distance, np.float32)[found],
            },
        )

    def sense_rows(self, view: str | None = None) -> dict[str, np.ndarray]:
        """All sense rows of `view` (None: the first view) in the bundle being written: sense_id, token_id (-1 for
        spans), span_id (-1 for tokens), sense_index [n]; embedding [n, dim] float32."""
        tbl = self.con.sql(_sql.SENSE_MATRIX, params={"view": view or self.views[0]}).to_arrow_table()
        out = {
            c: np.asarray(tbl.column(c).fill_null(-1).to_numpy(zero_copy_only=False), np.int64)
            for c in ("sense_id", "token_id", "span_id", "sense_index")
        }
        out["embedding"] = self._vectors_of(out["sense_id"])
        return out

    def linked_senses(self, view: str) -> list[tuple[int, int, str]]:
        """(token_id, sense_index, synset) of every token sense of `view` linked to a WordNet synset."""
        return self.con.execute(_sql.LINKED_SENSES, {"view": view}).fetchall()

    # -- finishing ------------------------------------------------------------------------
    def _write_space(self, space: SimilaritySpace, view: str) -> None:
        """Replace a view's similarity space (its rows, and the transform in the view's record)."""
        import pyarrow as pa

        self.spaces[view] = space
        self.con.execute(_sql.DELETE_SPACE, {"view": view})
        vectors = np.concatenate([space.mean[None], space.scale[None], space.components]).astype(np.float32)
        parts = ["mean", "scale"] + ["component"] * len(space.components)
        idx = [0, 0] + list(range(len(space.components)))
        self._insert(
            "similarity_space",
            {
                "view": [view] * len(parts),
                "part": parts,
                "idx": np.asarray(idx, np.int32),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), self.dim),
            },
        )
        self._records[view] = dataclasses.replace(self._records[view], space=space.describe())

    def commit(self) -> Path:
        """Build the index (if token senses changed), record it and the content fingerprint, and rename the
        bundle into place. A full disk aborts: StoreError, the old bundle untouched."""
        try:
            self._finish()
        except Exception as exc:
            if not _disk_full(exc):
                raise
            self.abort()
            raise StoreError(
                f"no space left on the device while writing {self.path} ({_first_line(exc)}); "
                "free space or choose another --store; the previous store is unchanged"
            ) from None
        swap_into_place(self.tmp, self.path)
        return self.path

    def _finish(self) -> None:
        """Everything commit() writes into the temporary bundle, ending with a checkpointed, closed DuckDB file."""
        import pyarrow  # noqa: F401  (fetch_arrow_table needs it)

        if not self._records:  # a store without senses still records a view for readers to answer from
            self.declare_view(LOSS)
            self._dirty_views.add(LOSS.name)
        for view in [v for v in self.views if v in self._dirty_views]:  # one space and one index per view
            ids = np.asarray(self.con.execute(_sql.INDEXED_SENSES, {"view": view}).fetchnumpy()["sense_id"], np.int64)
            vectors = self._vectors_of(ids)
            self._write_space(fit_space(vectors, self.space_transform, self.space_components), view)
            index = build_index(ids, self.spaces[view].apply(vectors), self.index_params)
            path = self.tmp / self._records[view].index_file
            index.save_index(str(path))
            try:  # hnswlib does not check its writes: a full disk leaves a short file
                check_index_file(path, int(index.get_current_count()), self.dim)
            except StoreError as exc:
                raise OSError(errno.ENOSPC, f"the HNSW index was not written whole ({exc})") from None
            self._records[view] = dataclasses.replace(
                self._records[view], index=index_record(index, ids, self.index_params)
            )
        records = self._write_vectors()
        views = [dataclasses.replace(r, dim=self.dim, dtype=self.dtype).to_json() for r in self._records.values()]
        self.set_meta(views=views, **records)
        self.set_meta(
            updated_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            **{FINGERPRINT_KEY: bundle_fingerprint(content_fingerprint(self.con), records)},
        )
        self.con.execute(_sql.DELETE_META, [WRITING_KEY])
        self.con.execute(_sql.CHECKPOINT)
        self.con.close()

    def _stored(self, vectors: np.ndarray) -> np.ndarray:
        """float32 vectors [n, dim] rounded to the store's dtype, as the vector files will hold them."""
        if self.dtype == "float32":
            return vectors
        rounded = vectors.astype(self.dtype)
        if not np.isfinite(rounded).all():
            raise InputError(f"a vector does not fit {self.dtype} (too large); build with --dtype float32")
        return rounded.astype(np.float32)

    def _write_vectors(self) -> dict[str, dict]:
        """embeddings.npy (every sense, in sense_id order) and context_vectors.npy (the kept sampled vectors, in
        (sense_id, rank) order, `contexts.vector_row` renumbered to match); their meta records by meta key."""
        import pyarrow as pa

        ids = np.asarray(self.con.execute(_sql.SENSE_IDS).fetchnumpy()["sense_id"], np.int64)
        if self._staged_sorted is None:
            self._vectors_of(ids[:0])
        sense_rows = np.searchsorted(self._staged_sorted, ids)
        emb = write_vector_file(self.tmp, EMBEDDINGS_FILE, self._sense_stage, sense_rows, self.dtype, ids)
        records = {EMBEDDINGS_KEY: emb}
        kept = self.con.execute(_sql.KEPT_CONTEXT_VECTORS).fetchnumpy()
        staged = np.asarray(kept["vector_row"], np.int64)
        (self.tmp / CONTEXT_VECTORS_FILE).unlink(missing_ok=True)  # an update's copy, rewritten if any are kept
        if len(staged):
            records[CONTEXT_VECTORS_KEY] = write_vector_file(
                self.tmp, CONTEXT_VECTORS_FILE, self._context_stage, staged, self.dtype
            )
        vector_rows = pa.table(  # noqa: F841  (DuckDB reads it by name)
            {
                "sense_id": pa.array(np.asarray(kept["sense_id"], np.int32)),
                "rank": pa.array(np.asarray(kept["rank"], np.int16)),
                "vector_row": pa.array(np.arange(len(staged), dtype=np.int32)),
            }
        )
        self.con.execute(_sql.SET_VECTOR_ROWS)
        self._sense_stage.close()
        self._context_stage.close()
        return records

    def abort(self) -> None:
        try:
            self._sense_stage.close(remove=False)
            self._context_stage.close(remove=False)
            self.con.close()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
            return
        self.abort()
        if _disk_full(exc):  # DuckDB writes its WAL while rows are added: the disk can fill before commit()
            raise StoreError(
                f"no space left on the device while writing {self.path} ({_first_line(exc)}); "
                "free space or choose another --store; the previous store is unchanged"
            ) from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
