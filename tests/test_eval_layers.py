"""`sensekit eval layers`: the per-layer curve on a tiny model from config and a tiny WiC file."""

from __future__ import annotations

import json

import numpy as np

from sensekit.eval.layers import curve_from_states, layer_curve, roc_auc

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


def test_curve_from_states_sees_the_informative_layer():
    rng = np.random.default_rng(1)
    n, d = 80, 16
    y = np.arange(n) % 2 == 0
    base = rng.standard_normal((n, 3, d))
    other = base.copy()
    other[:, 0] = rng.standard_normal((n, d))  # layer 0: noise
    other[~y, 1] = rng.standard_normal((int((~y).sum()), d))  # layer 1: same sense = same vector
    ok = np.ones(n, bool)
    res = curve_from_states(base, other, base, other, ok, ok, y)
    assert res["at_raw"][1] > 0.9 and abs(res["at_raw"][0] - 0.5) < 0.2 and res["at_z"][1] > 0.9


def test_layer_curve_on_a_tiny_teacher(tiny_dir, tmp_path):
    res = layer_curve(_wic(tmp_path / "wic.jsonl"), teacher=str(tiny_dir), device="cpu")
    assert res["n_layers"] == 2 and len(res["layers"]) == 3 and res["pairs"] == 7
    assert res["pairs_at"] == 7 and res["pairs_before"] == 6
    for row in res["layers"]:
        for c in ("at_raw", "at_z", "before_raw", "before_z"):
            assert row[c] is None or 0.0 <= row[c] <= 1.0
    # layer 0 at the word is the token's input embedding: where both occurrences are the same token
    # (not at a sentence start, which tokenizes without the leading space), every pair scores alike
    same = layer_curve(_wic(tmp_path / "same.jsonl", PAIRS[:6]), teacher=str(tiny_dir), device="cpu")
    assert same["layers"][0]["at_raw"] == 0.5


def test_cli_table_json_png_and_bad_line(tiny_dir, tmp_path, capsys):
    from helpers import run_cli

    wic = _wic(tmp_path / "wic.jsonl")
    png = tmp_path / "curve.png"
    code, out, err = run_cli(capsys, "eval", "layers", "--wic", wic, "--teacher", tiny_dir, "-o", png, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["n_layers"] == 2 and doc["png"] == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, err = run_cli(capsys, "eval", "layers", "--wic", wic, "--teacher", tiny_dir)
    assert code == 0 and "at z" in out and "before raw" in out
    bad = tmp_path / "bad.jsonl"
    bad.write_text(wic.read_text().splitlines()[0] + "\n{not json\n", encoding="utf-8")
    code, out, err = run_cli(capsys, "eval", "layers", "--wic", bad, "--teacher", tiny_dir)
    assert code == 1 and ":2" in err and len(err.strip().splitlines()) == 1
