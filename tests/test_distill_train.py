"""distill.train end to end on a tiny Llama teacher and store: the loss falls, resume and the
frozen-prefix cache reproduce an uninterrupted uncached run, lambda=0 is the same run minus the
sense term, mismatches are refused, and the saved student loads without sensekit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import HIDDEN, distill_config, make_store, make_teacher_dir

torch = pytest.importorskip("torch")

from sensekit.distill.config import DistillConfig  # noqa: E402
from sensekit.distill.train import NonFiniteLoss, train  # noqa: E402
from sensekit.errors import InputError, TeacherMismatch  # noqa: E402

TERMS = ("kd", "ce", "sense_pos", "sense_neg", "total")


def metrics(out) -> list[dict]:
    return [json.loads(x) for x in (Path(out) / "metrics.jsonl").read_text().splitlines()]


def assert_same_losses(a: list[dict], b: list[dict], rel: float) -> None:
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b):
        for k in TERMS:
            assert rb[k] == pytest.approx(ra[k], rel=rel, abs=1e-7), (ra["step"], k, ra[k], rb[k])


def test_total_loss_falls_and_files_are_written(tmp_path, store_dir, corpus_file, teacher_dir, teacher):  # noqa: F811
    cfg = distill_config(
        store_dir,
        corpus_file,
        teacher_dir,
        tmp_path / "run",
        max_steps=30,
        lr=1e-2,
        train_layers="top2",
        warmup_frac=0.1,
        eval_holdout=4,
        max_windows=24,
        save_every=10,
    )
    events = []
    summary = train(cfg, teacher=teacher, callback=lambda stage, *_, **__: events.append(stage))
    rows = metrics(cfg.output_dir)
    assert len(rows) == 30 and set(TERMS) | {"lr", "grad_norm", "sense_positions"} <= set(rows[0])
    first, last = sum(r["total"] for r in rows[:5]) / 5, sum(r["total"] for r in rows[-5:]) / 5
    assert last < first - 0.1, (first, last)
    assert any(r["sense_pos"] > 0 for r in rows) and any(r["sense_neg"] > 0 for r in rows)
    out = Path(cfg.output_dir)
    assert (out / "config.toml").is_file() and DistillConfig.from_toml(out / "config.toml") == cfg
    assert (out / "eval.jsonl").is_file()
    # the held-out perplexity is the saved student's, read back with plain transformers on the last 4 windows
    from transformers import AutoModelForCausalLM

    from sensekit.distill.data import prepare_windows

    windows = prepare_windows(cfg, teacher)
    held = windows.subset(slice(len(windows) - 4, None))
    ids, attn, labels = held.batch(np.arange(4))
    student = AutoModelForCausalLM.from_pretrained(summary["student_dir"]).eval()
    with torch.no_grad():
        logits = student(input_ids=ids, attention_mask=attn).logits
    ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
    assert summary["eval"]["ppl"] == pytest.approx(float(torch.exp(ce)), rel=1e-4)
    assert [p.name for p in sorted((out / "checkpoints").iterdir())] == ["step-00000020", "step-00000030"]
    assert {"start", "step", "eval", "checkpoint", "done"} <= set(events)


def test_kd_baseline_is_the_same_run_without_the_sense_term(tmp_path, store_dir, corpus_file, teacher_dir, teacher):  # noqa: F811
    dskd = metrics(
        train(distill_config(store_dir, corpus_file, teacher_dir, tmp_path / "a" / "run"), teacher=teacher)[
            "output_dir"
        ]
    )
    kd_cfg = distill_config(store_dir, corpus_file, teacher_dir, tmp_path / "b" / "run", lambda_sense=0.0)
    kd = metrics(train(kd_cfg, teacher=teacher)["output_dir"])
    # same data, init and schedule: step 1 (before any update) has identical KD and CE
    assert kd[0]["kd"] == pytest.approx(dskd[0]["kd"], rel=1e-6)
    assert kd[0]["ce"] == pytest.approx(dskd[0]["ce"], rel=1e-6)
    assert [r["tokens"] for r in kd] == [r["tokens"] for r in dskd] and [r["lr"] for r in kd] == [r["lr"] for r in dskd]
    assert all(r["sense_pos"] == 0 and r["sense_neg"] == 0 for r in kd)
    assert all(r["total"] == pytest.approx(r["kd"] + r["ce"], rel=1e-6) for r in kd)
    assert dskd[2]["kd"] != kd[2]["kd"]  # the sense gradient changed the student (step 1 has lr 0: warm-up)


def test_resume_matches_an_uninterrupted_run(tmp_path, store_dir, corpus_file, teacher_dir, teacher):  # noqa: F811
    full = distill_config(
        store_dir,
        corpus_file,
        teacher_dir,
        tmp_path / "full" / "run",
        max_steps=6,
        save_every=3,
        grad_accum=2,
        max_windows=24,
    )
    train(full, teacher=teacher)
    cut = full.replace(output_dir=str(tmp_path / "cut"))

    class Stop(Exception):
        pass

    def stop_at_5(stage, done=None, total=None, /, **info):
        if stage == "step" and done == 5 and info["step"] == 5:
            raise Stop

    with pytest.raises(Stop):
        train(cut, teacher=teacher, callback=stop_at_5)
    with pytest.raises(InputError, match="--resume"):
        train(cut, teacher=teacher)
    with pytest.raises(InputError, match="--lr"):
        train(cut.replace(lr=1.0), teacher=teacher, resume=True)
    train(cut, teacher=teacher, resume=True)
    assert_same_losses(metrics(full.output_dir), metrics(cut.output_dir), rel=1e-5)


def test_frozen_prefix_cache_matches_the_uncached_path(tmp_path, store_dir, corpus_file, teacher_dir, teacher):  # noqa: F811
    plain = distill_config(
        store_dir, corpus_file, teacher_dir, tmp_path / "plain" / "run", max_steps=0, epochs=3.0, max_windows=8
    )
    cached = plain.replace(output_dir=str(tmp_path / "cached"), cache=True)
    train(plain, teacher=teacher)
    assert train(cached, teacher=teacher)["cache_hits"] == 4  # epochs 2 and 3 read every batch from the cache
    a, b = metrics(plain.output_dir), metrics(cached.output_dir)
    assert len(a) == 6  # 8 windows / batch 4 = 2 steps per epoch, epochs 2-3 read the cache
    assert_same_losses(a, b, rel=1e-5)
    cache = Path(cached.output_dir) / "cache"
    assert (cache / "prefix.f32").stat().st_size == 8 * 24 * HIDDEN * 4
    assert json.loads((cache / "meta.json").read_text())["shape"] == [8, 24, HIDDEN]


def test_saved_student_loads_with_plain_transformers(tmp_path, store_dir, corpus_file, teacher_dir, teacher):  # noqa: F811
    cfg = distill_config(store_dir, corpus_file, teacher_dir, tmp_path / "run", max_steps=2)
    student_dir = Path(train(cfg, teacher=teacher)["student_dir"])
    code = (
        "import sys; sys.modules['sensekit'] = None; sys.modules['distill'] = None\n"
        "import torch, json\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        f"m = AutoModelForCausalLM.from_pretrained({str(student_dir)!r})\n"
        f"t = AutoTokenizer.from_pretrained({str(student_dir)!r})\n"
        "ids = t(' the bank of the river', return_tensors='pt').input_ids\n"
        "out = m(ids).logits\n"
        "print(json.dumps({'layers': m.config.num_hidden_layers, 'finite': bool(torch.isfinite(out).all()),"
        " 'shape': list(out.shape), 'w': m.model.layers[-1].mlp.down_proj.weight.sum().item()}))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=900
    )  # a fresh torch import: minutes on a loaded 2-core machine
    assert res.returncode == 0, res.stderr[-2000:]
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    assert doc["layers"] == 3 and doc["finite"] and doc["shape"][-1] == teacher.vocab_size
    state = torch.load(Path(cfg.output_dir) / "checkpoints" / "step-00000002" / "state.pt", weights_only=False)
    trained = state["trainable"]["lm.model.layers.2.mlp.down_proj.weight"]
    assert doc["w"] == pytest.approx(trained.sum().item(), rel=1e-5)
    # the teacher's own layer 2 was not touched by training
    assert not torch.equal(teacher.model.model.layers[2].mlp.down_proj.weight, trained)


def test_any_hf_student_with_another_width_gets_a_projection(tmp_path, store_dir, corpus_file, teacher_dir, teacher):  # noqa: F811
    from transformers import LlamaConfig, LlamaForCausalLM

    sdir = tmp_path / "narrow"
    cfg_t = teacher.model.config
    small = LlamaConfig(
        vocab_size=cfg_t.vocab_size,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=256,
        eos_token_id=cfg_t.eos_token_id,
        pad_token_id=cfg_t.pad_token_id,
    )
    LlamaForCausalLM(small).save_pretrained(str(sdir))
    teacher.tokenizer.save_pretrained(str(sdir))
    cfg = distill_config(store_dir, corpus_file, teacher_dir, tmp_path / "run", student=str(sdir), max_steps=3)
    summary = train(cfg, teacher=teacher)
    rows = metrics(cfg.output_dir)
    # sensed positions: some in every step (the store covers the corpus), never more than the target tokens
    assert all(0 < r["sense_positions"] <= r["tokens"] for r in rows)
    assert any(r["sense_pos"] > 0 for r in rows)
    out = Path(summary["student_dir"])
    assert (out / "sense_projection.pt").is_file()
    assert torch.load(out / "sense_projection.pt")["weight"].shape == (HIDDEN, 16)


def test_a_student_with_another_tokenizer_is_refused(tmp_path, store_dir, corpus_file, teacher_dir, teacher):  # noqa: F811
    from conftest import train_tokenizer

    other = make_teacher_dir(tmp_path / "other", tokenizer=train_tokenizer(vocab_size=280))
    cfg = distill_config(store_dir, corpus_file, teacher_dir, tmp_path / "run", student=str(other))
    with pytest.raises(TeacherMismatch, match="another tokenizer"):
        train(cfg, teacher=teacher)


def test_store_mismatches_are_refused_naming_both(tmp_path, store_dir, corpus_file, teacher_dir, teacher):  # noqa: F811
    from conftest import train_tokenizer

    wrong_name = make_store(tmp_path / "name.sensekit", teacher_dir, teacher_name="some/other-model")
    with pytest.raises(TeacherMismatch, match=r"'some/other-model'.*" + str(teacher_dir).replace("/", ".")):
        train(distill_config(wrong_name, corpus_file, teacher_dir, tmp_path / "run"), teacher=teacher)
    wrong_dim = make_store(tmp_path / "dim.sensekit", teacher_dir, dim=16)
    with pytest.raises(TeacherMismatch, match=f"16-dim.*hidden size {HIDDEN}"):
        train(distill_config(wrong_dim, corpus_file, teacher_dir, tmp_path / "run"), teacher=teacher)
    tok_path = tmp_path / "tok2.json"
    tok = train_tokenizer(vocab_size=280)
    tok.save(str(tok_path))
    wrong_tok = make_store(tmp_path / "tok.sensekit", teacher_dir, tokenizer_json=tok_path)
    with pytest.raises(TeacherMismatch, match="another tokenizer"):
        train(distill_config(wrong_tok, corpus_file, teacher_dir, tmp_path / "run"), teacher=teacher)


def test_nan_stops_with_the_step_and_term(tmp_path, store_dir, corpus_file, teacher_dir, teacher):  # noqa: F811
    cfg = distill_config(
        store_dir, corpus_file, teacher_dir, tmp_path / "run", lr=1e30, warmup_frac=0.0, max_grad_norm=0.0
    )
    with pytest.raises(NonFiniteLoss, match=r"step 2: the \w+ loss is (nan|inf)"):
        train(cfg, teacher=teacher)


def test_kd_hidden_and_dskd_arms_share_data_order_and_differ_only_in_their_terms(
    tmp_path,
    store_dir,
    corpus_file,  # noqa: F811
    teacher_dir,
    teacher,
):  # noqa: F811
    kd_cfg = distill_config(store_dir, corpus_file, teacher_dir, tmp_path / "kd" / "run", lambda_sense=0.0)
    arms = {
        "kd": kd_cfg,
        "hidden": kd_cfg.replace(output_dir=str(tmp_path / "hid"), lambda_hidden=1.0),
        "dskd": kd_cfg.replace(output_dir=str(tmp_path / "dskd"), lambda_sense=1.0),
    }
    rows = {name: metrics(train(cfg, teacher=teacher)["output_dir"]) for name, cfg in arms.items()}
    for name in ("hidden", "dskd"):  # step 1 runs before any update: the same batch gives the same KD and CE
        assert rows[name][0]["kd"] == pytest.approx(rows["kd"][0]["kd"], rel=1e-6)
        assert rows[name][0]["ce"] == pytest.approx(rows["kd"][0]["ce"], rel=1e-6)
        assert [r["tokens"] for r in rows[name]] == [r["tokens"] for r in rows["kd"]]
        assert [r["lr"] for r in rows[name]] == [r["lr"] for r in rows["kd"]]
    assert all(r["hidden"] == 0 for r in rows["kd"] + rows["dskd"])
    assert all(r["hidden"] > 0 and r["sense_pos"] == 0 for r in rows["hidden"])
    assert all(r["total"] == pytest.approx(r["kd"] + r["ce"] + r["hidden"], rel=1e-6) for r in rows["hidden"])
    assert rows["hidden"][2]["kd"] != rows["kd"][2]["kd"]  # the hidden gradient changed the student
    assert (
        json.loads((Path(arms["hidden"].output_dir) / "student" / "distill_info.json").read_text())["lambda_hidden"]
        == 1.0
    )


def test_a_layer_selection_trains_its_listed_layers_with_an_exact_cache(
    tmp_path,
    store_dir,
    corpus_file,  # noqa: F811
    teacher_dir,
    teacher,
):  # noqa: F811
    from transformers import AutoModelForCausalLM

    from sensekit.distill.data import Windows
    from sensekit.distill.evaluate import evaluate
    from sensekit.distill.student import DistillStudent

    # teacher layers 0, 1, 3; student layer 1 trains; the frozen layer above it (teacher 3) runs every step
    plain = distill_config(
        store_dir,
        corpus_file,
        teacher_dir,
        tmp_path / "plain" / "run",
        student_layers="0,1,3",
        train_layers="1",
        max_steps=0,
        epochs=3.0,
        max_windows=10,
        eval_holdout=2,
    )
    cached = plain.replace(output_dir=str(tmp_path / "cached"), cache=True)
    train(plain, teacher=teacher)
    summary = train(cached, teacher=teacher)
    assert summary["cache_hits"] == 4
    assert_same_losses(metrics(plain.output_dir), metrics(cached.output_dir), rel=1e-5)
    out = Path(cached.output_dir)
    selection = {
        "teacher_layers": [0, 1, 3],
        "trained_layers": [1],
        "teacher_num_layers": 4,
        "teacher": str(teacher_dir),
    }
    run = json.loads((out / "run.json").read_text())
    assert run["student_selection"] == selection and run["check_split_diff"] <= 1e-5
    assert run["teacher_logits"] == "lm_head(g)" and run["effective_lr"] == cached.lr
    state = torch.load(out / "checkpoints" / "step-00000006" / "state.pt", weights_only=False)
    assert state["trainable"] and all(n.startswith("lm.model.layers.1.") for n in state["trainable"])
    assert json.loads((out / "student" / "config.json").read_text())["sensekit"] == selection
    # the saved student, loaded with plain transformers, gives the held-out numbers it had in training
    loaded = AutoModelForCausalLM.from_pretrained(str(out / "student")).eval()
    assert loaded.config.num_hidden_layers == 3
    with np.load(out / "data" / "train.npz") as z:
        held_out = Windows(z["ids"], z["lengths"], int(z["n_prefix"])).subset(slice(8, 10))
    again = evaluate(DistillStudent(loaded, HIDDEN, teacher.vocab_size), teacher, held_out, 4, "cpu")
    assert again["ppl"] == pytest.approx(summary["eval"]["ppl"], rel=1e-5)


def test_an_inexact_split_is_refused_at_start_up(
    tmp_path,
    store_dir,
    corpus_file,
    teacher_dir,
    teacher,  # noqa: F811
    monkeypatch,
):
    import sensekit.distill.student

    real = sensekit.distill.student.resume_at_layer
    monkeypatch.setattr(
        sensekit.distill.student, "resume_at_layer", lambda *a: real(*a) + 1e-2
    )  # e.g. a re-applied input
    cfg = distill_config(store_dir, corpus_file, teacher_dir, tmp_path / "run", train_layers="top1", cache=True)
    with pytest.raises(InputError, match="frozen-prefix cache is not exact for LlamaForCausalLM.*drop --cache"):
        train(cfg, teacher=teacher)
    assert not (Path(cfg.output_dir) / "metrics.jsonl").exists()  # refused before any step


def test_a_store_keyed_by_the_input_token_is_refused(tmp_path, corpus_file, teacher_dir, teacher):  # noqa: F811
    store = make_store(tmp_path / "input.sensekit", teacher_dir, provenance={"key_mode": "input"})
    with pytest.raises(TeacherMismatch, match="built with --key input .* needs --key next"):
        train(distill_config(store, corpus_file, teacher_dir, tmp_path / "run"), teacher=teacher)


def test_the_learning_rate_scales_with_processes_unless_told_not_to():
    from sensekit.distill.train import effective_lr

    cfg = DistillConfig(lr=2e-5)
    assert effective_lr(cfg, 1) == 2e-5 and effective_lr(cfg, 4) == pytest.approx(8e-5)
    assert effective_lr(cfg.replace(scale_lr=False), 4) == 2e-5


def test_the_batch_order_splits_each_micro_step_between_processes_and_depends_only_on_seed_and_epoch():
    from sensekit.distill.batches import BatchOrder

    one = BatchOrder(seed=3, n_windows=10, batch_size=2, grad_accum=1)
    two = [BatchOrder(3, 10, 2, 1, processes=2, process_index=i) for i in range(2)]
    assert one.steps_per_epoch == 5 and two[0].steps_per_epoch == 2
    for step in range(2):  # in an epoch, two processes read the rows one process reads, four at a time
        both = np.concatenate([o.batches(step)[0] for o in two])
        assert sorted(both) == sorted(np.concatenate([one.batches(2 * step)[0], one.batches(2 * step + 1)[0]]))
    later = BatchOrder(3, 10, 2, 1)
    assert np.array_equal(later.batches(7)[0], one.batches(7)[0])  # a resumed run needs no state
    assert sorted(np.concatenate([one.batches(s)[0] for s in range(5)])) == list(range(10))  # an epoch: each once
    with pytest.raises(InputError, match="fewer than one optimizer step"):
        BatchOrder(0, 3, 2, 2)
