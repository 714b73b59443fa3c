"""The bundle's vector files: `embeddings.npy` (every sense) and `context_vectors.npy` (kept sampled vectors).

They are the store of record for vectors: DuckDB holds none but the small similarity spaces. Row i of
`embeddings.npy` is the embedding of the i-th sense in sense_id order, [n_senses, dim]; row r of
`context_vectors.npy` is the sampled vector of the context whose `vector_row` is r. Both are plain .npy
files of the store's dtype (float16 or float32, `sensekit build --dtype`), memory-mapped by readers: a slice
costs microseconds where a DuckDB query costs about 0.2 ms before it reads anything, and the operating
system shares the pages between processes (several `serve` workers, a notebook).

The writer records {"file", "rows", "dim", "dtype", "ids", "sample", "sha256"} in meta (`embeddings`,
`context_vectors`). Opening checks what is cheap: the header's dtype and shape, the exact file size, the
checksum of the sense ids, and `sample`, a sha256 over about sqrt(rows) rows spread evenly over the file
(at least 64, all rows of a small file), so the rows compared grow with the file while opening stays
cheap (about 0.5 MB read on a 145,000-row demo store). `sensekit info --verify` hashes the whole file.

The mapping is opened when the store opens, so an open store keeps reading the version it opened
after the bundle is replaced: a mapped file outlives its unlinking.
"""

from __future__ import annotations

import errno
import hashlib
import math
import os
from pathlib import Path

import numpy as np

from .errors import InputError, StoreError
from .fs import CONTEXT_VECTORS_FILE, EMBEDDINGS_FILE
from .index import ids_checksum

__all__ = [
    "EMBEDDINGS_KEY",
    "CONTEXT_VECTORS_KEY",
    "DTYPES",
    "VectorStage",
    "write_vector_file",
    "open_vector_file",
    "file_sha256",
    "sample_rows",
]

EMBEDDINGS_KEY = "embeddings"  # the meta key of embeddings.npy's record
CONTEXT_VECTORS_KEY = "context_vectors"  # the meta key of context_vectors.npy's record
DTYPES = ("float16", "float32")  # what `--dtype` may choose for stored vectors
_BATCH_ROWS = 8192  # rows per write: bounded memory for any store size
_MIN_SAMPLE = 64


def check_dtype(dtype: str) -> np.dtype:
    if dtype not in DTYPES:
        raise InputError(f"unknown vector dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    return np.dtype(dtype).newbyteorder("<")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def sample_rows(rows: int) -> np.ndarray:
    """The rows the open-time checksum reads: about sqrt(rows), evenly spread, first and last included."""
    if rows <= 0:
        return np.zeros(0, np.int64)
    n = min(rows, max(_MIN_SAMPLE, math.isqrt(rows)))
    return np.unique(np.linspace(0, rows - 1, n).astype(np.int64))


def _sample_sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array[sample_rows(len(array))]).tobytes()).hexdigest()


class VectorStage:
    """Float32 rows appended while a bundle is written, read back by row number (space fits, attachments)
    and written out as a .npy file of the store's dtype at commit. A plain file in the temporary bundle, so
    a build's vectors need not all stay in memory."""

    def __init__(self, path: Path, dim: int) -> None:
        self.path, self.dim = path, dim
        self.rows = 0
        self._fh = open(path, "wb")
        self._map: np.ndarray | None = None

    def append(self, vectors: np.ndarray) -> int:
        """Append [n, dim] rows; returns the row number of the first."""
        block = np.ascontiguousarray(vectors, dtype="<f4").reshape(-1, self.dim)
        self._fh.write(block.tobytes())
        first, self.rows = self.rows, self.rows + len(block)
        self._map = None
        return first

    def read(self, rows: np.ndarray) -> np.ndarray:
        """Rows [len(rows), dim] float32 (a copy)."""
        rows = np.asarray(rows, np.int64)
        if not len(rows):
            return np.zeros((0, self.dim), np.float32)
        if self._map is None:
            self._fh.flush()
            self._map = np.memmap(self.path, dtype="<f4", mode="r", shape=(self.rows, self.dim))
        return np.asarray(self._map[rows], np.float32)

    def close(self, remove: bool = True) -> None:
        self._map = None
        self._fh.close()
        if remove:
            self.path.unlink(missing_ok=True)


def write_vector_file(
    folder: Path, name: str, stage: VectorStage, rows: np.ndarray, dtype: str, ids: np.ndarray | None = None
) -> dict:
    """Write `folder`/`name` from the staged `rows` (in file order) as `dtype`, with plain writes (a full disk
    raises OSError, where a writable memory map would crash); returns its meta record. `ids`: the sense id of
    each row, recorded as a checksum (embeddings.npy)."""
    out_dtype = check_dtype(dtype)
    path = folder / name
    n = len(rows)
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": np.lib.format.dtype_to_descr(out_dtype), "fortran_order": False, "shape": (n, stage.dim)}
        )
        for lo in range(0, n, _BATCH_ROWS):
            fh.write(stage.read(rows[lo : lo + _BATCH_ROWS]).astype(out_dtype).tobytes())  # staged rounded
    written = path.stat().st_size
    if written != _expected_size(path, n, stage.dim, out_dtype):  # the writer reports ENOSPC as a full disk
        raise OSError(errno.ENOSPC, f"{path} was not written whole ({written} bytes)")
    mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    record = {
        "file": name,
        "rows": n,
        "dim": stage.dim,
        "dtype": str(np.dtype(dtype)),
        "sample": _sample_sha256(mapped),
        "sha256": file_sha256(path),
    }
    del mapped
    if ids is not None:
        record["ids"] = ids_checksum(np.asarray(ids, np.int64))
    return record


def _expected_size(path: Path, rows: int, dim: int, dtype: np.dtype) -> int:
    with open(path, "rb") as fh:
        np.lib.format.read_magic(fh)
        np.lib.format.read_array_header_1_0(fh)
        return fh.tell() + rows * dim * np.dtype(dtype).itemsize


def open_vector_file(folder: Path, record: dict, dim: int, ids: np.ndarray | None = None) -> np.ndarray:
    """The read-only memory map of the file of a meta `record` [rows, dim], checked against the record (dtype,
    shape, size, sampled rows) and, for embeddings.npy, the store's sense ids [n] (sorted). StoreError (one
    line, with the fix) on any mismatch."""
    path = folder / str(record.get("file", EMBEDDINGS_FILE))
    fix = "rebuild the store with `sensekit build` (or run `sensekit relations add` on it to rewrite the file)"
    if not path.is_file():
        raise StoreError(f"store is incomplete: {path} is missing; {fix}")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:  # a truncated header or body
        raise StoreError(f"cannot read {path} ({str(exc).splitlines()[0]}); {fix}") from None
    n = int(record.get("rows", -1)) if ids is None else len(ids)
    want = np.dtype(str(record.get("dtype", "float32")))
    if array.dtype != want or array.shape != (n, dim) or int(record.get("rows", -1)) != n:
        raise StoreError(
            f"{path} holds {array.dtype} {list(array.shape)} but the store records {n} rows of {dim} dims as "
            f"{want}: it belongs to another store; {fix}"
        )
    if os.stat(path).st_size != _expected_size(path, n, dim, want):
        raise StoreError(f"{path} is truncated or padded; {fix}")
    if ids is not None and record.get("ids") != ids_checksum(ids):
        raise StoreError(f"{path} was written for other sense ids than the store's; {fix}")
    if record.get("sample") != _sample_sha256(array):
        raise StoreError(f"{path} holds other vectors than were written (its sampled rows differ); {fix}")
    return array


__all__ += ["check_dtype", "CONTEXT_VECTORS_FILE"]
