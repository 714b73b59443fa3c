"""distill frames its windows as `sensekit build` does: with a teacher whose tokenizer adds a BOS, every
window starts with it, the BOS position is never a target, and every corpus token but the first is still
a target exactly once."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import bos_tokenizer, distill_config, make_store, make_teacher_dir

torch = pytest.importorskip("torch")

from sensekit.distill.data import iter_documents, pack_documents, prepare_windows  # noqa: E402


@pytest.fixture(scope="module")
def bos_teacher_dir(tmp_path_factory) -> Path:
    return make_teacher_dir(tmp_path_factory.mktemp("bos") / "tiny-llama-bos", tokenizer=bos_tokenizer())


@pytest.fixture(scope="module")
def bos_teacher(bos_teacher_dir):
    from sensekit.model.teacher import load_teacher

    return load_teacher(str(bos_teacher_dir), device="cpu")


def test_windows_start_with_the_builds_prefix_and_bos_is_never_a_target(corpus_file, bos_teacher):  # noqa: F811
    from sensekit.builder.corpus import special_prefix

    tok = bos_teacher.tokenizer
    bos = tok.convert_tokens_to_ids("<s>")
    assert special_prefix(tok) == [bos]  # the rule `sensekit build` frames its windows with
    w = pack_documents(iter_documents([str(corpus_file)]), tok, seq_len=10)
    ids, attn, labels = w.batch(np.arange(len(w)))  # [N, 10] each
    assert w.n_prefix == 1 and bool((ids[:, 0] == bos).all()) and bool(attn.all())
    assert bool((labels[:, 0] == -100).all()) and bool((labels[:, 1:] >= 0).all())
    assert int((labels >= 0).sum()) == w.n_targets == len(w) * 9
    # the text targets, window after window, are the token stream from its second token on: each exactly once
    stream = np.concatenate(
        [
            np.asarray(tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id])
            for _, text in iter_documents([str(corpus_file)])
        ]
    )
    assert labels[labels >= 0].tolist() == stream[1 : 1 + len(w) * 9].tolist()
    assert bos not in ids[:, 1:].tolist() and bos not in labels.tolist()


def test_a_tokenizer_without_bos_keeps_the_plain_windows(corpus_file, bos_teacher):  # noqa: F811
    w = pack_documents(iter_documents([str(corpus_file)]), bos_teacher.tokenizer, seq_len=10, prefix=[])
    _, _, labels = w.batch(np.arange(len(w)))
    assert w.n_prefix == 0 and bool((labels >= 0).all())


def test_prepared_windows_keep_their_prefix_and_training_skips_the_bos_position(
    tmp_path,
    corpus_file,  # noqa: F811
    bos_teacher_dir,
    bos_teacher,
):
    from sensekit.distill.train import train

    store = make_store(tmp_path / "bos.sensekit", bos_teacher_dir)
    cfg = distill_config(
        store,
        corpus_file,
        bos_teacher_dir,
        tmp_path / "run",
        seq_len=12,
        batch_size=2,
        max_windows=8,
        max_steps=2,
        kappa=2,
        neighbors=2,
    )
    again = prepare_windows(cfg, bos_teacher)  # before the run: the same windows the run will read from disk
    assert again.n_prefix == 1
    train(cfg, teacher=bos_teacher)
    reread = prepare_windows(cfg, bos_teacher)
    assert reread.n_prefix == 1 and np.array_equal(reread.ids, again.ids)
    run = json.loads((Path(cfg.output_dir) / "run.json").read_text())
    assert run["window_prefix_tokens"] == 1 and run["target_tokens"] == 8 * 11
    rows = [json.loads(x) for x in (Path(cfg.output_dir) / "metrics.jsonl").read_text().splitlines()]
    assert all(r["tokens"] == 2 * 11 for r in rows)  # 12 positions per window, the BOS one carries no target
