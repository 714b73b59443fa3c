"""hnswlib index over token senses: build, save, load with verification.

DuckDB's `meta` records what the index was built from (space, dim, M, ef_construction,
count, checksum of the labels); `load_index` refuses any mismatch.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ._fs import INDEX_FILE  # noqa: F401  (importable from here, as before)
from .errors import IndexMismatch, InputError, StoreError

SPACES = ("cosine", "l2", "ip")


@dataclass(frozen=True)
class IndexParams:
    space: str = "cosine"
    M: int = 16
    ef_construction: int = 200
    ef: int = 128  # query-time beam; set after load (hnswlib does not persist it)

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise InputError(f"index space {self.space!r} is not one of {SPACES}")
        if self.M < 2 or self.ef_construction < 1 or self.ef < 1:
            raise InputError("index M must be >= 2 and ef_construction, ef >= 1")

    def to_dict(self) -> dict:
        return asdict(self)


def ids_checksum(ids: np.ndarray) -> str:
    """Order-independent fingerprint of the labels in the index."""
    return hashlib.sha256(np.sort(np.asarray(ids, dtype=np.int64)).tobytes()).hexdigest()[:16]


def build_index(ids: np.ndarray, vectors: np.ndarray, params: IndexParams, num_threads: int = -1):
    """ids: [n] int; vectors: [n, d] float32. Returns an hnswlib.Index with ef set."""
    import hnswlib

    n, dim = vectors.shape
    index = hnswlib.Index(space=params.space, dim=dim)
    index.init_index(max_elements=max(n, 1), M=params.M, ef_construction=params.ef_construction, random_seed=100)
    if n:
        index.add_items(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64), num_threads=num_threads)
    index.set_ef(params.ef)
    return index


def index_record(index, ids: np.ndarray, params: IndexParams) -> dict:
    """What DuckDB stores about the index, checked again by `load_index`."""
    return {**params.to_dict(), "dim": int(index.dim), "count": int(index.get_current_count()), "checksum": ids_checksum(ids)}


def load_index(path: Path, record: dict, ids: np.ndarray, ef: int | None = None):
    """Load the index file and verify it against the DuckDB record and the sense ids."""
    import hnswlib

    if not path.is_file():
        raise StoreError(f"store is incomplete: {path} is missing; rebuild the store with `sensekit build`")
    index = hnswlib.Index(space=record["space"], dim=int(record["dim"]))
    try:
        index.load_index(str(path), max_elements=max(int(record["count"]), 1))
    except RuntimeError as exc:
        raise IndexMismatch(f"cannot read HNSW index {path} ({exc}); rebuild the store") from None
    found = {"count": int(index.get_current_count()), "checksum": ids_checksum(ids)}
    for key, value in found.items():
        if value != record[key]:
            raise IndexMismatch(
                f"HNSW index {path} does not match the store ({key}: index {value} vs recorded {record[key]}); "
                "rebuild the store with `sensekit build`"
            )
    index.set_ef(int(ef or record.get("ef", 128)))
    return index
