"""`sensekit distill` (sensekit/cli/distill.py): flags from DistillConfig, TOML precedence, one-line errors;
DistillConfig validation; the data modes."""

from __future__ import annotations

import json
from dataclasses import fields
from functools import partial

import numpy as np
import pytest
from helpers import run_cli

torch = pytest.importorskip("torch")

from sensekit.cli import main  # noqa: E402
from sensekit.distill.config import DistillConfig  # noqa: E402
from sensekit.errors import InputError  # noqa: E402

# `sensekit distill ARGS`
run = partial(run_cli, entry=lambda argv: main(["distill", *argv]))


def test_every_config_field_is_a_flag_with_help(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    monkeypatch.setenv("TERMINAL_WIDTH", "300")
    code, out, _ = run(capsys, "--help")
    assert code == 0
    text = " ".join(out.split())
    for f in fields(DistillConfig):
        assert "--" + f.name.replace("_", "-") in text, f.name
        assert f.metadata["help"].split()[0] in text
    assert "--config" in text and "--resume" in text


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--tau", "0"], "--tau must be > 0"),
        (["--warmup-frac", "1.5"], "--warmup-frac must be in [0, 1)"),
        (["--train-layers", "top20"], "--train-layers top20 trains more layers than the student has (15"),
        (["--train-layers", "3,15"], "--train-layers 3,15: student layer 15 does not exist"),
        (["--train-layers", "2,1"], "--train-layers '2,1': layers must be sorted and unique"),
        (["--train-layers", "topx"], "--train-layers 'topx': write topN"),
        (["--student-layers", "0-6,5-9"], "--student-layers '0-6,5-9': layers must be sorted and unique"),
        (["--student-layers", "6-0"], "runs backwards"),
        (["--student-layers", "0-3", "--train-layers", "0,1", "--cache"], "--cache needs a frozen layer below"),
        (["--lambda-hidden", "-1"], "--lambda-hidden must be >= 0"),
        (["--data-mode", "chat"], "--data-mode must be one of corpus, prompts"),
        (["--cache", "--student", "gpt2"], "--cache needs --student truncated"),
    ],
)
def test_bad_values_are_one_line_errors(capsys, args, needle):
    code, out, err = run(capsys, "--store", "x", "--data", "y", *args)
    assert code == 1
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err


def test_missing_store_is_a_one_line_error_with_exit_2(capsys, tmp_path, corpus_file):  # noqa: F811
    code, _, err = run(
        capsys,
        "--store",
        str(tmp_path / "nope.sensekit"),
        "--data",
        str(corpus_file),
        "--teacher",
        "/nonexistent/teacher",
        "--output-dir",
        str(tmp_path / "o"),
        "--device",
        "cpu",
    )
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "error:" in lines[0] and "nope.sensekit" in lines[0]
    assert "Traceback" not in err


def test_config_file_then_flags(capsys, tmp_path, store_dir, corpus_file, teacher_dir):  # noqa: F811
    toml = tmp_path / "run.toml"
    out = tmp_path / "out"
    toml.write_text(f"""
[distill]
store = "{store_dir}"
data = ["{corpus_file}"]
teacher = "{teacher_dir}"
student_layers = 3
train_layers = "top1"
seq_len = 16
batch_size = 2
max_windows = 8
max_steps = 2
tau = 3.0
lr = 0.002
output_dir = "{out}"
device = "cpu"
""")
    code, _, err = run(capsys, "--config", str(toml), "--tau", "4", "--kappa", "2", "--no-own-senses-negative")
    assert code == 0, err
    resolved = DistillConfig.from_toml(out / "config.toml")
    assert (resolved.tau, resolved.lr, resolved.kappa, resolved.seq_len) == (4.0, 0.002, 2, 16)
    assert "done: 2 steps" in err and (out / "student" / "config.json").is_file()
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2


def test_unknown_toml_setting_is_refused(tmp_path):
    toml = tmp_path / "bad.toml"
    toml.write_text("kapa = 3\n")
    with pytest.raises(InputError, match="unknown setting.*kapa"):
        DistillConfig.from_toml(toml)


def test_config_roundtrip_and_types(tmp_path):
    cfg = DistillConfig(store="s", data=("a", "b"), lr=1, kappa=4)
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float) and cfg.data == ("a", "b")
    assert DistillConfig.from_toml(cfg.save(tmp_path)) == cfg
    with pytest.raises(InputError, match="--kappa must be int"):
        DistillConfig(kappa=2.5)
    with pytest.raises(InputError, match="--kappa must be >= 1"):
        DistillConfig(kappa=0)
    defaults = DistillConfig()
    assert (
        defaults.tau,
        defaults.alpha,
        defaults.lambda_sense,
        defaults.kappa,
        defaults.beta_p,
        defaults.beta_n,
        defaults.neighbors,
        defaults.sample_frac,
        defaults.sample_floor,
        defaults.own_senses_negative,
        defaults.student_layers,
        defaults.train_layers,
        defaults.lambda_hidden,
        defaults.scale_lr,
    ) == (2.0, 0.7, 1.0, 5, "0.0", "1.0", 25, 0.4, 25, False, "15", "top2", 0.0, True)


def test_corpus_windows_cover_every_token_once(tmp_path, corpus_file, teacher):  # noqa: F811
    from sensekit.distill.data import iter_documents, pack_documents

    w = pack_documents(iter_documents([str(corpus_file)]), teacher.tokenizer, seq_len=10)
    ids, attn, labels = w.batch(np.arange(len(w)))
    assert ids.shape == labels.shape == (len(w), 10) and bool(attn.all())
    # consecutive windows overlap by one token: the target of a window's last position is the next window's first input
    assert torch.equal(labels[:-1, -1], ids[1:, 0])


def test_prompts_mode_generates_cuts_and_targets_every_position(tmp_path, teacher):  # noqa: F811
    from sensekit.distill.data import prepare_windows

    prompts = tmp_path / "p.jsonl"
    texts = ["the bank of", "a bat flew", "good and bad are"]
    prompts.write_text("\n".join(json.dumps({"prompt": p}) for p in texts) + "\n")
    cfg = DistillConfig(
        store="s",
        data=(str(prompts),),
        data_mode="prompts",
        seq_len=20,
        gen_max_new_tokens=8,
        output_dir=str(tmp_path / "o"),
    )
    w = prepare_windows(cfg, teacher)
    assert len(w) == 3 and (tmp_path / "o" / "data" / "train.npz").is_file()
    for row, length, prompt in zip(w.ids, w.lengths, ["the bank of", "a bat flew", "good and bad are"]):
        p = teacher.tokenizer(prompt)["input_ids"]
        assert list(row[: len(p)]) == p and len(p) + 1 <= length <= len(p) + 8
    ids, attn, labels = w.batch(np.arange(3))
    assert int((labels >= 0).sum()) == int((w.lengths - 1).sum())  # every position, prompt included, is a target
    again = prepare_windows(cfg, teacher)  # reused from disk, not regenerated
    assert np.array_equal(again.ids, w.ids)


def test_training_flags_before_compare_are_refused(capsys):
    """`distill` is a group whose own flags train: a training flag given before `compare` would be
    silently dropped, so it is one line naming the flag instead."""
    code, _, err = run(capsys, "--max-steps", "3", "compare", "--config", "experiment.toml")
    assert code == 1 and err.count("\n") == 1
    assert "--max-steps" in err and "training flag" in err
