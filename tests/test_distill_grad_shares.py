"""Each loss term's gradient norm on the trained parameters, logged every --grad-norm-every steps, and its
share in the run's summary (distill.grad_shares)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import distill_config

torch = pytest.importorskip("torch")

from sensekit.distill.grad_shares import TERM_NAMES, TermGradients, grad_summary  # noqa: E402
from sensekit.distill.train import train  # noqa: E402


def test_term_gradients_are_each_terms_own_gradient_summed_over_micro_batches():
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    frozen = torch.nn.Parameter(torch.tensor([3.0]))

    class Cfg:
        lambda_sense, lambda_hidden = 0.5, 0.0

    per_term = TermGradients([w, frozen])
    for x in (torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])):  # two micro-batches, scale 1/2 each
        terms = {name: torch.zeros(()) for name in TERM_NAMES}
        terms["kd"] = (w * x).sum() ** 2  # d/dw = 2 (w.x) x
        terms["sense_pos"] = (3 * w).sum()  # weighted by lambda_sense: d/dw = 0.5 * 3
        terms["hidden"] = w.sum()  # weight 0: not taken
        per_term.add(terms, Cfg(), 0.5)
    norms = per_term.norms()
    assert set(norms) == set(TERM_NAMES)
    assert norms["kd"] == pytest.approx(float(torch.tensor([1.0, 2.0]).norm()))  # 0.5 * (2*1*[1,0] + 2*2*[0,1])
    assert norms["sense_pos"] == pytest.approx(float(torch.tensor([1.5, 1.5]).norm()))
    assert norms["ce"] == norms["hidden"] == norms["sense_neg"] == 0.0
    assert w.grad is None  # nothing accumulated into .grad: the step's own backward is untouched


def test_grad_summary_shares_sum_to_one_over_the_logged_steps():
    rows = [
        {"step": 1},
        {"step": 2, "grad_norms": {"kd": 3.0, "ce": 1.0, "sense_pos": 0.0, "sense_neg": 0.0, "hidden": 0.0}},
        {"step": 4, "grad_norms": {"kd": 1.0, "ce": 1.0, "sense_pos": 2.0, "sense_neg": 0.0, "hidden": 0.0}},
    ]
    norms, share = grad_summary(rows)
    assert [n["step"] for n in norms] == [2, 4] and norms[0]["kd"] == 3.0
    assert share["kd"] == pytest.approx((0.75 + 0.25) / 2) and share["sense_pos"] == pytest.approx(0.25)
    assert sum(share.values()) == pytest.approx(1.0)
    assert grad_summary([{"step": 1}]) == ([], {})


def test_a_run_logs_each_terms_gradient_norm_every_few_steps(tmp_path, store_dir, corpus_file, teacher_dir, teacher):  # noqa: F811
    cfg = distill_config(store_dir, corpus_file, teacher_dir, tmp_path / "run", grad_norm_every=2, lambda_hidden=0.5)
    summary = train(cfg, teacher=teacher)
    rows = [json.loads(x) for x in (Path(cfg.output_dir) / "metrics.jsonl").read_text().splitlines()]
    assert ["grad_norms" in r for r in rows] == [False, True, False, True]
    assert [n["step"] for n in summary["grad_norms"]] == [2, 4] and set(rows[1]["grad_norms"]) == set(TERM_NAMES)
    share = summary["grad_share"]
    assert sum(share.values()) == pytest.approx(1.0) and share["kd"] > 0 and share["hidden"] > 0
    assert json.loads((Path(cfg.output_dir) / "summary.json").read_text())["grad_share"] == share


def test_a_lone_terms_gradient_norm_is_the_steps_gradient_norm(tmp_path, store_dir, corpus_file, teacher_dir, teacher):  # noqa: F811
    # alpha 0 and lambda 0: only CE has a gradient, so its norm is the whole step's (before clipping), over
    # two accumulated micro-batches
    cfg = distill_config(
        store_dir, corpus_file, teacher_dir, tmp_path / "run", alpha=0.0, lambda_sense=0.0, grad_norm_every=1,
        grad_accum=2, batch_size=2,
    )  # fmt: skip
    train(cfg, teacher=teacher)
    rows = [json.loads(x) for x in (Path(cfg.output_dir) / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        assert r["grad_norms"]["ce"] == pytest.approx(r["grad_norm"], rel=1e-4)
        assert r["grad_norms"]["kd"] == 0.0 and r["grad_norms"]["sense_pos"] == 0.0
