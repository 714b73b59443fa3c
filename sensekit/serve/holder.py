"""The one open store behind `sensekit serve`, reopened when the bundle at its path is replaced.

Requests run side by side: each pins the open version for as long as it reads it (`run`, `cached`), and
the store gives every thread its own DuckDB cursor. Before pinning, the holder checks `store.changed()`
(one stat): when a rebuild or `relations add` replaced the bundle, it waits for the requests still
reading the old version, closes it, and opens the new one: one version in memory at a time (its HNSW
indexes are the bulk of it), and the wait is one request long. While the new bundle cannot be opened yet (moved away, half-renamed, or incomplete) the call
raises `StoreChanged` ("store changed, reloading"), which the app answers with 503 and Retry-After,
and the next request tries again.

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
        self._state = threading.Condition()  # guards store, generation, readers, swapping
        self._readers = 0  # requests reading the open version now
        self._swapping = False  # a reopen waits for the readers, and new requests wait for it
        self.generation = 0  # bumped at every reopen
        self._cache: OrderedDict[Hashable, Any] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._failed_at = 0.0
        self.hits = self.misses = 0
        self.store = self._open()  # a missing or corrupt store fails here, at start, with StoreError
        self.extras: dict[str, Any] = {}  # per-version helpers (the type-ahead word list), dropped at reopen
        self._extras_lock = threading.Lock()

    def _open(self):
        from ..store import open_store

        store = open_store(self.path, ef=self.ef)
        try:  # read the tokenizer now: once the bundle is replaced, the file at the path is the next version's
            _ = store.tokenizer
        except StoreError:
            store.close()
            raise
        return store

    @property
    def version(self) -> str:
        """A short id of the open version: its content fingerprint, else its file identity."""
        store = self.store  # read once: another thread may swap it
        if store is None:
            return "reloading"
        fp = store.meta.get("content_sha256")
        return fp[:12] if fp else "%x-%x" % store._version

    def _pin(self):
        """(store, generation) of the current version, counted as read until `_unpin()`; the bundle is
        reopened first when it was replaced. StoreChanged while the new one cannot be opened yet."""
        store = self.store
        current = store is not None and not store.changed()  # the stat outside the lock every request takes
        with self._state:
            while True:
                while self._swapping:
                    self._state.wait()
                if current and self.store is store:
                    self._readers += 1
                    return store, self.generation
                store = self.store
                current = store is not None and not store.changed()
                if current:
                    continue
                self._swapping = True
                try:
                    while self._readers:  # requests still reading the old version finish first
                        self._state.wait()
                    self._reopen()
                finally:
                    self._swapping = False
                    self._state.notify_all()

    def _unpin(self) -> None:
        with self._state:
            self._readers -= 1
            if not self._readers:
                self._state.notify_all()

    def _reopen(self) -> None:
        """Close the replaced version, then open the new one. Called with the state held and no readers."""
        if self.store is not None:
            self.store.close()
            self.store = None
            self.generation += 1
            with self._cache_lock:
                self._cache.clear()
            self.extras = {}
        elif time.monotonic() - self._failed_at < RETRY_S:
            raise StoreChanged("store changed, reloading; try again in a moment")
        try:
            self.store = self._open()
        except StoreError:
            self._failed_at = time.monotonic()
            raise StoreChanged("store changed, reloading; try again in a moment") from None

    def run(self, fn: Callable[[Any], T]) -> T:
        """fn(store) on the current version."""
        store, _ = self._pin()
        try:
            return fn(store)
        finally:
            self._unpin()

    def lookup(self, key: Hashable) -> tuple[Any, str] | None:
        """(value, version) when the open, unchanged version's answer to `key` is cached, else None.
        Never reads the store or reopens it: cheap enough for the event loop's thread."""
        store = self.store
        if store is None or store.changed():
            return None
        with self._state:
            if self._swapping or self.store is not store:
                return None
            full, version = (self.generation, key), self.version  # the pair of one version
        with self._cache_lock:
            if full not in self._cache:  # (a reopen since clears the cache: an old answer is never found)
                return None
            self._cache.move_to_end(full)
            self.hits += 1
            return self._cache[full], version

    def cached(self, key: Hashable, fn: Callable[[Any], T]) -> tuple[T, str]:
        """fn(store) on the current version, remembered per version; returns (value, version).
        Errors are not cached. Two requests for the same new key may both compute it."""
        store, generation = self._pin()
        try:
            full = (generation, key)
            with self._cache_lock:
                if full in self._cache:
                    self._cache.move_to_end(full)
                    self.hits += 1
                    return self._cache[full], self.version
                self.misses += 1
            value = fn(store)
            with self._cache_lock:
                self._cache[full] = value
                if len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
            return value, self.version
        finally:
            self._unpin()

    def extra(self, name: str, make: Callable[[Any], T]) -> T:
        """A per-version helper built once by make(store) (the type-ahead word list); call under run()."""
        with self._extras_lock:
            if name not in self.extras:
                self.extras[name] = make(self.store)
            return self.extras[name]

    def close(self) -> None:
        with self._state:
            while self._readers:
                self._state.wait()
            if self.store is not None:
                self.store.close()
                self.store = None
