"""sensekit.model.families on tiny random models of each family, built from config: the split forward (the
frozen-prefix cache path) equals the plain forward, `lm_logits(final_hidden)` equals the model's own
logits (soft-capping and logit scaling included), and a student of a layer selection saves and
reloads with plain transformers giving the logits it had in training."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from sensekit.distill.student import DistillStudent  # noqa
from sensekit.model.families import lm_logits, logits_difference  # noqa: E402
from sensekit.model.layers import build_truncated  # noqa: E402

VOCAB, HIDDEN, LAYERS = 96, 32, 6
COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=HIDDEN,
    intermediate_size=64,
    num_hidden_layers=LAYERS,
    num_attention_heads=4,
    max_position_embeddings=128,
)


def _config(family: str):
    from transformers import (
        CohereConfig,
        Gemma2Config,
        Gemma3TextConfig,
        GemmaConfig,
        GPT2Config,
        GPTNeoXConfig,
        GraniteConfig,
        LlamaConfig,
        MistralConfig,
        PhiConfig,
        Qwen2Config,
    )

    if family == "gpt2":
        return GPT2Config(
            vocab_size=VOCAB, n_embd=HIDDEN, n_layer=LAYERS, n_head=4, n_positions=128, bos_token_id=0, eos_token_id=0
        )
    if family == "gpt_neox":
        return GPTNeoXConfig(**COMMON, rotary_pct=0.5)
    if family == "phi":
        return PhiConfig(**COMMON, partial_rotary_factor=0.5)
    if family == "qwen2":  # sliding-window layers above layer 3: layer types differ per layer
        return Qwen2Config(
            **COMMON, num_key_value_heads=2, use_sliding_window=True, sliding_window=4, max_window_layers=3
        )
    if family == "mistral":
        return MistralConfig(**COMMON, num_key_value_heads=2, sliding_window=4)
    if family == "gemma":
        return GemmaConfig(**COMMON, num_key_value_heads=2, head_dim=8)
    if family == "gemma2":  # soft-capped logits, alternating sliding/full layers
        return Gemma2Config(**COMMON, num_key_value_heads=2, head_dim=8, sliding_window=4, final_logit_softcapping=0.5)
    if family == "gemma3":  # Gemma-3's text model: 5 sliding layers then a full one, soft-capped logits here
        return Gemma3TextConfig(
            **COMMON, num_key_value_heads=2, head_dim=8, sliding_window=4, final_logit_softcapping=0.5
        )
    if family == "cohere":
        return CohereConfig(**COMMON, num_key_value_heads=2, logit_scale=0.25)
    if family == "granite":
        return GraniteConfig(**COMMON, num_key_value_heads=2, logits_scaling=4.0, embedding_multiplier=3.0)
    return LlamaConfig(**COMMON, num_key_value_heads=2)


FAMILIES = ["llama", "qwen2", "mistral", "gemma", "gpt2", "phi", "gpt_neox", "gemma2", "gemma3", "cohere", "granite"]


def _model(family: str):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(_config(family)).eval().requires_grad_(False)
    with torch.no_grad():  # random norms and biases too, so a skipped or doubled step shows
        for p in model.parameters():
            if p.ndim == 1:
                p.add_(0.1 * torch.randn_like(p))
    return model


def _batch(seq: int = 12):
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, VOCAB, (2, seq), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, seq - 3 :] = 0  # right padding in row 1
    return ids, mask


@pytest.mark.parametrize("family", FAMILIES)
def test_head_of_the_final_hidden_state_is_the_models_logits(family):
    model = _model(family)
    ids, mask = _batch()
    diff, allowed = logits_difference(model, ids, mask)
    assert diff <= allowed, (family, diff)
    if family in ("gemma2", "gemma3", "cohere", "granite"):  # the plain head alone is not the model's output
        with torch.no_grad():
            hidden = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
            plain = model.get_output_embeddings()(hidden)
            assert not torch.allclose(plain, model(input_ids=ids, attention_mask=mask).logits, atol=1e-3)
            torch.testing.assert_close(lm_logits(model, hidden), model(input_ids=ids, attention_mask=mask).logits)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("layers,train", [(4, 1), ([0, 1, 4, 5], [2]), ([0, 2, 3, 5], [1, 3])])
def test_split_forward_equals_the_full_forward(family, layers, train):
    model = _model(family)
    lm = build_truncated(model, layers, train)
    split = lm.config.sensekit["trained_layers"][0]  # the lowest trained layer
    student = DistillStudent(lm, HIDDEN, VOCAB, split_at=split).eval()
    ids, mask = _batch()
    keep = mask.bool()
    with torch.no_grad():
        full_logits, full_h = student(ids, mask)
        prefix = student.prefix(ids, mask)
        split_logits, split_h = student(None, mask, prefix=prefix)
        own = lm(input_ids=ids, attention_mask=mask).logits  # the HF model's own forward
    torch.testing.assert_close(split_h[keep], full_h[keep], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(split_logits[keep], full_logits[keep], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(full_logits[keep], own[keep], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", ["llama", "gpt2", "phi", "gemma2"])
def test_the_prefix_is_the_lowest_trainable_layers_input(family):
    """Not the embedding path fed back: the split point's input, as a forward hook on the full model sees it."""
    model = _model(family)
    lm = build_truncated(model, [0, 1, 3, 4, 5], [2, 4])
    student = DistillStudent(lm, HIDDEN, VOCAB, split_at=2).eval()
    ids, mask = _batch()
    seen = []
    layer = student.lm.base_model.get_submodule(_layers_attr(lm))[2]
    handle = layer.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append(args[0] if args else kwargs["hidden_states"]), with_kwargs=True
    )
    with torch.no_grad():
        student(ids, mask)
    handle.remove()
    with torch.no_grad():
        torch.testing.assert_close(student.prefix(ids, mask), seen[0], rtol=0, atol=0)


def _layers_attr(lm) -> str:
    from sensekit.model.layers import layers_of

    return layers_of(lm)[1]


@pytest.mark.parametrize("family", ["llama", "gpt2", "gemma2", "gemma3", "qwen2"])
def test_a_selected_student_reloads_with_plain_transformers(tmp_path, family):
    from tokenizers import Tokenizer, models
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    from sensekit.distill.student import save_student

    model = _model(family)
    lm = build_truncated(model, [0, 1, 4, 5], [2, 3])
    student = DistillStudent(lm, HIDDEN, VOCAB, split_at=2).eval()
    with torch.no_grad():  # "training" changed the trained layers
        for p in student.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    ids, mask = _batch()
    with torch.no_grad():
        trained_logits, _ = student(ids, mask)
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"a": 0, "<unk>": 1}, "<unk>")))
    save_student(student, tok, tmp_path / "s")
    loaded = AutoModelForCausalLM.from_pretrained(str(tmp_path / "s")).eval()
    assert loaded.config.num_hidden_layers == 4
    assert loaded.config.sensekit == {
        "teacher_layers": [0, 1, 4, 5],
        "trained_layers": [2, 3],
        "teacher_num_layers": LAYERS,
    }
    with torch.no_grad():
        again = loaded(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(again[mask.bool()], trained_logits[mask.bool()], rtol=1e-5, atol=1e-5)


def test_teacher_logits_fall_back_to_the_models_own_forward_where_the_head_differs(monkeypatch):
    import sensekit.model.families as families
    from sensekit.model.families import TeacherLogits

    model = _model("gemma2")
    teacher = type("T", (), {"model": model, "device": torch.device("cpu")})()
    ids, mask = _batch()
    with torch.no_grad():
        g = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
        own = model(input_ids=ids, attention_mask=mask).logits
    logits = TeacherLogits(teacher)
    assert logits.check(ids, mask) < 1e-4 and not logits.own_forward  # soft-capping known: the head of g is exact
    monkeypatch.setattr(families, "logits_transform", lambda config: None)  # a family step this code does not know
    assert logits.check(ids, mask) > 1e-3 and logits.own_forward
    torch.testing.assert_close(logits(g, ids, mask), own)


@pytest.mark.parametrize("family", FAMILIES)
def test_final_from_layer_finishes_a_forward_run_to_that_layer(family):
    """The build's repeat view runs each row (twice over) to the lexical layer; the layers above it finish
    the row's own final states, equal to a plain forward, and the layers below do not run again."""
    from sensekit.model.families import final_from_layer
    from sensekit.model.layers import layers_of
    from sensekit.model.occurrence import forward_layers

    model = _model(family)
    ids, mask = _batch()
    keep = mask.bool()
    _, _, layers = layers_of(model)
    with torch.no_grad():
        plain = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
    rows_seen = []  # the batch size of each call of the lowest layer
    for layer in (1, 3, LAYERS):
        (hidden,) = forward_layers(model, ids, mask, [layer])  # [B, T, d]
        rows_seen.clear()
        handle = layers[0].register_forward_hook(lambda m, a, o: rows_seen.append(a[0].shape[0] if a else None))
        try:
            final = final_from_layer(model, hidden, layer, ids, mask)
        finally:
            handle.remove()
        torch.testing.assert_close(final[keep], plain[keep], rtol=1e-5, atol=1e-5)
        assert all(n == 1 for n in rows_seen), (layer, rows_seen)  # at most the one-row check, never the batch


def test_final_from_layer_runs_the_plain_forward_where_the_split_differs(monkeypatch):
    import sensekit.model.families as families
    from sensekit.model.occurrence import forward_layers

    model = _model("llama")
    ids, mask = _batch()
    keep = mask.bool()
    real = families.resume_at_layer
    monkeypatch.setattr(families, "resume_at_layer", lambda *a: real(*a) + 1e-2)  # a family the split gets wrong
    (hidden,) = forward_layers(model, ids, mask, [2])
    with torch.no_grad():
        plain = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
    final = families.final_from_layer(model, hidden, 2, ids, mask)
    torch.testing.assert_close(final[keep], plain[keep], rtol=1e-5, atol=1e-5)
    assert families._TOPS[model][2] is None  # remembered: later batches go straight to the plain forward
