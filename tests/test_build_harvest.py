"""Key alignment (next gold / next pred / input), special and padding exclusion, the batch stream."""

from __future__ import annotations

import numpy as np
import torch
from helpers import TEXTS

from sensekit.builder.harvest import Batch, BatchStream, key_positions


def _batch(tiny):
    tok = tiny.tokenizer
    bos, pad = tok.bos_token_id, tok.pad_token_id
    a = tok(" the bank of the river", add_special_tokens=False)["input_ids"]
    b = tok(" a bat", add_special_tokens=False)["input_ids"]
    T = 1 + len(a)
    ids = torch.full((2, T), pad)
    ids[0, :T] = torch.tensor([bos] + a)
    ids[1, : 1 + len(b)] = torch.tensor([bos] + b)
    mask = ids != pad
    offsets = np.zeros((2, T, 2), np.int32)
    offsets[:, :, 0] = np.arange(T) * 10  # recognisable fake spans: position t -> (10t, 10t+5)
    offsets[:, :, 1] = offsets[:, :, 0] + 5
    return Batch(ids, mask, offsets, np.array([4, 9]), int(mask.sum())), a, b


def _special(tiny):
    sp = torch.zeros(tiny.vocab_size, dtype=torch.bool)
    sp[tiny.special_ids] = True
    return sp


def test_next_gold_keys_are_the_following_input_tokens(tiny):
    batch, a, b = _batch(tiny)
    keys, vecs, meta = key_positions(tiny, batch, key_mode="next", next_token="gold", special=_special(tiny))
    g = tiny.final_hidden(batch.ids, batch.mask)
    # sources: positions 1..len-2 of each row (BOS is never a source; the last token has no successor)
    assert keys.tolist() == a[1:] + b[1:]
    src = [(0, t) for t in range(1, len(a))] + [(1, t) for t in range(1, len(b))]
    torch.testing.assert_close(vecs, torch.stack([g[r, t] for r, t in src]))
    # the recorded span is the key token's (t + 1), and the doc ordinal is the row's
    assert meta[:, 1].tolist() == [10 * (t + 1) for _, t in src]
    assert meta[:, 0].tolist() == [4] * (len(a) - 1) + [9] * (len(b) - 1)


def test_input_keys_are_the_input_tokens(tiny):
    batch, a, b = _batch(tiny)
    keys, vecs, meta = key_positions(tiny, batch, key_mode="input", next_token="gold", special=_special(tiny))
    g = tiny.final_hidden(batch.ids, batch.mask)
    assert keys.tolist() == a + b  # no BOS, no padding
    src = [(0, t) for t in range(1, 1 + len(a))] + [(1, t) for t in range(1, 1 + len(b))]
    torch.testing.assert_close(vecs, torch.stack([g[r, t] for r, t in src]))
    assert meta[:, 1].tolist() == [10 * t for _, t in src]


def test_min_context_drops_sources_that_read_too_little(tiny):
    batch, a, b = _batch(tiny)
    special = _special(tiny)
    # next: the state at body position j has read j + 1 real tokens before its key x_{j+1}
    keys, _, _ = key_positions(tiny, batch, key_mode="next", next_token="gold", special=special, min_context=3)
    assert keys.tolist() == a[3:] + b[3:]
    # input: the state at x_j has read j real tokens before it
    keys, _, _ = key_positions(tiny, batch, key_mode="input", next_token="gold", special=special, min_context=3)
    assert keys.tolist() == a[3:] + b[3:]


def test_continuation_windows_skip_what_the_previous_window_used(tiny):
    from sensekit.builder.corpus import pack_windows
    from sensekit.builder.harvest import Batch

    tok, special = tiny.tokenizer, _special(tiny)
    text = " ".join(["the bank of the river was muddy after the spring flood"] * 8)
    full = tok(text, add_special_tokens=False)["input_ids"]
    for overlap, min_context in ((1, 0), (5, 2), (6, 6)):
        windows = list(pack_windows([(0, text)], tok, seq_len=24, overlap=overlap, prefix=[tok.bos_token_id]))
        assert len(windows) > 2 and [w.repeated for w in windows[1:]] == [overlap] * (len(windows) - 1)
        keys = []
        for w in windows:
            ids = torch.as_tensor(w.ids)[None]
            batch = Batch(
                ids,
                torch.ones_like(ids, dtype=torch.bool),
                w.offsets[None],
                np.array([0]),
                ids.numel(),
                repeated=np.array([w.repeated]),
            )
            keys += key_positions(
                tiny, batch, key_mode="next", next_token="gold", special=special, min_context=min_context
            )[0].tolist()
        # every (x_t, x_{t+1}) pair with enough context is filed exactly once
        assert keys == full[max(min_context, 1) :]


def test_next_pred_keys_are_the_teacher_argmax(tiny):
    batch, a, b = _batch(tiny)
    special = _special(tiny)
    keys, vecs, _ = key_positions(tiny, batch, key_mode="next", next_token="pred", special=special)
    logits = tiny.model(input_ids=batch.ids, attention_mask=batch.mask).logits
    src = [(0, t) for t in range(1, len(a))] + [(1, t) for t in range(1, len(b))]
    expect = [int(logits[r, t].argmax()) for r, t in src]
    keep = [e for e in expect if not special[e]]
    assert keys.tolist() == keep
    assert not special[torch.as_tensor(keys)].any()


def test_batch_stream_caps_tokens_shards_and_restarts(tiny):
    docs = lambda select=None: iter([(f"d{i}", t) for i, t in enumerate(TEXTS * 4)])  # noqa: E731
    kw = dict(
        seq_len=12,
        batch_size=3,
        overlap=1,
        prefix=[tiny.tokenizer.bos_token_id],
        pad_id=tiny.tokenizer.pad_token_id,
        buffer_batches=2,
    )
    full = list(BatchStream(docs, tiny.tokenizer, **kw))
    capped = list(BatchStream(docs, tiny.tokenizer, max_tokens=50, **kw))
    assert sum(b.n_tokens for b in capped) == 50
    # restart from the state after batch 3 reproduces batches 4..
    again = list(BatchStream(docs, tiny.tokenizer, start=full[2].state, **kw))
    assert len(again) == len(full) - 3
    for x, y in zip(again, full[3:]):
        assert torch.equal(x.ids, y.ids) and (x.docs == y.docs).all()
    # two shards partition the documents
    s0 = {int(d) for b in BatchStream(docs, tiny.tokenizer, rank=0, world=2, **kw) for d in b.docs}
    s1 = {int(d) for b in BatchStream(docs, tiny.tokenizer, rank=1, world=2, **kw) for d in b.docs}
    assert s0 and s1 and not s0 & s1 and all(d % 2 == 0 for d in s0)
    # padding is only at the end of rows
    for b in full:
        m = b.mask.numpy()
        assert (np.sort(m, axis=1)[:, ::-1] == m).all()


def test_batch_bounds_end_a_batch_where_the_windows_get_much_shorter():
    from sensekit.builder.harvest import MIN_BATCH_TOKENS, PAD_SLACK, batch_bounds

    assert (MIN_BATCH_TOKENS, PAD_SLACK) == (1024, 0.1)  # the hand-worked cases below assume them
    # 600: two rows make 1,024 tokens, 500 < 0.9 x 600 ends the batch; 500: three rows, then 100 < 450
    assert batch_bounds(np.array([600, 580, 500, 490, 100, 100]), 4096, 512) == [(0, 2), (2, 5), (5, 6)]
    # equal lengths: the token budget (409 rows of 10) decides, and the row cap where it is lower
    assert batch_bounds(np.full(1000, 10), 4096, 512) == [(0, 409), (409, 818), (818, 1000)]
    assert batch_bounds(np.full(1000, 2), 4096, 512) == [(0, 512), (512, 1000)]
    assert batch_bounds(np.array([5000, 3]), 4096, 512) == [(0, 1), (1, 2)]  # a window over the budget: alone
