"""Shared pieces of the distill tests: a tiny Llama teacher folder and a tiny sense store for it.

Everything is real: the teacher folder is a LlamaForCausalLM (random weights, from config)
saved with save_pretrained beside a fast tokenizer trained on the fly, loaded through
`sensekit.builder.teacher.load_teacher`; the store is written with `StoreWriter`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from conftest import CORPUS, train_tokenizer

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

HIDDEN = 32
LAYERS = 4

SYN = [
    ("happy", "glad"),
    ("big", "large"),
    ("small", "tiny"),
    ("quick", "fast"),
    ("big", "huge"),
    ("bank", "river bank"),
    ("small", "little"),
]
ANT = [
    ("good", "bad"),
    ("happy", "sad"),
    ("big", "small"),
    ("fast", "slow"),
    ("large", "tiny"),
    ("glad", "sad"),
    ("light", "dark"),
]


def bos_tokenizer():
    """The test tokenizer, plus a BOS `<s>` that it puts before every text (as Llama-3 and Mistral do)."""
    from tokenizers import processors

    tok = train_tokenizer()
    tok.add_special_tokens(["<s>"])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return tok


def make_teacher_dir(folder: Path, hidden: int = HIDDEN, layers: int = LAYERS, seed: int = 0, tokenizer=None) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    tok = tokenizer or train_tokenizer()
    tok_path = folder / "tokenizer.json"
    tok.save(str(tok_path))
    bos = {"bos_token": "<s>"} if tok.token_to_id("<s>") is not None else {}
    fast = PreTrainedTokenizerFast(tokenizer_file=str(tok_path), eos_token="<|endoftext|>", pad_token="<pad>", **bos)
    fast.save_pretrained(str(folder))
    cfg = LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(cfg).save_pretrained(str(folder))
    return folder


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def make_store(
    path: Path,
    teacher_dir: Path,
    dim: int = HIDDEN,
    seed: int = 0,
    teacher_name: str | None = None,
    tokenizer_json: Path | None = None,
    provenance: dict | None = None,
) -> Path:
    """Every conftest WORDS token gets 1-4 senses; 'river bank' is a 2-token span cloud; SYN/ANT relations,
    symmetric."""
    from conftest import WORDS
    from tokenizers import Tokenizer

    from sensekit.writer import StoreWriter

    tok_json = Path(tokenizer_json or teacher_dir / "tokenizer.json")
    tok = Tokenizer.from_file(str(tok_json))
    rng = np.random.default_rng(seed)
    ids = {w: tok.encode(" " + w, add_special_tokens=False).ids for w in WORDS}
    assert all(len(v) == 1 for v in ids.values())
    counts = {w: int(rng.integers(1, 5)) for w in WORDS}
    owners = [ids[w][0] for w in WORDS for _ in range(counts[w])]
    sense_index = [i for w in WORDS for i in range(counts[w])]
    emb = rng.standard_normal((len(owners), dim)).astype(np.float32)
    span_tokens = tok.encode(" river bank", add_special_tokens=False).ids
    assert len(span_tokens) == 2
    prov = {"teacher": teacher_name or str(teacher_dir), "hidden_size": dim, "tokenizer_sha256": sha256(tok_json)}
    prov.update(provenance or {})
    with StoreWriter(path, dim=dim, tokenizer_json=tok_json, provenance=prov) as w:
        w.add_tokens([ids[x][0] for x in WORDS], [" " + x for x in WORDS], [10] * len(WORDS))
        w.add_senses(emb, sense_index, [5] * len(owners), token_ids=owners)
        w.add_spans([0], [span_tokens], ["river bank"])
        w.add_senses(rng.standard_normal((3, dim)).astype(np.float32), [0, 1, 2], [0, 0, 0], span_ids=[0, 0, 0])
        w.add_words(WORDS + ["river bank"], [ids[x] for x in WORDS] + [span_tokens], [None] * len(WORDS) + [0])
        heads, rel, kind = [], [], []
        for pairs, k in ((SYN, "syn"), (ANT, "ant")):
            for a, b in pairs:
                for h, r in ((a, b), (b, a)):
                    if len(tok.encode(" " + h, add_special_tokens=False).ids) == 1:
                        heads.append(h), rel.append(r), kind.append(k)
        w.replace_relations(
            "pairs",
            {
                "head": heads,
                "related": rel,
                "kind": kind,
                "derived": [False] * len(heads),
                "provenance": [None] * len(heads),
            },
        )
    return path


def write_corpus(path: Path, repeats: int = 12) -> Path:
    rng = np.random.default_rng(1)
    lines = []
    for _ in range(repeats):
        order = rng.permutation(len(CORPUS))
        lines.append(" ".join(CORPUS[i] for i in order) + ".")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def teacher_dir(tmp_path_factory) -> Path:
    return make_teacher_dir(tmp_path_factory.mktemp("teacher") / "tiny-llama")


@pytest.fixture(scope="session")
def store_dir(tmp_path_factory, teacher_dir) -> Path:
    return make_store(tmp_path_factory.mktemp("store") / "tiny.sensekit", teacher_dir)


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "train.txt")


@pytest.fixture(scope="session")
def teacher(teacher_dir):
    from sensekit.builder.teacher import load_teacher

    return load_teacher(str(teacher_dir), device="cpu")
