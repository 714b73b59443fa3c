"""Harvest: the batch stream over a corpus and the key positions of each teacher forward.

`BatchStream` turns documents into padded batches deterministically:
documents (this rank's shard: ordinal % world == rank) are tokenized in groups into windows;
windows are buffered (up to 32 batches' worth of tokens, always whole documents), sorted by length so
batches carry little padding, and cut into batches. A batch's `state` says where to restart
the stream after it (documents read before its buffer, batches of the buffer done, tokens
before the buffer), which is all `--resume` needs.

`key_positions` maps one forward pass to the (key token, vector, origin) triples of
docs/method.md 1.1, with tensor ops only:
- key mode `next`: position t is filed under x_{t+1} (gold) or the teacher's argmax (pred);
- key mode `input`: position t is filed under x_t.
Padding and special tokens are never keys, and a position whose input is a special token
(a BOS prefix) is never a source in next mode: its state does not depend on the text.
A source must also have read at least `min_context` real tokens before its key token: the state
after `[BOS, "a"]` is the same whatever comes next, so with little context it would be filed
as a "sense" of hundreds of different tokens. Positions that a document's previous window
already used (the repeated overlap of a continuation window) are skipped.

`harvest_positions` does the same and also returns each position's *lexical* vector: the
residual-stream state at layer N (`hidden_states[N]` of an HF forward; sensekit/model/lexical.py)
at the key token's own position (key mode `next`: the gold next token's position, t + 1;
`input`: t), captured by a forward hook in the SAME forward pass: no second teacher pass.
"""

from __future__ import annotations

import queue
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from ..errors import InputError
from .corpus import Window, pack_windows

__all__ = ["Batch", "BatchStream", "key_positions", "harvest_positions", "capture_layer", "layer_forward", "prefetch"]

GROUP_CHARS = 400_000  # text tokenized per group of documents
MAX_ROWS_FACTOR = 32  # short windows: at most 32 x batch_size rows per forward
# a batch ends before a window shorter than (1 - PAD_SLACK) x its first (longest) one, once it holds
# MIN_BATCH_TOKENS: the default corpus's short documents padded 1.227 tokens per real one without it, 1.068
# with it (benchmarks/demo_stream.py), for batches of >= 1,024 tokens, still large enough for the CPU
PAD_SLACK = 0.1
MIN_BATCH_TOKENS = 1024
TEXT_CACHE_CHARS = 64_000_000  # document texts kept in memory for the contexts (else re-read at the end)


@dataclass
class Batch:
    ids: torch.Tensor  # [B, T] int64, right-padded with pad_id
    mask: torch.Tensor  # [B, T] bool, real tokens
    offsets: np.ndarray  # [B, T, 2] int32 char span in the doc (-1: added special / padding)
    docs: np.ndarray  # [B] int64 document ordinal of each row
    n_tokens: int  # real tokens in the batch
    state: dict = field(default_factory=dict)  # stream position *after* this batch
    repeated: np.ndarray | None = None  # [B] int64 body tokens repeated from the doc's previous window


class BatchStream:
    """Deterministic batches for one rank. `docs(select)` returns a fresh iterable of (doc_id, text);
    `select(ordinal)` says which documents this rank needs (others may come back as "")."""

    def __init__(
        self,
        docs: Callable[..., Iterable[tuple[str, str]]],
        tokenizer,
        *,
        seq_len: int,
        batch_size: int,
        overlap: int,
        prefix: list[int],
        pad_id: int,
        max_tokens: int | None = None,
        rank: int = 0,
        world: int = 1,
        buffer_batches: int = 32,
        start: dict | None = None,
    ) -> None:
        self.docs, self.tok = docs, tokenizer
        self.seq_len, self.batch_size, self.overlap = seq_len, batch_size, overlap
        self.prefix, self.pad_id = prefix, pad_id
        self.max_tokens, self.rank, self.world = max_tokens, rank, world
        self.buffer_batches = buffer_batches
        self.texts: dict[int, tuple[str, str]] = {}  # (doc_id, text) of this rank's first documents, for contexts
        self.text_budget = TEXT_CACHE_CHARS
        self.start = dict(start or {"docs": 0, "batch": 0, "tokens": 0})

    def __iter__(self) -> Iterator[Batch]:
        skip_docs, skip_batches, tokens = self.start["docs"], self.start["batch"], self.start["tokens"]
        buf_index = self.start.get("buf", 0)
        # documents of other ranks, or already done before a resume, are read but not processed
        doc_iter = iter(self.docs(lambda o: o >= skip_docs and o % self.world == self.rank))
        ordinal = 0
        while ordinal < skip_docs:  # resume: re-read, do not tokenize, the documents already done
            if next(doc_iter, None) is None:
                break
            ordinal += 1
        exhausted = False
        while not exhausted:
            if self.max_tokens is not None and tokens >= self.max_tokens:
                return
            buf_docs, buf_tokens = ordinal, tokens
            # buffers hold 2, 4, 8, ... up to buffer_batches batches' worth of tokens: the first forward
            # starts early, later buffers are long enough that sorting by length leaves little padding
            buffer_tokens = self.batch_size * self.seq_len * min(self.buffer_batches, 2 ** (buf_index + 1))
            buffered = 0
            windows: list[Window] = []
            group: list[tuple[int, str]] = []
            budget = None if self.max_tokens is None else self.max_tokens - tokens
            while buffered < buffer_tokens and (budget is None or budget > 0):
                group.clear()
                chars = 0
                # read a group of whole documents: up to 64, or about enough text for the token budget
                # (~4 chars/token; never read far past a --max-tokens cap: parsing wiki markup is not free)
                char_cap = GROUP_CHARS if budget is None else min(GROUP_CHARS, 8 * budget + 1000)
                while len(group) < 64 and chars < char_cap:
                    item = next(doc_iter, None)
                    if item is None:
                        exhausted = True
                        break
                    if ordinal % self.world == self.rank and item[1].strip():
                        group.append((ordinal, item[1]))
                        chars += len(item[1])
                        if len(item[1]) <= self.text_budget:  # keep early texts: contexts need no second read
                            self.texts[ordinal] = item
                            self.text_budget -= len(item[1])
                        else:
                            self.text_budget = 0
                    ordinal += 1
                for w in pack_windows(group, self.tok, self.seq_len, self.overlap, self.prefix, batch_docs=64):
                    if budget is not None:
                        if budget <= len(self.prefix) + 1:
                            budget = 0
                            break
                        if len(w.ids) > budget:
                            w = Window(w.ids[:budget], w.offsets[:budget], w.doc, w.repeated)
                        budget -= len(w.ids)
                    windows.append(w)
                    buffered += len(w.ids)
                if exhausted:
                    break
            if not windows:
                continue
            windows.sort(key=lambda w: -len(w.ids))  # stable: equal lengths keep stream order
            # a batch holds batch_size windows of seq_len tokens, or more shorter ones (short documents,
            # e.g. glosses) up to the same padded token budget: fewer, fuller forward passes
            budget_tokens = self.batch_size * self.seq_len
            bounds = batch_bounds(
                np.asarray([len(w.ids) for w in windows]), budget_tokens, MAX_ROWS_FACTOR * self.batch_size
            )
            running = buf_tokens
            for b, (lo, hi) in enumerate(bounds):
                chunk = windows[lo:hi]
                n_tok = sum(len(w.ids) for w in chunk)
                running += n_tok
                if buf_docs == skip_docs and b < skip_batches:
                    continue  # resume inside this buffer
                yield self._collate(
                    chunk,
                    {"docs": buf_docs, "buf": buf_index, "batch": b + 1, "tokens": buf_tokens, "tokens_done": running},
                )
            # next buffer starts at a document boundary
            tokens = running
            skip_batches = 0
            buf_index += 1

    def _collate(self, chunk: list[Window], state: dict) -> Batch:
        B, T = len(chunk), max(len(w.ids) for w in chunk)
        ids = np.full((B, T), self.pad_id, np.int64)
        mask = np.zeros((B, T), bool)
        offsets = np.full((B, T, 2), -1, np.int32)
        for i, w in enumerate(chunk):  # per row, not per token
            n = len(w.ids)
            ids[i, :n], mask[i, :n], offsets[i, :n] = w.ids, True, w.offsets
        docs = np.asarray([w.doc for w in chunk], np.int64)
        repeated = np.asarray([w.repeated for w in chunk], np.int64)
        return Batch(torch.from_numpy(ids), torch.from_numpy(mask), offsets, docs, int(mask.sum()), state, repeated)


def batch_bounds(lengths: np.ndarray, budget_tokens: int, max_rows: int) -> list[tuple[int, int]]:
    """(start, stop) of each batch over windows sorted longest first, lengths [N]: up to `budget_tokens`
    padded tokens and `max_rows` rows, ended before a window more than PAD_SLACK shorter than the batch's first
    once the batch holds MIN_BATCH_TOKENS."""
    bounds, i, n = [], 0, len(lengths)
    while i < n:  # per batch
        width = int(lengths[i])
        stop = min(n, i + max(1, min(budget_tokens // width, max_rows)))
        full = i + -(-MIN_BATCH_TOKENS // width)  # rows that make MIN_BATCH_TOKENS
        # the first window past `full` shorter than the slack allows ends the batch (lengths fall monotonically)
        cut = full + int(np.searchsorted(-lengths[full:stop], -(1 - PAD_SLACK) * width, side="right"))
        stop = min(stop, max(cut, i + 1))
        bounds.append((i, stop))
        i = stop
    return bounds


def source_allowed(batch: Batch, special: torch.Tensor, *, key_mode: str, min_context: int) -> torch.Tensor:
    """[B, T] bool on `special`'s device: positions with enough context, not used by a previous window.

    Context = real tokens read before the key token: for next, x_1..x_t (the body position + 1);
    for input, the tokens before x_t (the body position). Body positions count from the first
    token after the special prefix, which is all special tokens at the start of a row.
    """
    dev = special.device
    ids, mask = batch.ids.to(dev), batch.mask.to(dev)  # [B, T]
    B, T = ids.shape
    real = ~special[ids] & mask  # [B, T]
    prefix = torch.cumprod((~real & mask).long(), dim=1).sum(1)  # [B] leading specials (the BOS prefix)
    body_pos = torch.arange(T, device=dev)[None, :] - prefix[:, None]  # [B, T] 0 at the first real token
    repeated = (
        torch.zeros(B, dtype=torch.long, device=dev)
        if batch.repeated is None
        else torch.as_tensor(batch.repeated, device=dev)
    )
    from .context_rule import has_context  # the one --min-context rule (eval's states.locate uses it too)

    return has_context(body_pos, key_mode, min_context, repeated[:, None])  # [B, T]


@contextmanager
def capture_layer(teacher, layer: int | None):
    """While active, each forward of `teacher` leaves `hidden_states[layer]` [B, T, d] in the yielded
    list (cleared by the caller): layer 0 = the embedding output, N in 1..L = decoder layer N-1's output.
    For N = L the post-norm final state is used instead (what HF returns last); None captures nothing."""
    from ..model.families import _first_output
    from ..model.layers import layers_of

    captured: list[torch.Tensor] = []
    if layer is None:
        yield captured
        return
    _, _, layers = layers_of(teacher.model)
    if layer >= len(layers):  # hidden_states[L]: the final norm's output, = final_hidden itself
        yield captured
        return
    module = teacher.model.get_input_embeddings() if layer == 0 else layers[layer - 1]
    handle = module.register_forward_hook(lambda mod, args, output: captured.append(_first_output(output)))
    try:
        yield captured
    finally:
        handle.remove()


def layer_forward(teacher, layer: int | None) -> Callable:
    """forward(ids [B, T], mask [B, T]) -> hidden_states[layer] [B, T, d] of one teacher forward (the final,
    post-norm state for None or layer L): what eval uses to query a lexical view at its own layer."""

    def forward(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with capture_layer(teacher, layer) as captured:
            g = teacher.final_hidden(ids, mask)
        return captured[-1] if captured else g

    return forward


def key_positions(
    teacher, batch: Batch, *, key_mode: str, next_token: str, special: torch.Tensor, min_context: int = 0
) -> tuple[np.ndarray, torch.Tensor, np.ndarray]:
    """One forward pass -> (keys [P] int64 numpy, vectors [P, d] on the teacher's device, meta [P, 3] int64 numpy).

    special [V] bool on the teacher's device: ids that are never keys (specials and padding).
    min_context: real tokens a source must have read before its key token (see `source_allowed`).
    meta = (doc ordinal, char_start, char_end) of the key token's slot in the document.
    """
    keys, vecs, meta, _ = harvest_positions(
        teacher, batch, key_mode=key_mode, next_token=next_token, special=special, min_context=min_context
    )
    return keys, vecs, meta


def second_copy_layout(teacher, ids: torch.Tensor, mask: torch.Tensor, special: torch.Tensor):
    """-> (n_prefix [B], heads): how each row ids, mask [B, T] is read twice (`occurrence.repeated_row_states`):
    its leading specials (the BOS prefix, not repeated) and the ids that open its second copy."""
    from ..model.occurrence import second_copy_heads

    real = ~special[ids] & mask  # [B, T]
    n_prefix = torch.cumprod((~real & mask).long(), dim=1).sum(1)  # [B] leading specials
    firsts = ids.gather(1, n_prefix.clamp(max=ids.shape[1] - 1)[:, None])[:, 0].tolist()  # [B] first body token
    return n_prefix, second_copy_heads(teacher.tokenizer, firsts)  # the second copy opens after a space


def repeat_views(teacher, ids: torch.Tensor, mask: torch.Tensor, special: torch.Tensor, layer: int):
    """-> (final [B, T, d], lexical [B, T, d]) of the rows ids, mask [B, T], in one forward where there were two:
    the rows read twice run to `layer` (the lexical view, in the second copy), then the layers above it
    finish the first copy, which is the row itself, into the loss view (`families.final_from_layer`)."""
    from ..model.families import final_from_layer
    from ..model.occurrence import repeated_row_states

    n_prefix, heads = second_copy_layout(teacher, ids, mask, special)
    lex, own = repeated_row_states(teacher.model, ids, mask, n_prefix, layer, heads)  # [B, T, d] each
    return final_from_layer(teacher.model, own, layer, ids, mask), lex


def harvest_positions(
    teacher,
    batch: Batch,
    *,
    key_mode: str,
    next_token: str,
    special: torch.Tensor,
    min_context: int = 0,
    lexical_layer: int | None = None,
    captured: list | None = None,
    lexical_representation: str = "first",
) -> tuple[np.ndarray, torch.Tensor, np.ndarray, torch.Tensor | None]:
    """`key_positions` plus each position's lexical vector [P, d] (None without a lexical layer).

    lexical_layer: the hidden_states index of the lexical view; `captured`: the list a `capture_layer`
    context fills during this forward (for lexical_layer < L; `first` only). The lexical vector sits at the
    key token's own position; `--next-token pred` keys have none (refused by BuildConfig).
    lexical_representation: `first` reads it from this forward; `repeat` from a forward over each row fed
    twice (`[prefix] body body`, the second copy opening after a space as text would, stopped after the
    lexical layer), in the second copy, where the token has read its whole window
    (sensekit/model/occurrence.py). The loss view is the row's own final state either way: with `repeat`,
    the layers above the lexical one finish the first copy (`families.final_from_layer`), the same states
    as a plain forward for less compute (layer 9 of 30: 1.3 forwards' worth, against 1.6 for both).
    """
    dev = teacher.device
    ids = batch.ids.to(dev, non_blocking=True)  # [B, T]
    mask = batch.mask.to(dev, non_blocking=True)  # [B, T]
    if captured is not None:
        captured.clear()
    lex = None  # [B, T, d] the lexical view's states, at every position
    if lexical_layer is not None and lexical_representation == "repeat":
        g, lex = repeat_views(teacher, ids, mask, special, lexical_layer)
    else:
        g = teacher.final_hidden(ids, mask)  # [B, T, d]
        if lexical_layer is not None:
            lex = captured.pop() if captured else g  # no capture: layer L, the final (post-norm) state
            if captured:
                captured.clear()
            if next_token == "pred" and key_mode == "next":
                raise InputError("--next-token pred has no lexical view: its keys are not tokens of the text")
    sp = special[ids] | ~mask  # [B, T] never a key / never a source
    allowed = source_allowed(batch, special, key_mode=key_mode, min_context=min_context)  # [B, T]
    if key_mode == "input":
        valid = ~sp & allowed  # [B, T]
        keys_t = ids
        src = g
        lex_src = lex  # the key token x_t's own position
        off = batch.offsets  # span of x_t
    else:
        valid = ~sp[:, :-1] & mask[:, 1:] & allowed[:, :-1]  # [B, T-1] source real, pair inside the window
        src = g[:, :-1]  # [B, T-1, d]
        lex_src = None if lex is None else lex[:, 1:]  # [B, T-1, d] at x_{t+1}'s own position
        off = batch.offsets[:, 1:]  # span of x_{t+1}: the slot the key fills
        if next_token == "gold":
            keys_t = ids[:, 1:]
            valid &= ~sp[:, 1:]
        else:
            keys_t = None
    vecs = src[valid]  # [P, d]
    lex_vecs = None if lex_src is None else lex_src[valid]  # [P, d]
    if keys_t is None:
        keys_v = teacher.logits(vecs).argmax(-1)  # [P] teacher's prediction
        ok = ~special[keys_v]
        vecs, keys_v = vecs[ok], keys_v[ok]
        valid_np = valid.cpu().numpy()
        rows, cols = np.nonzero(valid_np)
        ok_np = ok.cpu().numpy()
        rows, cols = rows[ok_np], cols[ok_np]
    else:
        keys_v = keys_t[valid]
        rows, cols = np.nonzero(valid.cpu().numpy())  # same row-major order as boolean indexing
    meta = np.empty((len(rows), 3), np.int64)
    meta[:, 0] = batch.docs[rows]
    meta[:, 1:] = off[rows, cols]
    return keys_v.cpu().numpy().astype(np.int64), vecs, meta, lex_vecs


def prefetch(it: Iterable, depth: int = 2) -> Iterator:
    """Run `it` in a background thread (tokenization overlaps the teacher's forward); order kept,
    exceptions re-raised here."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work():
        try:
            for item in it:
                if stop.is_set():
                    return
                q.put(item)
            q.put(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            q.put(exc)

    t = threading.Thread(target=work, daemon=True, name="sensekit-batches")
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while t.is_alive():  # drain so the producer can finish its put
            try:
                q.get(timeout=0.05)
            except queue.Empty:
                pass


def check_seq_len(seq_len: int, teacher, repeated: bool = False) -> None:
    """Refuse windows the teacher cannot read; `repeated`: the repeat lexical view reads each window twice."""
    limit = getattr(teacher.model.config, "max_position_embeddings", None)
    if limit and seq_len > limit:
        raise InputError(f"--seq-len {seq_len} exceeds the teacher's context of {limit} tokens")
    if limit and repeated and 2 * seq_len > limit:
        raise InputError(
            f"--seq-len {seq_len}: the repeat lexical view reads each window twice ({2 * seq_len} tokens), beyond "
            f"the teacher's context of {limit}; use --seq-len {limit // 2} or --lexical-representation first"
        )
