"""distill.student: the truncated teacher shares what it should, trains only its top layers, and its
bottom->top split (the frozen-prefix cache path) equals the plain forward, with rotary positions
and padding masks, on a tiny Llama and (integration) on the bundled SmolLM2-135M."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from sensekit.distill.student import DistillStudent  # noqa
from sensekit.model.layers import build_truncated  # noqa: E402


def _split_equals_full(model, vocab: int, seq: int = 12, rtol: float = 1e-5) -> None:
    lm = build_truncated(model, 3, 1)
    student = DistillStudent(lm, model.config.hidden_size, vocab, n_trainable_top=1).eval()
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (2, seq), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, seq - 4 :] = 0  # right padding in row 1
    with torch.no_grad():
        full_logits, full_h = student(ids, mask)
        prefix = student.prefix(ids, mask)
        split_logits, split_h = student(None, mask, prefix=prefix)
        plain = lm(input_ids=ids, attention_mask=mask).logits  # the HF model's own forward
    keep = mask.bool()
    torch.testing.assert_close(split_logits[keep], full_logits[keep], rtol=rtol, atol=1e-5)
    torch.testing.assert_close(split_h[keep], full_h[keep], rtol=rtol, atol=1e-5)
    torch.testing.assert_close(full_logits[keep], plain[keep], rtol=rtol, atol=1e-5)


def test_truncated_student_shares_frozen_parts_and_trains_only_its_top(teacher):  # noqa: F811
    tm = teacher.model
    lm = build_truncated(tm, 3, 1)
    assert lm.config.num_hidden_layers == 3 and len(lm.model.layers) == 3
    assert lm.model.embed_tokens is tm.model.embed_tokens and lm.lm_head is tm.lm_head
    assert lm.model.norm is tm.model.norm
    assert lm.model.layers[0] is tm.model.layers[0] and lm.model.layers[1] is tm.model.layers[1]
    assert lm.model.layers[2] is not tm.model.layers[2]
    torch.testing.assert_close(lm.model.layers[2].mlp.up_proj.weight, tm.model.layers[2].mlp.up_proj.weight)
    student = DistillStudent(lm, teacher.hidden_size, teacher.vocab_size, n_trainable_top=1)
    names = [n for n, _ in student.trainable_named_parameters()]
    assert names and all(n.startswith("lm.model.layers.2.") for n in names)
    assert student.proj is None
    assert not any(p.requires_grad for p in tm.parameters())


def test_bottom_top_split_equals_the_full_forward(teacher):  # noqa: F811
    _split_equals_full(teacher.model, teacher.vocab_size)


@pytest.mark.integration
def test_split_equals_full_on_the_bundled_smollm2():
    from sensekit.errors import MissingDependency
    from sensekit.model.teacher import load_teacher

    try:
        t = load_teacher("smollm2-135m", device="cpu", dtype="float32")
    except MissingDependency as exc:
        pytest.skip(f"bundled teacher unavailable: {exc}")
    _split_equals_full(t.model, t.vocab_size, seq=16, rtol=1e-4)


def test_a_student_of_a_bf16_teacher_saves_as_float32(tmp_path, teacher_dir):  # noqa: F811
    from transformers import AutoModelForCausalLM

    from sensekit.distill.student import save_student
    from sensekit.model.teacher import load_teacher

    t = load_teacher(str(teacher_dir), device="cpu", dtype="bfloat16")
    lm = build_truncated(t.model, 3, 1)
    student = DistillStudent(lm, t.hidden_size, t.vocab_size, n_trainable_top=1)
    assert {p.dtype for p in lm.parameters()} == {torch.bfloat16, torch.float32}
    with torch.no_grad():
        lm.model.layers[2].mlp.up_proj.weight.add_(1e-4)  # a change bf16 could not hold
    trained = lm.model.layers[2].mlp.up_proj.weight.detach().clone()
    save_student(student, t.tokenizer, tmp_path / "s")
    loaded = AutoModelForCausalLM.from_pretrained(str(tmp_path / "s"))
    assert loaded.dtype == torch.float32
    torch.testing.assert_close(loaded.model.layers[2].mlp.up_proj.weight, trained, rtol=0, atol=0)
    frozen = t.model.model.layers[0].mlp.up_proj.weight.float()
    torch.testing.assert_close(loaded.model.layers[0].mlp.up_proj.weight, frozen)
