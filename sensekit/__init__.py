"""sensekit: sense dictionaries for decoder LMs, stored in DuckDB with an HNSW index.

`import sensekit` is light: it never imports torch or transformers.
"""

from .errors import (
    IndexMismatch,
    InputError,
    MissingDependency,
    NotFound,
    SchemaMismatch,
    SensekitError,
    StoreError,
    TeacherMismatch,
)
from .records import Context, Neighbor, Relation, Sense, StoreInfo, TokenInfo
from .store import SCHEMA_VERSION, SenseStore, open_store

__version__ = "0.1.0"

__all__ = [
    "SenseStore",
    "open_store",
    "SCHEMA_VERSION",
    "__version__",
    "Context",
    "Neighbor",
    "Relation",
    "Sense",
    "StoreInfo",
    "TokenInfo",
    "SensekitError",
    "NotFound",
    "InputError",
    "StoreError",
    "SchemaMismatch",
    "IndexMismatch",
    "TeacherMismatch",
    "MissingDependency",
]
