"""File-system idioms used across sensekit, each in one place.

- The store bundle's file names.
- `temp_sibling` / `swap_into_place`: write beside the target, then rename it into place, so that
  a reader or a crash never sees a half-written file or folder.
- `open_compressed`: one opener for plain, .gz, .bz2 and .xz/.lzma files, for reading and writing.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import IO

__all__ = [
    "DB_FILE",
    "TOKENIZER_FILE",
    "INDEX_FILE",
    "EMBEDDINGS_FILE",
    "CONTEXT_VECTORS_FILE",
    "COMPRESSED_SUFFIXES",
    "temp_sibling",
    "swap_into_place",
    "exchange_paths",
    "write_atomic",
    "open_compressed",
    "strip_compression",
]

DB_FILE = "store.duckdb"
TOKENIZER_FILE = "tokenizer.json"
INDEX_FILE = "senses.hnsw"
EMBEDDINGS_FILE = "embeddings.npy"  # sensekit/sense_array.py
CONTEXT_VECTORS_FILE = "context_vectors.npy"  # sensekit/sense_array.py
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".lzma")


def temp_sibling(path: str | os.PathLike, tag: str = "tmp") -> Path:
    """A hidden, per-process name in the same folder as `path` (same file system: rename is atomic)."""
    path = Path(path)
    return path.parent / f".{path.name}.{tag}-{os.getpid()}"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def exchange_paths(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Swap two existing paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where the
    kernel, the C library or the file system cannot, and nothing was changed."""
    if sys.platform != "linux":
        return False
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # a C library without renameat2 (glibc < 2.28, musl)
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def swap_into_place(tmp: str | os.PathLike, target: str | os.PathLike, *, keep_existing: bool = False) -> Path:
    """Rename the finished `tmp` (file or folder) to `target`, replacing what was there.

    A folder cannot be renamed over a non-empty folder: where the system can, the two folders are
    exchanged atomically (so `target` always holds a complete bundle, old or new); elsewhere the
    existing target first moves aside and is deleted only after the swap. With `keep_existing`, a
    target that appeared meanwhile (another process won the race) is kept and `tmp` is discarded.
    """
    tmp, target = Path(tmp), Path(target)
    if target.exists() and keep_existing:
        _remove(tmp)
        return target
    if target.is_dir() and not target.is_symlink() and tmp.is_dir() and exchange_paths(tmp, target):
        _remove(tmp)  # now the old folder
        return target
    old = None
    if target.is_dir() and not target.is_symlink():
        old = temp_sibling(target, "old")
        _remove(old)
        os.replace(target, old)
    try:
        os.replace(tmp, target)
    except OSError:
        if not keep_existing:
            if old is not None:
                os.replace(old, target)
            raise
        _remove(tmp)
    if old is not None:
        _remove(old)
    return target


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write `data` to `path` through a temporary sibling and a rename."""
    path = Path(path)
    tmp = temp_sibling(path)
    if isinstance(data, str):
        tmp.write_text(data, encoding="utf-8")
    else:
        tmp.write_bytes(data)
    return swap_into_place(tmp, path)


def strip_compression(name: str) -> str:
    """'words.jsonl.bz2' -> 'words.jsonl' (the suffix that says what the content is)."""
    lower = name.lower()
    for suffix in COMPRESSED_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def open_compressed(
    path: str | os.PathLike, mode: str = "rb", *, compression_of: str | os.PathLike | None = None
) -> IO[bytes]:
    """A binary stream over `path`, (de)compressed by its suffix: .gz, .bz2, .xz/.lzma or plain.

    `compression_of` names the file whose suffix decides instead, e.g. the final name when
    writing a `temp_sibling` of it.
    """
    name = str(compression_of if compression_of is not None else path).lower()
    if name.endswith(".gz"):
        import gzip

        return gzip.open(path, mode)
    if name.endswith(".bz2"):
        import bz2

        return bz2.open(path, mode)
    if name.endswith((".xz", ".lzma")):
        import lzma

        return lzma.open(path, mode)
    return open(path, mode, buffering=1 << 20)
