"""Frozen record types returned by the query API. Plain data: no numpy in their fields'
public contract except `Sense.embedding`, a read-only float32 vector."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TokenInfo:
    token_id: int
    text: str
    occurrences: int  # 0 when the token never occurred as a key in the corpus
    n_senses: int


@dataclass(frozen=True)
class Context:
    rank: int
    doc_id: str
    char_start: int
    char_end: int
    snippet: str
    mark_start: int
    mark_end: int
    distance: float

    def marked(self, left: str = "[[", right: str = "]]") -> str:
        """The snippet with the key token wrapped in markers."""
        s = self.snippet
        return s[: self.mark_start] + left + s[self.mark_start : self.mark_end] + right + s[self.mark_end :]


class ContextLoader:
    """The contexts of the senses one query returned, read together by `read` on the first use of any of
    them: a caller that wants only centroids pays no context query, one that reads them pays one."""

    def __init__(self, read: Callable[[], dict[int, tuple[Context, ...]]]) -> None:
        self._read: Callable[[], dict[int, tuple[Context, ...]]] | None = read
        self._by_sense: dict[int, tuple[Context, ...]] | None = None
        self._lock = threading.Lock()  # cached records are shared by `serve`'s threads

    def load(self) -> dict[int, tuple[Context, ...]]:
        if self._by_sense is None:
            with self._lock:
                if self._by_sense is None:
                    assert self._read is not None
                    self._by_sense, self._read = self._read(), None
        return self._by_sense

    def of(self, sense_id: int) -> tuple[Context, ...]:
        return self.load().get(sense_id, ())


class SenseContexts(Sequence[Context]):
    """A sense's contexts, most central first: a read-only sequence filled by its ContextLoader on first use."""

    __slots__ = ("_loader", "_sense_id")

    def __init__(self, loader: ContextLoader, sense_id: int) -> None:
        self._loader, self._sense_id = loader, sense_id

    def _items(self) -> tuple[Context, ...]:
        return self._loader.of(self._sense_id)

    def __getitem__(self, i):  # type: ignore[override]
        return self._items()[i]

    def __len__(self) -> int:
        return len(self._items())

    def __iter__(self) -> Iterator[Context]:
        return iter(self._items())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and tuple(self) == tuple(other)

    def __hash__(self) -> int:
        return hash(self._items())

    def __repr__(self) -> str:
        return repr(self._items())

    def __reduce__(self):  # pickled and deep-copied as the plain tuple: the copy needs no open store
        return (tuple, (self._items(),))


@dataclass(frozen=True)
class Sense:
    sense_id: int
    token_id: int | None  # set for a token's centroid
    span_id: int | None  # set for a span cloud row
    sense_index: int
    count: int
    text: str  # the token's (or span's) text
    embedding: np.ndarray = field(repr=False, compare=False)
    contexts: Sequence[Context] = ()  # read on first use (SenseContexts) when it comes from a store
    view: str = ""  # the name of the store view it belongs to (sensekit/view.py)
    # Optional labels (NULL in the store when unknown): a WordNet synset name such as 'bank.n.01' and its
    # gloss, the lemma the sense was linked through, and a short human label (for an induced sense, its
    # distinctive words).
    synset: str | None = None
    gloss: str | None = None
    lemma: str | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        # The vector may be a view into the store's in-memory table: writing it would corrupt later answers.
        if self.embedding is not None:  # neighbors() returns senses without their vector
            self.embedding.setflags(write=False)


@dataclass(frozen=True)
class Relation:
    head: str
    related: str
    kind: str  # 'syn' | 'ant'
    source: str
    derived: bool
    provenance: dict[str, Any]
    related_token_ids: tuple[int, ...]
    is_span: bool  # the related word is 2+ tokens (its senses, if any, are a span cloud)
    head_sense: int | None = None  # sense_index of the head's sense the related word is nearest to
    head_distance: float | None = None  # that cosine distance in the store's similarity space


@dataclass(frozen=True)
class Neighbor:
    sense: Sense
    distance: float  # in the index's space (cosine: 1 - cos)

    @property
    def text(self) -> str:
        return self.sense.text


@dataclass(frozen=True)
class StoreInfo:
    path: str
    schema_version: int
    provenance: dict[str, Any]
    counts: dict[str, int]
    index: dict[str, Any]
    space: dict[str, Any] = field(default_factory=dict)  # the similarity space: kind, components, dim
    views: dict[str, Any] = field(default_factory=dict)  # view -> senses, layer, index, space, default
