"""The content fingerprint of a store: sha256 over its tables in a fixed row order.

`StoreWriter.commit()` records it in `meta.content_sha256`; `SenseStore.verify()` (and
`sensekit info --verify`) computes it again and compares. Two builds with the same inputs and
seed have the same fingerprint, whatever their `created_at`, their index file (hnswlib builds it
with several threads, so its bytes vary) or their DuckDB file layout.

Each column is hashed as streams that do not depend on how DuckDB cuts the rows into batches:
validity, then per type the values (numbers, flattened vectors and lists) and the lengths (strings,
lists). Only pyarrow and numpy, no torch.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from . import _sql

__all__ = ["content_fingerprint", "FINGERPRINT_KEY"]

FINGERPRINT_KEY = "content_sha256"
_BATCH_ROWS = 1 << 16


class _Column:
    """Running hashes of one column's streams."""

    def __init__(self) -> None:
        self.valid, self.lengths, self.values = hashlib.sha256(), hashlib.sha256(), hashlib.sha256()

    def update(self, arr: Any) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        self.valid.update(np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), np.uint8))
        arrow_type = arr.type
        if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
            arr = pc.cast(arr, pa.large_string())
            self.lengths.update(np.asarray(pc.fill_null(pc.binary_length(arr), 0).to_numpy(), np.int64))
            offsets = np.frombuffer(arr.buffers()[1], np.int64)[arr.offset : arr.offset + len(arr) + 1]
            data = arr.buffers()[2]
            if data is not None and len(offsets):
                self.values.update(memoryview(data)[offsets[0] : offsets[-1]])
        elif (
            pa.types.is_list(arrow_type)
            or pa.types.is_large_list(arrow_type)
            or pa.types.is_fixed_size_list(arrow_type)
        ):
            lengths = arr.value_lengths() if not pa.types.is_fixed_size_list(arrow_type) else pc.list_value_length(arr)
            self.lengths.update(np.asarray(pc.fill_null(lengths, 0).to_numpy(), np.int64))
            self.update_values(arr.flatten())  # null lists contribute nothing (their validity says so)
        else:
            self.update_values(arr)

    def update_values(self, arr: Any) -> None:
        import pyarrow.compute as pc

        if arr.null_count:
            arr = pc.fill_null(arr, False if str(arr.type) == "bool" else 0)
        self.values.update(np.ascontiguousarray(arr.to_numpy(zero_copy_only=False)))

    def digest(self) -> bytes:
        return self.valid.digest() + self.lengths.digest() + self.values.digest()


def content_fingerprint(con) -> str:
    """sha256 (hex) of the store's content tables (`_sql.FINGERPRINT_TABLES`), read through `con`."""
    import pyarrow  # noqa: F401  (DuckDB's arrow export needs it)

    total = hashlib.sha256()
    for table, query in _sql.FINGERPRINT_TABLES:  # through `con` itself: a cursor would not see the writer's USE
        _hash_table(con, table, query, total)
    return total.hexdigest()


def _hash_table(con, table: str, query: str, total) -> None:
    """Add one table (name, row count, schema, then each column's streams) to `total`."""
    reader = con.sql(query).to_arrow_reader(_BATCH_ROWS)
    columns = {name: _Column() for name in reader.schema.names}
    rows = 0
    for batch in reader:
        rows += batch.num_rows
        for name, column in columns.items():
            column.update(batch.column(name))
    total.update(f"{table}:{rows}:{reader.schema}".encode())
    for name, column in columns.items():
        total.update(name.encode() + column.digest())
