"""`sensekit eval layers`: the per-layer curve on a tiny model from config and a tiny WiC file."""

from __future__ import annotations

import json

import numpy as np

from sensekit.eval.layers import layer_curve, roc_auc, score_layers

PAIRS = [
    ("bank", "the bank of the river was muddy", "she put money in the bank", False),
    ("bank", "the bank of the river was green", "the bank of the river was muddy", True),
    ("light", "turn on the light in the room", "the box was light enough to carry", False),
    ("light", "turn on the light because it is dark", "turn on the light in the room", True),
    ("spring", "the spring flood was early", "the spring in the mattress was broken", False),
    ("spring", "the spring water was cold", "the spring flood was early", True),
    ("bank", "bank of the river", "the bank of the river was green", True),  # opens its sentence: no "before" state
]


def _wic(path, pairs=PAIRS):
    lines = []
    for word, s1, s2, label in pairs:
        a, b = s1.index(word), s2.index(word)
        rec = dict(word=word, sentence1=s1, sentence2=s2, start1=a, end1=a + len(word), start2=b)
        rec.update(end2=b + len(word), label="true" if label else "false")
        lines.append(json.dumps(rec))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_roc_auc():
    assert roc_auc([0.1, 0.2, 0.8, 0.9], [False, False, True, True]) == 1.0
    assert roc_auc([0.9, 0.8, 0.2, 0.1], [False, False, True, True]) == 0.0
    assert roc_auc([0.5, 0.5, 0.5, 0.5], [False, True, False, True]) == 0.5
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    s, y = rng.random(200).round(2), rng.random(200) > 0.4
    assert abs(roc_auc(s, y) - roc_auc_score(y, s)) < 1e-12


def test_score_layers_sees_the_informative_layer_on_both_halves():
    rng = np.random.default_rng(1)
    n, d = 80, 16
    y = np.arange(n) % 2 == 0
    dev = np.arange(n) % 4 < 2  # half of each label on each half
    base = rng.standard_normal((n, 3, d))
    other = base.copy()
    other[:, 0] = rng.standard_normal((n, d))  # layer 0: noise
    other[~y, 1] = rng.standard_normal((int((~y).sum()), d))  # layer 1: same sense = same vector
    res = score_layers(base, other, y, dev)
    assert res[1]["dev_auc"] > 0.9 and res[1]["test_auc"] > 0.9 and res[1]["test_auc_raw"] > 0.9
    assert abs(res[0]["test_auc"] - 0.5) < 0.2 and res[1]["test_accuracy"] > 0.9 and res[0]["test_accuracy"] < 0.8
    # the threshold is fitted on dev only: flipping the test labels leaves it, and turns test accuracy around
    flipped = score_layers(base, other, np.where(dev, y, ~y), dev)
    assert flipped[1]["threshold"] == res[1]["threshold"] and flipped[1]["test_accuracy"] < 0.1


def test_layer_curve_on_a_tiny_teacher(tiny_dir, tmp_path):
    res = layer_curve(_wic(tmp_path / "wic.jsonl"), teacher=str(tiny_dir), device="cpu")
    assert res["n_layers"] == 2 and [r["layer"] for r in res["layers"]] == [0, 1, 2] and res["pairs"] == 7
    assert res["scored"] == 7 and res["halves"]["dev"] + res["halves"]["test"] == 7
    assert res["representations"] == ["first", "mean", "repeat"]
    assert res["winner"]["representation"] in res["representations"]
    # each AUC is one over its half's pairs: a multiple of 1 / (2 * positives * negatives) (ties count half),
    # None where the half lacks a label
    from sensekit.eval.halves import dev_mask, pair_keys

    dev = dev_mask(pair_keys(*zip(*[p[:3] for p in PAIRS])))
    labels = np.array([p[3] for p in PAIRS])
    for half, mask in (("dev", dev), ("test", ~dev)):
        steps = 2 * int(labels[mask].sum()) * int((~labels[mask]).sum())
        for row in res["layers"]:
            for rep in res["representations"]:
                v = row[rep][f"{half}_auc"]
                if not steps:
                    assert v is None, (half, rep, v)
                    continue
                assert v is not None and 0.0 <= v <= 1.0 and abs(v * steps - round(v * steps)) < 0.01, (half, v)
    one = layer_curve(
        _wic(tmp_path / "wic.jsonl"), teacher=str(tiny_dir), device="cpu", representations=("repeat",), layers=[1]
    )
    assert one["representations"] == ["repeat"] and [r["layer"] for r in one["layers"]] == [1]
    assert one["layers"][0]["repeat"] == res["layers"][1]["repeat"]


def test_cli_table_json_png_and_bad_line(tiny_dir, tmp_path, capsys):
    from helpers import run_cli

    wic = _wic(tmp_path / "wic.jsonl")
    png = tmp_path / "curve.png"
    code, out, err = run_cli(capsys, "eval", "layers", "--wic", wic, "--teacher", tiny_dir, "-o", png, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["n_layers"] == 2 and doc["png"] == str(png) and doc["representations"] == ["first", "mean", "repeat"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, err = run_cli(capsys, "eval", "layers", "--wic", wic, "--teacher", tiny_dir)
    assert code == 0 and "repeat" in out and "mean" in out and "AUC" in out
    code, out, err = run_cli(capsys, "eval", "layers", "--wic", wic, "--teacher", tiny_dir, "--representations", "echo")
    assert code == 1 and "--representations 'echo'" in err and len(err.strip().splitlines()) == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text(wic.read_text().splitlines()[0] + "\n{not json\n", encoding="utf-8")
    code, out, err = run_cli(capsys, "eval", "layers", "--wic", bad, "--teacher", tiny_dir)
    assert code == 1 and ":2" in err and len(err.strip().splitlines()) == 1
