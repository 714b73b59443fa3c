"""Store views: one sample seen one way. A view is a record in `meta.views` and an object on an open store.

A store holds one or more views of the same harvested samples. Each view has its own sense rows, contexts,
similarity space and HNSW index; `ViewRecord` is what the bundle records of it (once, in `meta.views`), and
`StoreView` is a view of an open `SenseStore` with its space and index, answering queries in that view.

Adding a view is one more `ViewRecord`: the writer writes every view the same way (`add_senses(view=...)`),
and the store reads every view the same way. The two views the builder writes are named here and only here,
with `default_view`, the one place that picks the view a store answers from when none is asked for.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:  # the store imports this module: nothing here imports it back
    from .records import Neighbor, Relation, Sense, TokenInfo
    from .space import SimilaritySpace

__all__ = ["ViewRecord", "StoreView", "LOSS", "LEXICAL", "STANDARD_VIEWS", "default_view", "new_view", "FINAL_NORM"]

FINAL_NORM = "final_norm"  # the layer of a view read after the teacher's final norm


@dataclass(frozen=True)
class ViewRecord:
    """What a store records of one view (`meta.views`, one JSON object per view).

    layer: `FINAL_NORM` or the hidden-states index N whose states the view holds; key_mode: where a state is
    filed, 'next' (under the next token, what distill reads) or 'input' (under the key token itself).
    The writer fills index_file, dim, dtype, space and index when it commits.
    """

    name: str
    layer: str | int | None
    key_mode: str
    index_file: str = ""
    dim: int = 0
    dtype: str = "float32"
    space: dict[str, Any] = field(default_factory=dict)  # SimilaritySpace.describe()
    index: dict[str, Any] = field(default_factory=dict)  # sensekit/index.py index_record

    @property
    def hidden_layer(self) -> int | None:
        """The hidden-states index of the view's states; None for the post-norm final state."""
        return None if self.layer in (None, FINAL_NORM) else int(self.layer)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> "ViewRecord":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in value.items() if k in known})


# The builder's two views of one forward pass (docs/store.md, "Views").
# post-norm states keyed by the next token: what distill reads
LOSS = ViewRecord("loss", FINAL_NORM, "next", index_file="senses.hnsw")
# a middle layer's state at the key token itself: what people look at (its layer is set by the build)
LEXICAL = ViewRecord("lexical", None, "input", index_file="senses.lexical.hnsw")
STANDARD_VIEWS = {v.name: v for v in (LOSS, LEXICAL)}


def default_view(names: Sequence[str]) -> str:
    """The view a store answers from when none is asked for: the lexical view when the store holds one, else
    the first view it records."""
    return LEXICAL.name if LEXICAL.name in names else names[0]


def new_view(name: str) -> ViewRecord:
    """The record of a view the writer is given by name only: a standard one, else a new view keyed by the
    key token itself (the writer's caller may declare another layer and key mode with `declare_view`)."""
    return STANDARD_VIEWS.get(name) or ViewRecord(name, None, "input", index_file=f"senses.{name}.hnsw")


class StoreView:
    """One view of an open store: its record, similarity space and HNSW index, and every query in that view.

    Obtained from `store.view(name)` or `store.views[name]`; it shares the store's connection and tables.
    """

    def __init__(self, store, record: ViewRecord, code: int, space: "SimilaritySpace", index) -> None:
        # store: the open SenseStore (sensekit.store imports this module; no import back, not even for typing)
        self.store, self.record, self.code = store, record, code
        self.space = space  # every similarity of this view is measured in it; its index was built in it
        self.index = index  # hnswlib index over its token senses; None when it has none

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def layer(self):
        return self.record.layer

    @property
    def key_mode(self) -> str:
        return self.record.key_mode

    @property
    def hidden_layer(self) -> int | None:
        """The hidden-states index of the view's states; None for the post-norm final state."""
        return self.record.hidden_layer

    @property
    def dim(self) -> int:
        return self.store.dim

    @property
    def dtype(self) -> str:
        return self.record.dtype

    @property
    def index_file_name(self) -> str:
        """The bundle's file of the view's HNSW index."""
        return self.record.index_file

    def __repr__(self) -> str:
        return f"StoreView({self.name!r}, layer={self.layer!r}, key_mode={self.key_mode!r})"

    # -- queries in this view (the store's implementation, with this view) ------------------
    def senses(self, word: str) -> list["Sense"]:
        return self.store.senses(word, view=self.name)

    def sense_ids(self, word: str) -> list[int]:
        return self.store.sense_ids(word, view=self.name)

    def senses_of_token(self, token_id: int) -> list["Sense"]:
        return self.store.senses_of_token(token_id, view=self.name)

    def tokens(self, word: str) -> list["TokenInfo"]:
        return self.store.tokens(word, view=self.name)

    def neighbors(self, query: str | int | np.ndarray, k: int = 10) -> list["Neighbor"]:
        return self.store.neighbors(query, k, view=self.name)

    def relations(self, word: str, kind: str | None = None, source: str | None = None) -> list["Relation"]:
        return self.store.relations(word, kind, source, view=self.name)

    def sense_matrix(self) -> dict[str, np.ndarray]:
        return self.store.sense_matrix(view=self.name)

    def sense_counts(self) -> np.ndarray:
        return self.store.sense_counts(view=self.name)

    def describe(self) -> dict[str, Any]:
        """What `sensekit info` shows of the view."""
        return {
            "senses": int(len(self.store._indexed_positions(self.code))),
            "layer": self.layer,
            "key_mode": self.key_mode,
            "dtype": self.dtype,
            "index_file": self.record.index_file,
            "index": dict(self.record.index),
            "space": self.space.describe(),
            "default": self.name == self.store.default_view,
        }
