"""The store's token senses as one dense table, and the similarity space they are compared in.

Every metric that assigns a state to a sense, or compares two words' senses, goes through
`SenseTable`: token senses sorted by (token, sense index) with CSR offsets, so that a batch
of tokens becomes a padded [n, K, d] block with one fancy-index, never a loop per token.

`to_space(vectors [n, d]) -> [n, d']` is the similarity space. It defaults to the identity
(raw cosine, what the store's index uses); a de-biasing transform stored with the bundle can
be plugged in later without touching the metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["SenseTable", "identity", "unit", "Space"]

Space = Callable[[np.ndarray], np.ndarray]


def identity(vectors: np.ndarray) -> np.ndarray:
    return vectors


def unit(vectors: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to length 1 (float32); zero rows stay zero."""
    v = np.asarray(vectors, np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), eps)


@dataclass
class SenseTable:
    token_ids: np.ndarray  # [U] int64, sorted: the tokens that have senses
    indptr: np.ndarray  # [U + 1] int64: senses of token_ids[u] are rows indptr[u]:indptr[u+1]
    vectors: np.ndarray  # [S, d] float32, raw sense embeddings
    counts: np.ndarray  # [S] int64, samples assigned to each sense
    sense_ids: np.ndarray  # [S] int64
    owner: np.ndarray  # [S] int64, the token of each row

    @classmethod
    def from_store(cls, store) -> "SenseTable":
        """Token senses only (span clouds are derived from them and are not in the index)."""
        from .. import _sql

        m = store.sense_matrix()  # the store's default view (open_store(view=...); sensekit/view.py picks it)
        cols = store.con.execute(_sql.SENSE_COLUMNS).fetchnumpy()  # every view's rows, ORDER BY sense_id
        at = np.searchsorted(np.asarray(cols["sense_id"], np.int64), m["sense_id"])
        counts = np.asarray(cols["count"], np.int64)[at]
        keep = m["token_id"] >= 0
        return cls.from_arrays(
            m["token_id"][keep], m["sense_index"][keep], m["embedding"][keep], counts[keep], m["sense_id"][keep]
        )

    @classmethod
    def from_arrays(
        cls,
        owner: np.ndarray,
        sense_index: np.ndarray,
        vectors: np.ndarray,
        counts: np.ndarray,
        sense_ids: np.ndarray | None = None,
    ) -> "SenseTable":
        owner = np.asarray(owner, np.int64)
        order = np.lexsort((np.asarray(sense_index), owner))
        owner = owner[order]
        tokens, first = np.unique(owner, return_index=True)
        indptr = np.append(first, len(owner)).astype(np.int64)
        ids = np.arange(len(order), dtype=np.int64) if sense_ids is None else np.asarray(sense_ids, np.int64)[order]
        return cls(
            tokens,
            indptr,
            np.ascontiguousarray(np.asarray(vectors, np.float32)[order]),
            np.asarray(counts, np.int64)[order],
            ids,
            owner,
        )

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def in_space(self, to_space: Space) -> np.ndarray:
        """All sense vectors through `to_space` [S, d'], computed once per transform."""
        cache = self.__dict__.setdefault("_spaces", {})
        if to_space not in cache:
            cache[to_space] = np.asarray(to_space(self.vectors), np.float32)
        return cache[to_space]

    def rows_of(self, token_ids) -> np.ndarray:
        """[n] positions in `token_ids` of the given tokens, -1 for tokens without senses."""
        t = np.asarray(token_ids, np.int64)
        if len(self.token_ids) == 0:
            return np.full(len(t), -1, np.int64)
        pos = np.minimum(np.searchsorted(self.token_ids, t), len(self.token_ids) - 1)
        return np.where(self.token_ids[pos] == t, pos, -1)

    def n_senses(self, token_ids) -> np.ndarray:
        """[n] senses per token (0 when it has none)."""
        rows = self.rows_of(token_ids)
        n = self.indptr[rows + 1] - self.indptr[rows]
        return np.where(rows >= 0, n, 0)

    def padded(self, token_ids, to_space: Space = identity) -> tuple[np.ndarray, np.ndarray]:
        """-> (senses [n, K, d'] in `to_space`, mask [n, K] bool); K is the largest sense count among them."""
        rows = self.rows_of(token_ids)
        n_s = np.where(rows >= 0, self.indptr[rows + 1] - self.indptr[rows], 0)
        K = max(int(n_s.max()) if len(n_s) else 0, 1)
        mask = np.arange(K)[None, :] < n_s[:, None]  # [n, K]
        idx = np.where(mask, self.indptr[np.maximum(rows, 0)][:, None] + np.arange(K)[None, :], 0)
        space = self.in_space(to_space)
        block = space[idx] * mask[..., None]  # [n, K, d']
        return block, mask

    def probabilities(
        self, states: np.ndarray, token_ids, to_space: Space = identity, temperature: float = 0.1
    ) -> np.ndarray:
        """[n, K] each state's distribution over its token's senses: softmax of cosine / temperature (as
        `sensekit annotate` scores them); K the largest sense count among them, padding 0."""
        block, mask = self.padded(np.asarray(token_ids, np.int64), to_space)  # [n, K, d'], [n, K]
        q = unit(to_space(np.asarray(states, np.float32)))  # [n, d']
        logits = np.where(mask, np.einsum("nd,nkd->nk", q, unit(block)) / temperature, -np.inf)
        logits -= np.where(mask.any(1), logits.max(1), 0.0)[:, None]
        p = np.where(mask, np.exp(logits), 0.0)
        return p / np.maximum(p.sum(1, keepdims=True), 1e-30)

    def nearest(self, states: np.ndarray, token_ids, to_space: Space = identity, chunk: int = 2048) -> np.ndarray:
        """Index (within its token) of the sense nearest by cosine to each state [n, d]; -1 without senses."""
        token_ids = np.asarray(token_ids, np.int64)
        out = np.full(len(token_ids), -1, np.int64)
        for s in range(0, len(token_ids), chunk):  # chunks bound the [n, K, d] block
            block, mask = self.padded(token_ids[s : s + chunk], to_space)
            q = unit(to_space(np.asarray(states[s : s + chunk], np.float32)))  # [n, d']
            cos = np.einsum("nd,nkd->nk", q, unit(block))  # [n, K]
            cos = np.where(mask, cos, -np.inf)
            out[s : s + chunk] = np.where(mask.any(1), cos.argmax(1), -1)
        return out
