"""hnswlib index over token senses: build, save, load with verification.

DuckDB's `meta` records what the index was built from (metric, dim, M, ef_construction,
count, checksum of the labels); `load_index` refuses any mismatch: the file's own header (count,
vector size) is read before hnswlib loads it, then the labels in the index and a few stored
vectors are compared with the store's, so an index copied from another store is refused.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .errors import IndexMismatch, InputError, StoreError
from .fs import INDEX_FILE  # noqa: F401  (importable from here, as before)

# hnswlib calls its distance a "space"; sensekit says "metric", keeping "space" for the similarity
# transform (sensekit/space.py) that vectors pass through before they reach the index.
METRICS = ("cosine", "l2", "ip")


@dataclass(frozen=True)
class IndexParams:
    metric: str = "cosine"
    M: int = 16
    ef_construction: int = 200
    ef: int = 128  # query-time beam; set after load (hnswlib does not persist it)

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise InputError(f"index metric {self.metric!r} is not one of {METRICS}")
        if self.M < 2 or self.ef_construction < 1 or self.ef < 1:
            raise InputError("index M must be >= 2 and ef_construction, ef >= 1")

    def to_dict(self) -> dict:
        return asdict(self)


def ids_checksum(ids: np.ndarray) -> str:
    """Order-independent fingerprint of the labels in the index."""
    return hashlib.sha256(np.sort(np.asarray(ids, dtype=np.int64)).tobytes()).hexdigest()[:16]


_HEADER = struct.Struct("<QQQQQQiIQQQdQ")  # hnswlib's saveIndex header (hnswalg.h), little-endian


def index_file_header(path: Path) -> dict:
    """count, vector bytes and the smallest possible file size, from an hnswlib index file's header."""
    with open(path, "rb") as fh:
        raw = fh.read(_HEADER.size)
    if len(raw) < _HEADER.size:
        raise IndexMismatch(f"HNSW index {path} is truncated ({len(raw)} bytes); rebuild the store")
    _, _, count, per_element, label_offset, data_offset, *_ = _HEADER.unpack(raw)
    # after the header: every element's level-0 block, then a 4-byte link-list size per element at least
    return {
        "count": count,
        "vector_bytes": label_offset - data_offset,
        "min_size": _HEADER.size + count * per_element + 4 * count,
    }


def check_index_file(path: Path, count: int, dim: int) -> None:
    """Refuse an index file whose header or size does not fit `count` vectors of `dim` floats."""
    head = index_file_header(path)
    size = path.stat().st_size
    if head["vector_bytes"] != 4 * dim:
        raise IndexMismatch(
            f"HNSW index {path} holds {head['vector_bytes'] // 4}-dim vectors but the store's senses "
            f"are {dim}-dim: it belongs to another store; rebuild the store with `sensekit build`"
        )
    if head["count"] != count:
        raise IndexMismatch(
            f"HNSW index {path} does not match the store (count: index {head['count']} vs recorded "
            f"{count}); rebuild the store with `sensekit build`"
        )
    if size < head["min_size"]:
        raise IndexMismatch(
            f"HNSW index {path} is truncated ({size} bytes, at least {head['min_size']} needed); rebuild the store"
        )


def build_index(ids: np.ndarray, vectors: np.ndarray, params: IndexParams, num_threads: int = -1):
    """ids: [n] int; vectors: [n, d] float32. Returns an hnswlib.Index with ef set."""
    import hnswlib

    n, dim = vectors.shape
    index = hnswlib.Index(space=params.metric, dim=dim)
    index.init_index(max_elements=max(n, 1), M=params.M, ef_construction=params.ef_construction, random_seed=100)
    if n:
        index.add_items(
            np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64), num_threads=num_threads
        )
    index.set_ef(params.ef)
    return index


def index_record(index, ids: np.ndarray, params: IndexParams) -> dict:
    """What DuckDB stores about the index, checked again by `load_index`."""
    return {
        **params.to_dict(),
        "dim": int(index.dim),
        "count": int(index.get_current_count()),
        "checksum": ids_checksum(ids),
    }


def load_index(
    path: Path, record: dict, ids: np.ndarray, ef: int | None = None, probe: tuple[np.ndarray, np.ndarray] | None = None
):
    """Load the index file and verify it against the DuckDB record, the sense ids and, with `probe`
    (ids [m], their vectors [m, dim] in the index's space), the vectors it holds."""
    import hnswlib

    if not path.is_file():
        raise StoreError(f"store is incomplete: {path} is missing; rebuild the store with `sensekit build`")
    check_index_file(path, int(record["count"]), int(record["dim"]))  # before hnswlib reads it with our dim
    index = hnswlib.Index(space=record_metric(record), dim=int(record["dim"]))
    try:
        index.load_index(str(path), max_elements=max(int(record["count"]), 1))
    except RuntimeError as exc:
        raise IndexMismatch(f"cannot read HNSW index {path} ({exc}); rebuild the store") from None
    found = {"count": int(index.get_current_count()), "checksum": ids_checksum(ids)}
    found["labels"] = ids_checksum(np.asarray(index.get_ids_list(), np.int64))
    for key, value in found.items():
        recorded = record["checksum" if key == "labels" else key]
        if value != recorded:
            raise IndexMismatch(
                f"HNSW index {path} does not match the store ({key}: index {value} vs recorded {recorded}); "
                "rebuild the store with `sensekit build`"
            )
    if probe is not None and len(probe[0]):
        _check_probe(index, path, record_metric(record), *probe)
    index.set_ef(int(ef or record.get("ef", 128)))
    return index


def record_metric(record: dict) -> str:
    """The hnswlib metric of an index record (stores before schema 3 called it "space")."""
    return str(record.get("metric") or record["space"])


def _check_probe(index, path: Path, metric: str, ids: np.ndarray, vectors: np.ndarray) -> None:
    """The index's stored vectors of `ids` must be the store's (normalised for cosine, as hnswlib stores them)."""
    want = np.asarray(vectors, np.float32)
    if metric == "cosine":
        want = want / np.maximum(np.linalg.norm(want, axis=1, keepdims=True), 1e-30)
    try:
        have = np.asarray(index.get_items(np.asarray(ids, np.int64)), np.float32)
    except RuntimeError:
        have = None
    if have is None or have.shape != want.shape or not np.allclose(have, want, rtol=1e-3, atol=1e-4):
        raise IndexMismatch(
            f"HNSW index {path} holds other vectors than the store's senses (checked ids "
            f"{list(map(int, ids))}): it belongs to another store; rebuild the store"
        )
