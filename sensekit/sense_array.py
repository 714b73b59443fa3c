"""`embeddings.npy`: every sense embedding of a bundle, memory-mapped by readers.

DuckDB stays the store of record (`senses.embedding`); this file is a copy laid out for reading one
word's senses without a query: row i is the embedding of the i-th sense in sense_id order, float32
[n_senses, dim], a plain .npy file. A query costs DuckDB about 0.2 ms before it reads anything, and
`senses(word)` would otherwise spend two of them; a slice of a memory-mapped array costs microseconds,
and the operating system shares its pages between processes (several `serve` workers, a notebook).

The writer records {"file", "rows", "dim", "ids", "sha256"} in `meta.embeddings`. Opening checks what is
cheap (the header's shape, the file size and the checksum of the sense ids, all against that record), and
the store compares a few rows with DuckDB's; `sensekit info --verify` also hashes the whole file.
A store written before the file existed has no record and reads embeddings from DuckDB.

The mapping is opened when the store opens, so an open store keeps reading the version it opened
after the bundle is replaced: a mapped file outlives its unlinking.
"""

from __future__ import annotations

import errno
import hashlib
from pathlib import Path

import numpy as np

from . import _sql
from .errors import StoreError
from .fs import EMBEDDINGS_FILE
from .index import ids_checksum

__all__ = ["EMBEDDINGS_KEY", "write_sense_array", "open_sense_array", "file_sha256"]

EMBEDDINGS_KEY = "embeddings"  # the meta key of the record
_BATCH_ROWS = 8192  # rows per write: bounded memory for any store size


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def write_sense_array(con, folder: Path, dim: int) -> dict:
    """Write `folder`/embeddings.npy from the senses table of `con` (an open DuckDB connection), with plain
    writes (a full disk raises OSError, where a writable memory map would crash); returns its meta record."""
    ids = np.asarray(con.execute(_sql.SENSE_IDS).fetchnumpy()["sense_id"], np.int64)
    path = folder / EMBEDDINGS_FILE
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh,
            {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")), "fortran_order": False, "shape": (len(ids), dim)},
        )
        reader = con.sql(_sql.ALL_EMBEDDINGS).to_arrow_reader(_BATCH_ROWS)
        for batch in reader:
            block = batch.column(0).flatten().to_numpy(zero_copy_only=False)  # [rows * dim]
            fh.write(np.ascontiguousarray(block, dtype="<f4").tobytes())
    written = path.stat().st_size
    if written != _expected_size(path, len(ids), dim):  # the writer reports ENOSPC as a full disk, in one line
        raise OSError(errno.ENOSPC, f"{path} was not written whole ({written} bytes)")
    return {
        "file": EMBEDDINGS_FILE,
        "rows": len(ids),
        "dim": dim,
        "ids": ids_checksum(ids),
        "sha256": file_sha256(path),
    }


def _expected_size(path: Path, rows: int, dim: int) -> int:
    with open(path, "rb") as fh:
        np.lib.format.read_magic(fh)
        np.lib.format.read_array_header_1_0(fh)
        return fh.tell() + rows * dim * 4


def open_sense_array(folder: Path, record: dict, sense_ids: np.ndarray, dim: int) -> np.ndarray:
    """The read-only memory map of `folder`/embeddings.npy [n, dim], checked against its meta `record` and
    the store's sense ids [n] (sorted). StoreError (one line, with the fix) on any mismatch."""
    path = folder / str(record.get("file", EMBEDDINGS_FILE))
    fix = "rebuild the store with `sensekit build` (or run `sensekit relations add` on it to rewrite the file)"
    if not path.is_file():
        raise StoreError(f"store is incomplete: {path} is missing; {fix}")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:  # a truncated header or body
        raise StoreError(f"cannot read {path} ({str(exc).splitlines()[0]}); {fix}") from None
    n = len(sense_ids)
    if array.dtype != np.float32 or array.shape != (n, dim) or int(record.get("rows", -1)) != n:
        raise StoreError(
            f"{path} holds {array.dtype} {list(array.shape)} but the store has {n} senses of {dim} dims: "
            f"it belongs to another store; {fix}"
        )
    if path.stat().st_size != _expected_size(path, n, dim):
        raise StoreError(f"{path} is truncated or padded; {fix}")
    if record.get("ids") != ids_checksum(sense_ids):
        raise StoreError(f"{path} was written for other sense ids than the store's; {fix}")
    return array
