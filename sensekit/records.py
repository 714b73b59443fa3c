"""Frozen record types returned by the query API. Plain data: no numpy in their fields'
public contract except `Sense.embedding`, a read-only float32 vector."""

from __future__ import annotations

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


@dataclass(frozen=True)
class Sense:
    sense_id: int
    token_id: int | None  # set for a token's centroid
    span_id: int | None  # set for a span cloud row
    sense_index: int
    count: int
    text: str  # the token's (or span's) text
    embedding: np.ndarray = field(repr=False, compare=False)
    contexts: tuple[Context, ...] = ()
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
