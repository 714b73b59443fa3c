"""A language model's last-layer state for a word inside a sentence, batched, no grad.

The state is taken where the build would file it (docs/method.md 1.1):
- `next`: the state *before* the word's first token, the one that predicts it (DSKD keys);
- `input`: the state at the word's first token (SKD keys);
- `last`: the state at the word's last token, the first one that has read the whole word
  (the carrier-sentence probes: in "The word is {w}." the `next` state never sees w).

Sentences are framed as the build frames its windows: the tokenizer's own special prefix
(a BOS, or nothing) and then the text without special tokens. Character spans map to tokens
through the fast tokenizer's offsets. A causal LM's state at position t does not depend on
later tokens, so each sentence is cut right after the position it needs: less compute, same
state. A `next` state whose source would be the prefix (the word opens the sentence) does not
exist in the store's sense (the build never files a state that does not depend on the text),
so such items come back with `ok = False`, as do words that no token overlaps, and (with the
store's `min_context`) words whose state has read fewer real tokens than the build required.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..builder.context_rule import has_context

__all__ = [
    "WHERE",
    "locate",
    "word_states",
    "hidden_forward",
    "teacher_prefix_and_pad",
]

WHERE = ("next", "input", "last")
TOKENS_PER_BATCH = 4096  # padded tokens per forward: short sentences go many to a batch


def locate(
    tokenizer,
    sentences: Sequence[str],
    starts: Sequence[int],
    ends: Sequence[int],
    where: str,
    prefix: Sequence[int],
    min_context: int = 0,
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """-> (ids: one int64 array per sentence, cut after the needed position; pos [N] int64; ok [N] bool).

    `tokenizer` is a fast Hugging Face tokenizer; the sentences are tokenized in one call.
    `min_context` (next, input): the build's rule that a source must have read that many real tokens
    before its key token (x_1..x_t for next, the tokens before x_t for input); others are not ok.
    """
    if where not in WHERE:
        raise ValueError(f"where must be one of {WHERE}, got {where!r}")
    if len(sentences) == 0:  # the tokenizer refuses an empty batch
        return [], np.zeros(0, np.int64), np.zeros(0, bool)
    enc = tokenizer(list(sentences), add_special_tokens=False, return_offsets_mapping=True, return_attention_mask=False)
    pre = np.asarray(list(prefix), np.int64)
    n = len(sentences)
    pos, ok, rows = np.zeros(n, np.int64), np.zeros(n, bool), []
    for i, (ids, offs) in enumerate(zip(enc["input_ids"], enc["offset_mapping"])):  # per sentence, not per token
        ids = np.concatenate([pre, np.asarray(ids, np.int64)])
        offs = np.asarray(offs, np.int64).reshape(-1, 2)
        inside = np.nonzero((offs[:, 1] > starts[i]) & (offs[:, 0] < ends[i]))[0] + len(pre)  # tokens touching the word
        if len(inside) == 0:
            rows.append(ids[:1])
            continue
        p = {"next": inside[0] - 1, "input": inside[0], "last": inside[-1]}[where]
        # the build's rule (builder/context_rule.py); a `last` state is only asked to lie in the text
        ok[i] = has_context(p - len(pre), where, min_context if where != "last" else 0)
        pos[i] = max(p, 0)
        rows.append(ids[: pos[i] + 1])
    return rows, pos, ok


def hidden_forward(model) -> Callable:
    """(input_ids [B, T], attention_mask [B, T]) -> last hidden state after the final norm [B, T, d],
    for any Hugging Face causal LM (its base model applies the final norm; the LM head multiplies it)."""
    import torch

    @torch.inference_mode()
    def forward(input_ids, attention_mask):
        return model.base_model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state

    return forward


def word_states(
    forward: Callable,
    tokenizer,
    sentences: Sequence[str],
    starts: Sequence[int],
    ends: Sequence[int],
    where: str,
    prefix: Sequence[int],
    dim: int,
    *,
    device="cpu",
    pad_id: int = 0,
    tokens_per_batch: int = TOKENS_PER_BATCH,
    min_context: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """-> (states [N, dim] float32, ok [N] bool). Rows where ok is False are zeros.

    `forward(ids, mask)` returns [B, T, d] (`Teacher.final_hidden`, or `hidden_forward(model)`).
    Sentences run sorted by length, packed up to `tokens_per_batch` padded tokens per forward.
    """
    import torch

    rows, pos, ok = locate(tokenizer, sentences, starts, ends, where, prefix, min_context)
    todo = np.nonzero(ok)[0]
    todo = todo[np.argsort([-len(rows[i]) for i in todo], kind="stable")]  # longest first: little padding
    out = np.zeros((len(sentences), dim), np.float32)
    start = 0
    while start < len(todo):
        width = len(rows[todo[start]])
        stop = min(len(todo), start + max(1, tokens_per_batch // width))
        chunk = todo[start:stop]
        ids = np.full((len(chunk), width), pad_id, np.int64)  # [B, T] right-padded
        mask = np.zeros((len(chunk), width), np.int64)
        for r, i in enumerate(chunk):  # per sentence
            ids[r, : len(rows[i])], mask[r, : len(rows[i])] = rows[i], 1
        g = forward(torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device))  # [B, T, d]
        picked = g[torch.arange(len(chunk), device=g.device), torch.from_numpy(pos[chunk]).to(g.device)]  # [B, d]
        out[chunk] = picked.float().cpu().numpy()
        start = stop
    return out, ok


def teacher_prefix_and_pad(tokenizer) -> tuple[list[int], int]:
    """The special prefix the build puts before every window (a BOS, or nothing), and a padding id."""
    from ..builder.corpus import special_prefix

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return special_prefix(tokenizer), int(pad if pad is not None else 0)
