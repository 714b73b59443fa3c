"""The build's `repeat` lexical view: each key's lexical vector is its token's state in the second copy of
the row, from a truncated second forward; the loss view's vectors stay those of the row itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sensekit.builder.harvest import Batch, harvest_positions
from sensekit.model.occurrence import forward_layers

TEXTS = ("a bank of the river", "a bat")  # no leading space: the second copy's first token differs


def _batch(tiny):
    tok = tiny.tokenizer
    bos, pad = tok.bos_token_id, tok.pad_token_id
    rows = [[bos] + tok(t, add_special_tokens=False)["input_ids"] for t in TEXTS]
    T = max(map(len, rows))
    ids = torch.full((2, T), pad)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
    mask = ids != pad
    offsets = np.zeros((2, T, 2), np.int32)
    return Batch(ids, mask, offsets, np.array([0, 1]), int(mask.sum())), rows


def _special(tiny):
    sp = torch.zeros(tiny.vocab_size, dtype=torch.bool)
    sp[tiny.special_ids] = True
    return sp


@pytest.mark.parametrize("key", ["input", "next"])
def test_repeat_reads_the_second_copy(tiny, key):
    batch, rows = _batch(tiny)
    kw = dict(key_mode=key, next_token="gold", special=_special(tiny), lexical_layer=1)
    k1, v1, m1, lex_first = harvest_positions(tiny, batch, **kw, lexical_representation="first")
    k2, v2, m2, lex_rep = harvest_positions(tiny, batch, **kw, lexical_representation="repeat")
    assert k1.tolist() == k2.tolist()
    torch.testing.assert_close(v1, v2)  # the loss view does not change
    want = []
    for text, r in zip(TEXTS, rows):  # one row at a time: the text read twice, "S S", as a reader writes it
        doubled = torch.tensor([[r[0]] + tiny.tokenizer(text + " " + text, add_special_tokens=False)["input_ids"]])
        assert doubled.shape[1] == 2 * len(r) - 1  # the copy's first word is one token after the space too
        h = forward_layers(tiny.model, doubled, torch.ones_like(doubled), [1])[0][0]
        positions = range(1, len(r)) if key == "input" else range(2, len(r))  # the key token's own position
        want.extend(h[t + len(r) - 1] for t in positions)
    torch.testing.assert_close(lex_rep, torch.stack(want), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(lex_rep, lex_first, atol=1e-3)  # the right context changed the states
