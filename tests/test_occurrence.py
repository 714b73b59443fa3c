"""`sensekit.model.occurrence`: a word occurrence's state, per representation, against a plain HF forward."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sensekit.errors import InputError
from sensekit.model.occurrence import (
    check_representation,
    locate_occurrences,
    occurrence_states,
    occurrence_states_at,
    second_copy_heads,
    tokenizer_prefix_and_pad,
)

# each opens with a word that is one token with and without a space before it, so the text read twice,
# "S S", tokenizes as the sentence's ids twice with only that token re-read (`second_copy_heads`)
SENTENCES = [
    "a bank of the river was muddy",
    "a man put money in the bank yesterday",
    "a light in the room",
    "a word unbelievably long splits into tokens",
    "a",
]
WORDS = ["bank", "bank", "light", "unbelievably", "a"]


def _spans():
    starts = [s.index(w) for s, w in zip(SENTENCES, WORDS)]
    return starts, [a + len(w) for a, w in zip(starts, WORDS)]


def _reference(tiny, sentence, start, end, representation, layer):
    """The same state from one unbatched forward with output_hidden_states, by hand."""
    tok = tiny.tokenizer
    prefix, _ = tokenizer_prefix_and_pad(tok)
    if representation == "repeat":  # the text read twice, as a reader would write it: "S S"
        start, end = start + len(sentence) + 1, end + len(sentence) + 1
        sentence = sentence + " " + sentence
    enc = tok(sentence, add_special_tokens=False, return_offsets_mapping=True)
    inside = [j for j, (a, b) in enumerate(enc["offset_mapping"]) if b > start and a < end]
    idx = [inside[0]] if representation == "first" else inside
    with torch.inference_mode():
        ids = torch.tensor([prefix + list(enc["input_ids"])])
        hs = tiny.model.base_model(input_ids=ids, output_hidden_states=True).hidden_states
    return hs[layer][0, [i + len(prefix) for i in idx]].float().mean(0).numpy()


@pytest.mark.parametrize("representation", ["first", "mean", "repeat"])
def test_states_match_a_plain_forward(tiny, representation):
    starts, ends = _spans()
    n_layers = tiny.model.config.num_hidden_layers
    layers = list(range(n_layers + 1))
    got, ok = occurrence_states_at(
        tiny.model, tiny.tokenizer, SENTENCES, starts, ends, layers, representation, tokens_per_batch=16
    )
    assert ok.all() and got.shape == (len(SENTENCES), len(layers), tiny.hidden_size)
    for i, s in enumerate(SENTENCES):
        for n in layers:
            want = _reference(tiny, s, starts[i], ends[i], representation, n)
            np.testing.assert_allclose(got[i, n], want, rtol=1e-4, atol=1e-4)


def test_early_stop_gives_the_same_state(tiny):
    starts, ends = _spans()
    one, _ = occurrence_states(tiny, SENTENCES, starts, ends, 1, "repeat")  # stops after decoder layer 0
    both, _ = occurrence_states_at(tiny.model, tiny.tokenizer, SENTENCES, starts, ends, [1, None], "repeat")
    np.testing.assert_allclose(one, both[:, 0], rtol=1e-5, atol=1e-5)


def test_representations_differ_where_they_should(tiny):
    tok = tiny.tokenizer
    starts, ends = _spans()
    prefix, _ = tokenizer_prefix_and_pad(tok)
    loc = {r: locate_occurrences(tok, SENTENCES, starts, ends, r, prefix) for r in ("first", "mean", "repeat")}
    assert (loc["first"].first == loc["first"].last).all()
    assert (loc["mean"].last > loc["mean"].first).any()  # some word spans several tokens
    body = [len(tok(s, add_special_tokens=False)["input_ids"]) for s in SENTENCES]
    heads = [
        len(h) for h in second_copy_heads(tok, [tok(s, add_special_tokens=False)["input_ids"][0] for s in SENTENCES])
    ]
    shift = np.asarray(body) + np.asarray(heads) - 1
    # the second copy: the same tokens, shifted by the first copy and the re-read head (a word opening the
    # sentence starts at the head)
    np.testing.assert_array_equal(loc["repeat"].last, loc["mean"].last + shift)
    np.testing.assert_array_equal(loc["repeat"].first[:-1], loc["mean"].first[:-1] + shift[:-1])
    assert loc["repeat"].first[-1] == loc["mean"].last[-1] + 1  # "a" opens the sentence: the head's first id
    assert [len(r) for r in loc["repeat"].rows] == list(loc["repeat"].last + 1)


def test_a_span_no_token_overlaps_is_not_ok(tiny):
    states, ok = occurrence_states(tiny, ["a bank", "a bank"], [0, 99], [1, 120], None, "repeat")
    assert ok.tolist() == [True, False] and not states[1].any()


def test_unknown_representation_is_one_line():
    with pytest.raises(InputError, match="--representation 'echo': use one of first, mean, repeat"):
        check_representation("echo")


def test_gloss_text_spans_the_lemma():
    from sensekit.model.occurrence import GLOSS_TEMPLATES, gloss_text

    for name in GLOSS_TEMPLATES:
        text, a, b = gloss_text("sloping land beside a body of water ", "bank", name)
        assert text[a:b] == "bank" and "sloping land beside a body of water" in text
    text, a, b = gloss_text("a place", "post_office")
    assert text == "a place. In short: post office" and text[a:b] == "post office"
    with pytest.raises(InputError, match="gloss template 'x'"):
        gloss_text("a place", "bank", "x")


def test_repeated_row_states_match_one_row_at_a_time(tiny):
    from sensekit.model.occurrence import forward_layers, repeated_row_states

    rows = [[5, 9, 12, 7, 3], [5, 8, 4], [5, 11, 6, 2]]  # a shared first id plays the BOS prefix
    T = max(map(len, rows))
    ids = torch.zeros(len(rows), T, dtype=torch.long)
    mask = torch.zeros(len(rows), T, dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, : len(r)], mask[i, : len(r)] = torch.tensor(r), True
    got, _ = repeated_row_states(tiny.model, ids, mask, torch.ones(len(rows), dtype=torch.long), 1)  # [B, T, d]
    for i, r in enumerate(rows):
        doubled = torch.tensor([r + r[1:]])
        want = forward_layers(tiny.model, doubled, torch.ones_like(doubled), [1])[0][0]  # [2n - 1, d]
        np.testing.assert_allclose(got[i, 1 : len(r)].numpy(), want[len(r) :].numpy(), rtol=1e-4, atol=1e-4)


def test_second_copy_heads_reread_the_first_token_after_a_space(tiny):
    tok = tiny.tokenizer
    t = tok("the", add_special_tokens=False)["input_ids"][0]  # "t" of "the": no space before it
    spaced = tok(" the", add_special_tokens=False)["input_ids"][0]  # " the": already after a space
    heads = second_copy_heads(tok, [t, spaced])
    assert heads[0].tolist() == tok(" " + tok.decode([t]), add_special_tokens=False)["input_ids"]
    assert heads[1].tolist() == [spaced]
