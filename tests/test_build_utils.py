"""Shared helpers for the build tests: a tiny Llama teacher built from a config, saved once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CORPUS

TEXTS = CORPUS + [
    "the river bank was green and the spring water was cold",
    "money in the bank is safe, said the banker with a smile",
    "a light breeze moved the light curtains in the dark room",
]


def make_tiny_teacher_dir(folder: Path, *, layers: int = 2, hidden: int = 32, seed: int = 0) -> Path:
    """Save a random tiny LlamaForCausalLM + a trained tokenizer to `folder` (loadable by load_teacher)."""
    import torch
    from conftest import train_tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=train_tokenizer(), pad_token="<pad>", eos_token="<|endoftext|>", bos_token="<|endoftext|>"
    )
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():  # a non-trivial final norm weight, so "after the norm" is really tested
        model.model.norm.weight.uniform_(0.5, 1.5)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    return make_tiny_teacher_dir(tmp_path_factory.mktemp("tiny") / "teacher")


@pytest.fixture(scope="session")
def tiny(tiny_dir):
    from sensekit.builder.teacher import load_teacher

    return load_teacher(str(tiny_dir), device="cpu")


@pytest.fixture
def text_corpus(tmp_path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text("\n\n".join(TEXTS * 3) + "\n", encoding="utf-8")
    return path
