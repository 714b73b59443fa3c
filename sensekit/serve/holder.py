"""The one open store behind `sensekit serve`, reopened when the bundle at its path is replaced.

Every request goes through `StoreHolder.run(fn)`, which holds a lock while `fn(store)` runs: one
DuckDB connection (read-only) and one in-memory index, used by one thread at a time. Before each call
the holder checks `store.changed()` (one stat): when a rebuild or `relations add` replaced the bundle,
it opens the new version and drops the old one and its cache. While the new bundle cannot be opened
yet (moved away, half-renamed, or incomplete) the call raises `StoreChanged` ("store changed, reloading"), which
the app answers with 503 and Retry-After, and the next request tries again.

Answers are cached per version (an LRU keyed by the request), so a version never serves another's data.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Hashable, TypeVar

from ..errors import StoreError

__all__ = ["StoreHolder", "StoreChanged"]

T = TypeVar("T")
RETRY_S = 0.5  # how long a failed reopen is not retried (each request would otherwise pay an open)


class StoreChanged(StoreError):
    """The bundle was replaced and its new version cannot be opened yet."""


class StoreHolder:
    def __init__(self, path: str | Path, ef: int | None = None, cache_size: int = 512) -> None:
        self.path = Path(path)
        self.ef = ef
        self.cache_size = cache_size
        self.lock = threading.Lock()
        self.generation = 0  # bumped at every reopen
        self._cache: OrderedDict[Hashable, Any] = OrderedDict()
        self._failed_at = 0.0
        self.hits = self.misses = 0
        self.store = self._open()  # a missing or corrupt store fails here, at start, with StoreError
        self.extras: dict[str, Any] = {}  # per-version helpers (the type-ahead word list), dropped at reopen

    def _open(self):
        from ..store import open_store

        return open_store(self.path, ef=self.ef)

    @property
    def version(self) -> str:
        """A short id of the open version: its content fingerprint, else its file identity."""
        store = self.store  # read once: another thread may swap it
        if store is None:
            return "reloading"
        fp = store.meta.get("content_sha256")
        return fp[:12] if fp else "%x-%x" % store._version

    def _fresh(self):
        """The open store, reopened first when the bundle at the path was replaced. Called under the lock.

        The old version is closed before the new one opens: DuckDB keeps one database instance per path
        in a process, so a connection opened while the old one is still open would read the old file."""
        if self.store is not None and not self.store.changed():
            return self.store
        if self.store is not None:
            self.store.close()
            self.store = None
            self.generation += 1
            self._cache.clear()
            self.extras = {}
        elif time.monotonic() - self._failed_at < RETRY_S:
            raise StoreChanged("store changed, reloading; try again in a moment")
        try:
            self.store = self._open()
        except StoreError:
            self._failed_at = time.monotonic()
            raise StoreChanged("store changed, reloading; try again in a moment") from None
        return self.store

    def run(self, fn: Callable[[Any], T]) -> T:
        """fn(store) on the current version, under the lock."""
        with self.lock:
            return fn(self._fresh())

    def cached(self, key: Hashable, fn: Callable[[Any], T]) -> tuple[T, str]:
        """fn(store) on the current version, remembered per version; returns (value, version).
        Errors are not cached."""
        with self.lock:
            store = self._fresh()
            full = (self.generation, key)
            if full in self._cache:
                self._cache.move_to_end(full)
                self.hits += 1
                return self._cache[full], self.version
            self.misses += 1
            value = fn(store)
            self._cache[full] = value
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
            return value, self.version

    def extra(self, name: str, make: Callable[[Any], T]) -> T:
        """A per-version helper built once by make(store) (the type-ahead word list); call under run()."""
        if name not in self.extras:
            self.extras[name] = make(self.store)
        return self.extras[name]

    def close(self) -> None:
        with self.lock:
            if self.store is not None:
                self.store.close()
                self.store = None
