"""Words to the teacher's tokens, and span clouds for multi-token words (docs/method.md section 1, step 5).

Words are tokenized with a leading space and no special tokens, exactly as the store does.
A *head* must be one token and at least `head_min_chars` characters long; a *related*
word may have 1 to `max_span_tokens` tokens.

A multi-token word u_1 ... u_m gets a **span cloud** of K rows by iterative nearest-neighbour
alignment over the token senses D(u):

    A_1 = the first K senses of u_1 (fewer when u_1 has fewer senses)
    for j = 2..m:  M = mean(A_1, ..., A_{j-1});  A_j[r] = argmin_{s in D(u_j)} ||M[r] - s||_2
    cloud = mean(A_1, ..., A_m)

It is computed for all spans at once with numpy: spans are processed in chunks, the
candidate senses of a chunk are gathered into a padded [S, k_max, d] block, and each
alignment step is one batched matrix product. A span one of whose tokens has no senses
gets no cloud.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np

__all__ = ["tokenize_words", "is_head", "is_related", "SenseTable", "span_clouds"]


def tokenize_words(tokenizer, words: Sequence[str], batch: int = 50_000) -> list[tuple[int, ...]]:
    """Token ids of each word as ' word' (no special tokens), in order. `tokenizer` is a
    `tokenizers.Tokenizer`."""
    out: list[tuple[int, ...]] = []
    for i in range(0, len(words), batch):
        encs = tokenizer.encode_batch([" " + w for w in words[i : i + batch]], add_special_tokens=False)
        out.extend(tuple(e.ids) for e in encs)
    return out


def is_head(word: str, ids: Sequence[int], head_min_chars: int = 3) -> bool:
    return len(ids) == 1 and len(word) >= head_min_chars


def is_related(ids: Sequence[int], max_span_tokens: int = 3) -> bool:
    return 1 <= len(ids) <= max_span_tokens


class SenseTable:
    """The token senses of a store, grouped by token: rows of `embedding` sorted by
    (token_id, sense_index), with per-token `start` and `count` (0 for tokens without senses)."""

    def __init__(self, token_id: np.ndarray, sense_index: np.ndarray, embedding: np.ndarray) -> None:
        token_id = np.asarray(token_id, np.int64)
        keep = token_id >= 0
        order = np.lexsort((np.asarray(sense_index)[keep], token_id[keep]))
        self.token_id = token_id[keep][order]
        self.embedding = np.ascontiguousarray(np.asarray(embedding, np.float32)[keep][order])
        self.dim = self.embedding.shape[1] if self.embedding.ndim == 2 else 0
        self.sqnorm = (
            np.einsum("nd,nd->n", self.embedding, self.embedding) if len(self.embedding) else np.zeros(0, np.float32)
        )
        size = int(self.token_id.max()) + 1 if len(self.token_id) else 0
        self.count = np.bincount(self.token_id, minlength=size).astype(np.int64)
        self.start = np.zeros(size, np.int64)
        if size:
            self.start[1:] = np.cumsum(self.count)[:-1]

    def senses_of(self, token: int) -> int:
        return int(self.count[token]) if 0 <= token < len(self.count) else 0

    def has_senses(self, tokens: Iterable[int]) -> bool:
        return all(self.senses_of(t) > 0 for t in tokens)

    @property
    def k_max(self) -> int:
        return int(self.count.max()) if len(self.count) else 0


def _slots(table: SenseTable, tokens: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers of the senses of `tokens` [S] padded to [S, width] (0 where padded), and the mask."""
    cnt = table.count[tokens]
    slot = np.arange(width)
    mask = slot[None, :] < cnt[:, None]
    return np.where(mask, table.start[tokens][:, None] + slot[None, :], 0), mask


def aligned_cloud(
    table: SenseTable, toks: np.ndarray, first_width: int, width_of: Callable[[np.ndarray], int]
) -> tuple[np.ndarray, np.ndarray]:
    """The cloud of a chunk of spans of one length m, toks [S, m]: row r starts at the first token's r-th
    sense and adds, token by token, the next token's sense nearest the running mean; the row is their mean.
    `first_width` rows per span; `width_of(column)` the sense slots read for a later token's column [S].
    -> (cloud [S, first_width, d], valid [S, first_width])."""
    m = toks.shape[1]
    rows1, valid = _slots(table, toks[:, 0], first_width)  # [S, K]
    total = table.embedding[rows1]  # A_1 [S, K, d] (a fresh array: accumulated in place)
    for j in range(1, m):  # per token of the span (m is 2-4): each step is batched over the chunk
        M = total / np.float32(j)  # mean of the aligned rows so far [S, K, d]
        rows, cmask = _slots(table, toks[:, j], width_of(toks[:, j]))  # senses of u_j [S, k]
        C = table.embedding[rows]  # [S, k, d]
        # ||M - C||^2 = |M|^2 - 2 M.C + |C|^2, and |M|^2 does not change the argmin.
        d2 = np.matmul(M, C.transpose(0, 2, 1))  # [S, K, k]
        d2 *= -2.0
        d2 += np.where(cmask, table.sqnorm[rows], np.inf)[:, None, :]
        nearest = d2.argmin(-1)  # [S, K]
        total += table.embedding[np.take_along_axis(rows, nearest, axis=1)]  # A_j
    return total / np.float32(m), valid


def span_clouds(
    table: SenseTable, spans: Sequence[Sequence[int]], rows: int | None = None, chunk_bytes: int = 256 << 20
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Span clouds of `spans` (token-id sequences of length >= 2 whose tokens all have senses).

    Returns (span_index [n], row [n], embedding [n, d]): the cloud rows of span
    `spans[span_index]`, numbered 0..K-1 by `row`. `rows` is K (default: the store's k, the
    largest number of senses of a token); a span whose first token has fewer senses gets
    that many rows.
    """
    k_max = table.k_max
    K = int(rows) if rows else k_max
    d = table.dim
    out_span, out_row, out_emb = [], [], []
    by_len: dict[int, list[int]] = {}
    for i, s in enumerate(spans):
        if len(s) >= 2 and table.has_senses(s):
            by_len.setdefault(len(s), []).append(i)
    per_span = max(1, (K + k_max) * d * 4 * 3)
    step = max(1, chunk_bytes // per_span)
    for _, members in sorted(by_len.items()):  # by span length
        toks = np.asarray([spans[i] for i in members], np.int64)  # [S_all, m], m the span length
        # by the first token's sense count: each chunk pads to its own widths, so the few tokens with dozens
        # of senses (a linked view: one per synset) do not pad the thousands with two or three
        order = np.argsort(table.count[toks[:, 0]], kind="stable")
        ids, toks = np.asarray(members, np.int64)[order], toks[order]
        for lo in range(0, len(ids), step):
            t = toks[lo : lo + step]
            cloud, valid = aligned_cloud(
                table, t, min(K, int(table.count[t[:, 0]].max())), lambda col: int(table.count[col].max())
            )  # [S, K_c, d], [S, K_c]
            s_idx, r_idx = np.nonzero(valid)
            out_span.append(ids[lo : lo + step][s_idx])
            out_row.append(r_idx)
            out_emb.append(cloud[s_idx, r_idx])
    if not out_span:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, d), np.float32)
    span_index, row = np.concatenate(out_span), np.concatenate(out_row).astype(np.int64)
    # back to (span length, span, row) order, whatever order the chunks ran in
    lengths = np.asarray([len(x) for x in spans], np.int64)  # [n spans]
    order = np.lexsort((row, span_index, lengths[span_index]))
    return span_index[order], row[order], np.ascontiguousarray(np.concatenate(out_emb)[order], dtype=np.float32)
