"""`sensekit migrate STORE`: convert a schema-3 bundle to schema 4 in place, without the teacher.

Format rules of v3, read here only: every sense vector is in DuckDB (`senses.embedding`, and a copy in
`embeddings.npy`), every kept context vector in `contexts.vector`; the views are `meta.views` (names) with
`view_layers`, and per view the meta records `index`/`space` (loss) and `lexical_index`/`lexical_space`;
relation attachments are columns of `relations` (`head_sense`, `head_distance` for the loss view,
`lexical_head_sense`, `lexical_head_distance` for the lexical one).

The v4 bundle is written beside the old one by a `StoreWriter` (a temporary sibling) and renamed into place
only when complete, so a kill or a full disk leaves the v3 store as it was. Rows keep their ids and order;
the HNSW index files are kept as they are (the same vectors in the same spaces) unless the vectors are
stored in float16, which changes them, and then each view's index is rebuilt.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import _sql
from .errors import InputError, SchemaMismatch, StoreError
from .fs import DB_FILE, TOKENIZER_FILE
from .store import SCHEMA_VERSION, WRITING_KEY
from .view import LEXICAL, LOSS, ViewRecord

__all__ = ["migrate"]

_FROM_VERSION = 3
_V3_RECORDS = ("schema_version", "views", "view_layers", "index", "space", "lexical_index", "lexical_space")
_V3_DROPPED = (*_V3_RECORDS, "embeddings", "content_sha256", "updated_at", WRITING_KEY)
_BATCH_ROWS = 8192


def _v3_views(meta: dict[str, Any]) -> list[ViewRecord]:
    """The v4 records of a v3 store's views (their index files keep their names)."""
    layers = meta.get("view_layers") or {}
    records = []
    for name in meta.get("views") or [LOSS.name]:
        if name == LOSS.name:
            record = dataclasses.replace(LOSS, key_mode=str(meta.get("key_mode") or LOSS.key_mode))
            prefix = ""
        else:
            record = dataclasses.replace(LEXICAL, layer=layers.get(name))
            prefix = f"{name}_"
        records.append(
            dataclasses.replace(
                record, index=dict(meta.get(f"{prefix}index") or {}), space=dict(meta.get(f"{prefix}space") or {})
            )
        )
    return records


def _read_v3_meta(path: Path) -> dict[str, Any]:
    import duckdb

    db = path / DB_FILE
    if not db.is_file():
        raise StoreError(f"no sensekit store at {path}; give the store's folder")
    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.Error as exc:
        raise StoreError(f"cannot open {db}: {str(exc).splitlines()[0]}; the store may be corrupt") from None
    try:
        meta = {k: json.loads(v) for k, v in con.execute(_sql.ALL_META).fetchall()}
    except duckdb.Error:
        raise StoreError(f"{path} is not a sensekit store (no meta table)") from None
    finally:
        con.close()
    found = meta.get("schema_version")
    if found == SCHEMA_VERSION:
        raise InputError(f"store {path} already has schema version {SCHEMA_VERSION}: nothing to migrate")
    if found != _FROM_VERSION:
        raise SchemaMismatch(
            f"store {path} has schema version {found}; `sensekit migrate` converts version {_FROM_VERSION} only: "
            "rebuild this store with `sensekit build`"
        )
    if meta.get(WRITING_KEY):
        raise StoreError(f"{path} is an incomplete store (its writer never committed it); rebuild it")
    return meta


def migrate(path: str | Path, dtype: str = "float32") -> dict[str, Any]:
    """Convert the v3 bundle at `path` to v4 in place, atomically. `dtype`: of the stored vectors (float32 keeps
    them exact and the index files as they are; float16 halves them and rebuilds each view's index).
    Returns counts and seconds."""
    import pyarrow as pa

    from .writer import StoreWriter

    t0 = time.perf_counter()
    path = Path(path)
    meta = _read_v3_meta(path)
    provenance = {k: v for k, v in meta.items() if k not in _V3_DROPPED}
    provenance["migrated_from"] = _FROM_VERSION
    records = _v3_views(meta)
    index = next((r.index for r in records if r.index), {})
    from .index import IndexParams, record_metric

    params = IndexParams(metric=record_metric(index), **{k: index[k] for k in ("M", "ef_construction", "ef")})
    space = next((r.space for r in records if r.space), {})
    writer = StoreWriter(
        path,
        dim=int(meta["dim"]),
        tokenizer_json=path / TOKENIZER_FILE,
        provenance=provenance,
        index_params=params,
        space=str(space.get("kind", "identity")),
        space_components=space.get("components") if str(space.get("kind", "")).endswith("abtt") else None,
        dtype=dtype,
    )
    try:
        con = writer.con
        con.execute(_sql.ATTACH_V3, {"path": str(path / DB_FILE)})
        for statement in _sql.MIGRATE_V3_TABLES:
            con.execute(statement)
        senses = 0
        for batch in con.sql(_sql.V3_EMBEDDINGS).to_arrow_reader(_BATCH_ROWS):
            ids = batch.column(0).to_numpy().astype(np.int64)
            writer.stage_senses(ids, batch.column(1).flatten().to_numpy(zero_copy_only=False))
            senses += len(ids)
        kept = []
        for batch in con.sql(_sql.V3_CONTEXT_VECTORS).to_arrow_reader(_BATCH_ROWS):
            first = writer.stage_context_vectors(batch.column(2).flatten().to_numpy(zero_copy_only=False))
            kept.append((batch.column(0), batch.column(1), np.arange(first, first + batch.num_rows, dtype=np.int32)))
        if kept:
            vector_rows = pa.table(  # noqa: F841  (DuckDB reads it by name)
                {
                    "sense_id": pa.concat_arrays([k[0] for k in kept]),
                    "rank": pa.concat_arrays([k[1] for k in kept]),
                    "vector_row": pa.array(np.concatenate([k[2] for k in kept])),
                }
            )
            con.execute(_sql.SET_VECTOR_ROWS)
        con.execute(_sql.DETACH_V3)
        for record in records:
            writer.declare_view(record)
            if record.index.get("count"):  # float32: the same vectors in the same space, the index file stays valid
                writer.adopt_index(record.name, path / record.index_file if dtype == "float32" else None)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return {
        "store": str(path),
        "senses": senses,
        "context_vectors": int(sum(len(k[2]) for k in kept)),
        "views": [r.name for r in records],
        "dtype": dtype,
        "seconds": round(time.perf_counter() - t0, 2),
    }
