"""Shared test factories: one tiny Llama teacher built from config, a tiny sense store for it, corpora,
one tiny DistillConfig and one in-process CLI runner.

Everything is real: the teacher folder is a LlamaForCausalLM (random weights, from config) saved
with save_pretrained beside a fast tokenizer trained on the fly (conftest.train_tokenizer), loaded
through `sensekit.model.teacher.load_teacher`; stores are written with `StoreWriter`. The pytest
fixtures built on these live in conftest.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from conftest import CORPUS, WORDS, train_tokenizer

HIDDEN = 32
LAYERS = 4

TEXTS = CORPUS + [
    "the river bank was green and the spring water was cold",
    "money in the bank is safe, said the banker with a smile",
    "a light breeze moved the light curtains in the dark room",
]

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


def make_teacher_dir(
    folder: Path,
    hidden: int = HIDDEN,
    layers: int = LAYERS,
    seed: int = 0,
    tokenizer=None,
    random_norm: bool = False,
    max_positions: int = 512,
) -> Path:
    """Save a random tiny LlamaForCausalLM and a fast tokenizer to `folder` (loadable by load_teacher).

    The tokenizer's BOS is `<s>` when it has one (and then adds it), else `<|endoftext|>` (not added).
    `random_norm`: a non-trivial final-norm weight, so "after the norm" is really tested.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    tok = tokenizer or train_tokenizer()
    tok_path = folder / "tokenizer.json"
    tok.save(str(tok_path))
    bos = "<s>" if tok.token_to_id("<s>") is not None else "<|endoftext|>"
    fast = PreTrainedTokenizerFast(
        tokenizer_file=str(tok_path), eos_token="<|endoftext|>", pad_token="<pad>", bos_token=bos
    )
    fast.save_pretrained(str(folder))
    cfg = LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    if random_norm:
        with torch.no_grad():
            model.model.norm.weight.uniform_(0.5, 1.5)
    model.save_pretrained(str(folder))
    return folder


def make_tiny_teacher_dir(folder: Path, *, layers: int = 2, hidden: int = 32, seed: int = 0) -> Path:
    """The build tests' teacher: 2 layers and a non-trivial final norm."""
    return make_teacher_dir(folder, hidden=hidden, layers=layers, seed=seed, random_norm=True)


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


def run_cli(capsys, *args, entry: Callable[[list[str]], object] | None = None) -> tuple[int, str, str]:
    """`sensekit ARGS` (or `entry(ARGS)`) in this process: (exit code, stdout, stderr).

    A SystemExit with no code is 0, with a message (not an int) 1, as the shell would see it."""
    if entry is None:
        from sensekit.cli import main as entry
    try:
        entry([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# The tiny distill run of the tests: 3 of the teacher's layers, the top one trained, 4 steps of 4 windows.
TINY_DISTILL = dict(
    student_layers=3,
    train_layers="top1",
    seq_len=24,
    batch_size=4,
    max_windows=16,
    max_steps=4,
    lr=3e-3,
    warmup_frac=0.25,
    sample_floor=4,
    kappa=3,
    neighbors=3,
    device="cpu",
    save_every=0,
)


def distill_config(store: Path, corpus: Path, teacher: Path, output_dir: Path, **overrides):
    """The one tiny DistillConfig of the tests (TINY_DISTILL), with `overrides` on top."""
    from sensekit.distill.config import DistillConfig

    fields = dict(TINY_DISTILL, store=str(store), data=(str(corpus),), teacher=str(teacher), output_dir=str(output_dir))
    return DistillConfig(**{**fields, **overrides})


def build_config(corpus: Path, store: Path, **overrides):
    """The tiny BuildConfig the build tests share: 16-token windows, 3 senses of up to 6 samples, no checkpoints."""
    from sensekit.builder.config import BuildConfig

    values = dict(
        corpus=(str(corpus),),
        store=str(store),
        seq_len=16,
        batch_size=2,
        senses_per_token=3,
        samples_per_token=6,
        contexts_per_sense=2,
        checkpoint_every=0,
        link_budget=0,  # no WordNet linking (tests/test_annotate.py builds a linked store with a fake WordNet)
    )
    return BuildConfig(**{**values, **overrides})
