"""`sensekit eval student` end to end: a plain HF causal LM folder beside the tiny store's teacher."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_eval_heldout import nltk_wordnet, wordnet_here  # noqa: F401
from test_eval_store import (  # noqa: F401
    TEXTS,
    bos_teacher,
    bos_teacher_dir,
    eval_files,
    eval_store,
    invoke,
    loss_view_store,
    make_bos_teacher_dir,
)

torch = pytest.importorskip("torch")

from sensekit.errors import InputError, TeacherMismatch  # noqa: E402


@pytest.fixture(scope="session")
def student_dir(tmp_path_factory) -> Path:
    """Another random Llama (one layer, another seed) with the teacher's tokenizer: no sensekit metadata."""
    return make_bos_teacher_dir(tmp_path_factory.mktemp("student") / "plain-hf", layers=1, seed=7)


@pytest.fixture(scope="session")
def heldout(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("heldout") / "heldout.txt"
    path.write_text("\n\n".join(TEXTS[::-1] * 2) + "\n", encoding="utf-8")
    return path


def config(eval_store, student, heldout, tmp_path, **kw):  # noqa: F811
    from sensekit.distill.eval_config import StudentEvalConfig

    f = eval_files(tmp_path)
    base = dict(
        student=str(student),
        store=str(eval_store),
        data=(str(heldout),),
        wic=str(f["wic"]),
        seq_len=16,
        max_windows=6,
        batch_size=4,
        device="cpu",
    )
    base.update(kw)
    return StudentEvalConfig(**base)


def test_the_teacher_as_its_own_student_matches_itself(
    eval_store,  # noqa: F811
    bos_teacher,  # noqa: F811
    bos_teacher_dir,  # noqa: F811
    heldout,
    tmp_path,
    wordnet_here,  # noqa: F811
):
    from sensekit.distill.student_eval import evaluate_student

    events = []
    r = evaluate_student(
        config(eval_store, bos_teacher_dir, heldout, tmp_path),
        progress=lambda stage, *counts, **info: events.append((stage, *counts)),
        teacher=bos_teacher,
    )
    h = r["heldout"]
    from sensekit.distill.data import iter_documents, pack_documents

    w = pack_documents(iter_documents([heldout]), bos_teacher.tokenizer, 16, 6)
    assert len(w) == 6 and h["tokens"] == int((w.batch(np.arange(6))[2] >= 0).sum())  # every target of the windows
    assert h["top1_agreement"] == 1.0 and h["kl"] == pytest.approx(0.0, abs=1e-6)
    assert h["student"]["ppl"] == pytest.approx(h["teacher"]["ppl"], rel=1e-5)
    assert h["student"]["accuracy"] == h["teacher"]["accuracy"]
    w = r["wic"]  # the WordNet held-out pairs `eval store` scores, and the WiC file beside them
    assert w["status"] == "ok" and w["data"] == "wordnet-heldout" and w["student"] == w["teacher"]
    assert w["pair_set"]["pairs"] == w["total"] > 500 and w["pairs"] > 0
    assert r["wic_file"]["status"] == "ok" and r["wic_file"]["total"] == 4
    assert r["wic_file"]["student"] == r["wic_file"]["teacher"]
    rows = [row[0] for row in r["rows"]]
    assert any(x.startswith("WiC accuracy, WordNet held-out pairs") for x in rows)
    assert any(x.startswith("WiC accuracy, WiC file") for x in rows)
    s = r["synant"]
    assert s["status"] == "ok" and s["pairs"] == {"syn": 3, "ant": 3}
    assert s["student"]["auc"] == pytest.approx(s["teacher"]["auc"]) and "NOT held out" in s["source"]
    assert events[0] == ("loading models", 0, 4) and ("synonym/antonym separation", 3, 4) in events
    json.dumps(r)


def test_plain_hf_student_via_cli_with_a_pair_file(eval_store, student_dir, heldout, tmp_path):  # noqa: F811
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text(
        "# held out\nhappy\tglad\tsyn\nbank\triver\tsyn\ngood\tbad\tant\nlight\tdark\tant\n", encoding="utf-8"
    )
    f = eval_files(tmp_path)
    res = invoke(
        "eval",
        "student",
        "--student",
        student_dir,
        "--store",
        eval_store,
        "--data",
        heldout,
        "--wic",
        f["wic"],
        "--pairs",
        pairs,
        "--seq-len",
        "16",
        "--max-windows",
        "4",
        "--device",
        "cpu",
        "--json",
    )
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    h = r["heldout"]
    assert h["kl"] > 0 and h["student"]["ppl"] > 1 and h["tokens"] > 3 * 14
    agree = h["top1_agreement"] * h["tokens"]  # a share of the tokens: a whole number of them
    assert agree == pytest.approx(round(agree), abs=1e-6 * h["tokens"]) and round(agree) > 0
    s = r["synant"]
    assert s["pairs"] == {"syn": 2, "ant": 2} and "held out by the caller" in s["source"]
    for side in ("student", "teacher"):
        assert s[side]["auc"] * 4 == pytest.approx(round(s[side]["auc"] * 4))  # 2 syn x 2 ant comparisons
        assert s[side]["gap"] == pytest.approx(s[side]["syn_mean"] - s[side]["ant_mean"])
    assert [row[0] for row in r["rows"]][:2] == ["held-out perplexity", "next-token accuracy"]
    res = invoke(
        "eval",
        "student",
        "--student",
        student_dir,
        "--store",
        eval_store,
        "--data",
        heldout,
        "--wic",
        f["wic"],
        "--seq-len",
        "16",
        "--max-windows",
        "2",
        "--device",
        "cpu",
    )
    assert res.exit_code == 0, res.output
    assert "held-out perplexity" in res.stdout and "NOT held out" in res.stdout


def test_separation_by_hand():
    from sensekit.distill.student_eval import separation

    r = separation(np.array([0.9, 0.8, 0.1, 0.85]), np.array([True, True, False, False]))
    assert r["gap"] == pytest.approx(0.85 - 0.475)
    assert r["auc"] == pytest.approx(0.75)  # syn scores beat ant scores in 3 of the 4 (syn, ant) comparisons


def test_user_errors(eval_store, student_dir, heldout, tmp_path):  # noqa: F811
    bad = tmp_path / "pairs.tsv"
    bad.write_text("happy glad similar\n")
    res = invoke(
        "eval",
        "student",
        "--student",
        student_dir,
        "--store",
        eval_store,
        "--data",
        heldout,
        "--pairs",
        bad,
        "--device",
        "cpu",
    )
    assert isinstance(res.exception, InputError) and "syn|ant" in str(res.exception)
    res = invoke("eval", "student", "--store", eval_store, "--data", heldout)
    assert isinstance(res.exception, InputError) and "--student is required" in str(res.exception)


def test_a_student_with_another_tokenizer_is_refused(eval_store, heldout, tmp_path):  # noqa: F811
    from conftest import train_tokenizer
    from helpers import make_teacher_dir

    other = make_teacher_dir(tmp_path / "other", tokenizer=train_tokenizer(vocab_size=280))
    res = invoke("eval", "student", "--student", other, "--store", eval_store, "--data", heldout, "--device", "cpu")
    assert isinstance(res.exception, TeacherMismatch), res.output


def test_nearest_sense_matches_a_search_by_hand(loss_view_store, bos_teacher, student_dir, heldout):  # noqa: F811
    """The teacher as its own student agrees with itself everywhere; another model's retrieval equals a plain
    nearest-neighbour search written out here, position by position."""
    from sensekit.distill.data import iter_documents, pack_documents
    from sensekit.distill.student import load_hf_student
    from sensekit.distill.student_eval import nearest_sense
    from sensekit.distill.targets import SenseTargets
    from sensekit.eval.states import hidden_forward
    from sensekit.store import open_store

    with open_store(loss_view_store) as st:
        targets = SenseTargets.from_store(st, bos_teacher.vocab_size)
    windows = pack_documents(iter_documents([heldout]), bos_teacher.tokenizer, 16, 6)
    other = hidden_forward(load_hf_student(str(student_dir), bos_teacher, "cpu").eval())
    r = nearest_sense(
        {"teacher": None, "self": bos_teacher.final_hidden, "other": other}, bos_teacher, targets, windows, 4
    )
    assert r["positions"] > 20 and r["agreement_positions"] > 5 and 0 < r["chance"] < 1
    assert r["self"] == r["teacher"] and r["teacher"]["agreement"] == 1.0
    emb = targets.emb.numpy().astype(np.float64)
    unit = {int(row): u for u, rows in enumerate(targets.unit_rows.tolist()) for row in rows if row >= 0}
    hits = n = 0
    for s in range(0, len(windows), 4):
        ids, attn, labels = windows.batch(np.arange(s, min(s + 4, len(windows))))
        h = other(ids, attn).numpy().astype(np.float64)
        for b, t in zip(*np.nonzero(labels.numpy() >= 0)):
            u = int(targets.token_unit[labels[b, t]])
            if u < 0:
                continue
            n += 1
            hits += unit[int(((emb - h[b, t]) ** 2).mean(1).argmin())] == u
    assert n == r["positions"] and r["other"]["retrieval"] == pytest.approx(hits / n)


def test_carrier_similarity_matches_a_spearman_by_hand(eval_store, bos_teacher, student_dir, tmp_path):  # noqa: F811
    from scipy.stats import spearmanr

    from sensekit.distill.eval_config import StudentEvalConfig
    from sensekit.distill.student import load_hf_student
    from sensekit.distill.student_eval import _states_fn, carrier_similarity
    from sensekit.eval.states import hidden_forward

    rows = [("happy", "glad", 9), ("big", "large", 8), ("good", "bad", 1), ("light", "dark", 2), ("bank", "river", 3)]
    pairs = tmp_path / "simlex.txt"
    pairs.write_text("word1\tword2\tscore\n" + "".join(f"{a}\t{b}\t{g}\n" for a, b, g in rows))
    cfg = StudentEvalConfig(student="-", store=str(eval_store), data=("-",), device="cpu")
    other = load_hf_student(str(student_dir), bos_teacher, "cpu").eval()
    d = int(other.get_output_embeddings().weight.shape[1])
    models = {"student": (hidden_forward(other), d), "teacher": (bos_teacher.final_hidden, bos_teacher.hidden_size)}
    states = _states_fn(bos_teacher, cfg)
    r = carrier_similarity(models, states, cfg.carrier, str(pairs))
    assert r["status"] == "ok" and r["pairs"] == 5
    for name, (forward, dim) in models.items():  # each word alone in the carrier, its last token's state
        vec = {}
        for w in {w for a, b, _ in rows for w in (a, b)}:
            st, ok = states(forward, dim, [f"The word is {w}."], [12], [12 + len(w)], "last")
            vec[w] = st[0] / np.linalg.norm(st[0])
        cos = [float(vec[a] @ vec[b]) for a, b, _ in rows]
        assert r[name]["pairs_scored"] == 5
        assert r[name]["spearman"] == pytest.approx(spearmanr(cos, [g for *_, g in rows]).statistic, abs=1e-6)
    assert r["student"]["spearman"] != pytest.approx(r["teacher"]["spearman"])  # two models, two scores
