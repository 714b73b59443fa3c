"""The one open store behind `sensekit serve`, reopened when the bundle at its path is replaced.

Requests run side by side: each pins the open version for as long as it reads it (`run`, `cached`), and
the store gives every thread its own DuckDB cursor. Before pinning, the holder checks `store.changed()`
(one stat): when a rebuild or `relations add` replaced the bundle, it waits for the requests still
reading the old version, opens the new one, and only then closes the old one (two versions are in memory
for the length of one open; the wait is one request long).

A replacement that cannot be opened (moved away, incomplete, a corrupt file: any StoreError) leaves the
last good version open and served: `replacement_error` says why, the log says it once, and the bundle is
tried again only when another one is put at the path (its store.duckdb is another file), never once a
request. Putting the served version back at the path clears the error.

Answers are cached per version (an LRU keyed by the request), so a version never serves another's data.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Hashable, TypeVar

from ..errors import StoreError
from ..fs import DB_FILE

__all__ = ["StoreHolder"]

T = TypeVar("T")
log = logging.getLogger("sensekit.serve")
_NO_FAILURE = object()  # `_failed_bundle` while no replacement has failed to open


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
        # Why the bundle now at the path could not be opened (None: the open version is the path's), and
        # which bundle that was: it is not tried again until another one is put there.
        self.replacement_error: str | None = None
        self._failed_bundle: Any = _NO_FAILURE
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

    def _bundle(self) -> tuple[int, int, int, int] | None:
        """The identity of the bundle at the path now (its store.duckdb file), None when there is none."""
        try:
            st = os.stat(self.path / DB_FILE)
        except OSError:
            return None
        return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns

    def _replaced(self, store) -> bool:
        """Whether `store` should give way to the bundle at the path: that bundle is another one, and not the
        one that already failed to open."""
        if not store.changed():
            if self.replacement_error is not None:  # the served version was put back at the path
                self.replacement_error, self._failed_bundle = None, _NO_FAILURE
                log.info("the store at %s is again the version served (%s)", self.path, self.version)
            return False
        return self._bundle() != self._failed_bundle

    @property
    def version(self) -> str:
        """A short id of the open version: its content fingerprint, else its file identity."""
        store = self.store  # read once: another thread may swap it
        if store is None:
            return "closed"
        fp = store.meta.get("content_sha256")
        return fp[:12] if fp else "%x-%x" % store._version

    def _pin(self):
        """(store, generation) of the current version, counted as read until `_unpin()`; the bundle is
        reopened first when it was replaced (and the replacement opens)."""
        store = self.store
        current = store is not None and not self._replaced(store)  # the stat outside the lock every request takes
        with self._state:
            while True:
                while self._swapping:
                    self._state.wait()
                if current and self.store is store:
                    self._readers += 1
                    return store, self.generation
                store = self.store
                current = store is not None and not self._replaced(store)
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
                store = self.store
                current = True  # the new version, or the last good one when the new one failed to open

    def _unpin(self) -> None:
        with self._state:
            self._readers -= 1
            if not self._readers:
                self._state.notify_all()

    def _reopen(self) -> None:
        """Open the bundle at the path, then close the replaced version. Called with the state held and no
        readers. When the bundle cannot be opened, the replaced version stays open and served."""
        bundle = self._bundle()
        try:
            new = self._open()
        except StoreError as exc:
            if self.store is None:  # nothing to fall back on (closed)
                raise
            error = " ".join(str(exc).split())
            if bundle != self._failed_bundle or error != self.replacement_error:
                log.warning(
                    "the store at %s was replaced by one that cannot be opened (%s); still serving version %s",
                    self.path,
                    error,
                    self.version,
                )
            self.replacement_error, self._failed_bundle = error, bundle
            return
        old, self.store = self.store, new
        if old is not None:
            old.close()
        self.generation += 1
        with self._cache_lock:
            self._cache.clear()
        self.extras = {}
        self.replacement_error, self._failed_bundle = None, _NO_FAILURE
        log.info("the store at %s was replaced: serving version %s", self.path, self.version)

    def run(self, fn: Callable[[Any], T]) -> T:
        """fn(store) on the current version."""
        store, _ = self._pin()
        try:
            return fn(store)
        finally:
            self._unpin()

    def lookup(self, key: Hashable) -> tuple[Any, str] | None:
        """(value, version) when the open, current version's answer to `key` is cached, else None.
        Never reads the store or reopens it: cheap enough for the event loop's thread."""
        store = self.store
        if store is None or self._replaced(store):
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
