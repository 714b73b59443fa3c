"""Issue 19: evaluation on a user's machine, on sentences the store never saw.

- the default WordNet corpus never reads the example sentences held out for evaluation;
- the WiC-style pairs built from them are balanced, deterministic and seeded;
- `eval store` with the shared data folder hidden reports a number and a coverage for every metric
  (SimLex-999 / WordSim-353 ship with sensekit; the pairs need only WordNet);
- a store built before the rule is warned about and still evaluated; bad input is one line.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from conftest import missing
from test_eval_store import bos_teacher, bos_teacher_dir, eval_files, eval_store, invoke  # noqa: F401

from sensekit.errors import InputError, SensekitError
from sensekit.paths import shared_dir

DEBIAN_WORDNET = Path("/usr/share/wordnet")


@pytest.fixture(scope="session")
def nltk_wordnet() -> Path | None:
    """The NLTK data folder of the shared data (before any test hides the shared folder), or None."""
    path = shared_dir() / "data" / "nltk_data"
    return path if (path / "corpora").is_dir() else None


@pytest.fixture
def wordnet_here(monkeypatch, nltk_wordnet):
    """WordNet as `make test` and `make demo` leave it on a user's machine: Debian's /usr/share/wordnet
    (`make wordnet`), else an NLTK data folder (NLTK_DATA or NLTK's own), else the shared data's. Skips
    without one; fails under CI (CI=true), where `make test` installs it."""
    from sensekit.lexicon.wordnet import open_wordnet

    if DEBIAN_WORDNET.is_dir():
        return
    try:
        open_wordnet()
        return
    except SensekitError:
        pass
    if nltk_wordnet is None:
        missing(
            "no WordNet: no /usr/share/wordnet (`make wordnet`: Debian's wordnet-base), none on NLTK's data path, "
            "no shared NLTK data"
        )
    monkeypatch.setenv("NLTK_DATA", str(nltk_wordnet))


@pytest.fixture
def bare_machine(monkeypatch, tmp_path, wordnet_here):
    """A user's machine: WordNet installed, no ../shared (SENSEKIT_SHARED points to an empty folder)."""
    empty = tmp_path / "no-shared"
    empty.mkdir()
    monkeypatch.setenv("SENSEKIT_SHARED", str(empty))
    return empty


# -- the rule and the corpus ------------------------------------------------------------------
def test_the_rule_is_stable_monotone_and_checked():
    from sensekit.builder.wordnet_corpus import (
        HELDOUT_SHARE,
        check_heldout_share,
        heldout_key,
        heldout_provenance,
        is_heldout,
    )

    s = "the bank of the river was muddy"
    assert heldout_key(s) == heldout_key("  " + s + "\n")  # stripped text
    assert heldout_key(s) == int.from_bytes(__import__("hashlib").sha256(s.encode()).digest()[:8], "big") / 2**64
    sentences = [f"sentence number {i}" for i in range(4000)]
    small = {x for x in sentences if is_heldout(x, 0.1)}
    large = {x for x in sentences if is_heldout(x, HELDOUT_SHARE)}
    assert small <= large and 0.15 < len(large) / len(sentences) < 0.25  # monotone, about the share
    assert heldout_provenance() == {  # the record a store keeps: the rule in words, as checked above
        "unit": "WordNet example sentence",
        "rule": "sha256(example sentence, stripped, UTF-8)[:8] as a big-endian integer / 2**64 < share",
        "share": 0.2,
    }
    assert heldout_provenance(0.3)["share"] == 0.3
    for bad in (0, 0.0, -0.1, 0.51, 1, float("nan")):
        with pytest.raises(InputError, match=r"outside \(0, 0\.5\]"):
            check_heldout_share(bad)
    assert check_heldout_share(0.5) == 0.5


def test_no_heldout_sentence_reaches_the_default_corpus(wordnet_here):
    from sensekit.builder.wordnet_corpus import is_heldout, iter_wordnet
    from sensekit.lexicon.wordnet import open_wordnet

    wn = open_wordnet()
    examples = {e.strip() for s in wn.all_synsets() for e in s.examples()}  # NLTK's own parse
    held = {e for e in examples if is_heldout(e)}
    assert 0.15 < len(held) / len(examples) < 0.25
    docs = list(iter_wordnet())
    lines = {line for _, text in docs for line in text.split("\n")}
    assert not held & lines  # no held-out example is a line of any document
    assert len((examples - held) & lines) > 0.95 * len(examples - held)  # the others are all there
    with_lemmas = {line.split(": ", 1)[-1] for _, text in iter_wordnet(lemmas=True) for line in text.split("\n")}
    assert not held & with_lemmas
    corpus = "\n".join(text for _, text in docs)
    long_held = sorted(e for e in held if len(e) >= 40)
    for sentence in random.Random(0).sample(long_held, 200):  # not inside another line either
        assert sentence not in corpus


def test_store_provenance_and_fingerprint_carry_the_rule(wordnet_here):
    from sensekit.builder.wordnet_corpus import wordnet_fingerprint

    assert wordnet_fingerprint() != wordnet_fingerprint(heldout_share=0.1)  # another corpus: no resume across


def test_build_heldout_share_reaches_the_corpus_and_its_record(wordnet_here, tmp_path):
    """`sensekit build --heldout-share 0.3`: the default corpus leaves out the 0.3 share, and says so."""
    from sensekit.builder.config import BuildConfig
    from sensekit.builder.pipeline import _plain_corpus
    from sensekit.builder.wordnet_corpus import is_heldout, wordnet_fingerprint
    from sensekit.lexicon.wordnet import open_wordnet

    examples = {e.strip() for s in open_wordnet().all_synsets() for e in s.examples()}
    newly_held = {e for e in examples if is_heldout(e, 0.3) and not is_heldout(e, 0.2)}
    assert len(newly_held) > 1000
    lines = {}
    for share in (0.2, 0.3):
        corpus = _plain_corpus(BuildConfig(store=str(tmp_path / "s"), heldout_share=share))
        assert corpus.heldout["share"] == share and corpus.fingerprint == wordnet_fingerprint(heldout_share=share)
        lines[share] = {line for _, text in corpus.docs() for line in text.split("\n")}
    assert len(newly_held & lines[0.2]) > 0.95 * len(newly_held)  # read at the default share ...
    assert not newly_held & lines[0.3]  # ... left out at 0.3


# -- the pairs ------------------------------------------------------------------------------------
def test_pairs_are_balanced_deterministic_and_held_out(wordnet_here):
    from sensekit.builder.wordnet_corpus import is_heldout, wordnet_synsets
    from sensekit.eval.wordnet_pairs import PER_LEMMA, wordnet_pairs
    from sensekit.lexicon.wordnet import open_wordnet

    wn = open_wordnet()
    synsets = wordnet_synsets()
    a = wordnet_pairs(synsets, wn, 0.2, seed=0)
    b = wordnet_pairs(synsets, wn, 0.2, seed=0)
    c = wordnet_pairs(synsets, wn, 0.2, seed=1)
    it = a.items
    assert len(it) > 500 and it.labels.sum() * 2 == len(it)  # balanced
    assert it.words == b.items.words and it.sentences1 == b.items.sentences1  # deterministic
    assert (it.labels == b.items.labels).all() and (it.spans1 == b.items.spans1).all()
    assert it.words != c.items.words  # seeded
    assert a.info["pairs"] == len(it) and a.info["share"] == 0.2 and a.info["per_lemma_cap"] == PER_LEMMA
    for i in range(len(it)):
        s1, s2 = it.sentences1[i], it.sentences2[i]
        assert s1 != s2 and is_heldout(s1, 0.2) and is_heldout(s2, 0.2)
        for s, (x, y) in ((s1, it.spans1[i]), (s2, it.spans2[i])):
            w = s[x:y].lower()
            assert w == it.words[i] or it.words[i] in {wn.morphy(w, p) for p in "nvar"}
    small = wordnet_pairs(synsets, wn, 0.1, seed=0)  # a smaller share: fewer pairs, from its own sentences
    assert 0 < len(small.items) < len(it) and small.info["share"] == 0.1
    assert all(is_heldout(s, 0.1) for s in small.items.sentences1 + small.items.sentences2)
    assert not all(is_heldout(s, 0.1) for s in it.sentences1 + it.sentences2)  # the 0.2 pairs reach past 0.1
    assert len(wordnet_pairs(synsets, wn, 0.2, seed=0, limit=10).items) == 10


# -- eval store on a bare machine -------------------------------------------------------------------
def test_eval_store_on_a_bare_machine(eval_store, bos_teacher_dir, bare_machine):  # noqa: F811
    """No ../shared: every metric runs and reports its coverage (the tiny store's 21-word vocabulary covers
    few benchmark words: test_eval_integration.py checks the numbers on a real WordNet store)."""
    res = invoke("eval", "store", "--store", eval_store, "--device", "cpu", "--neighbour-words", "5", "--json")
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    m = r["metrics"]
    assert set(m) == {"wic", "similarity", "purity", "bcubed", "wsd", "neighbours", "health"}
    w = m["wic"]
    assert w["status"] == "ok" and w["data"] == "wordnet-heldout"
    assert w["pair_set"]["share"] == 0.2 and w["pair_set"]["pairs"] == w["coverage"]["total"] > 500
    assert w["pair_set"]["same_synset"] * 2 == w["pair_set"]["pairs"]
    assert w["wic_file"] == {"status": "skipped", "reason": "no WiC file: pass --wic FILE (WiC JSONL)"}
    for name, total in (("simlex999", 999), ("wordsim353", 353)):
        s = m["similarity"][name]
        assert s["status"] == "ok" and Path(s["file"]).parent.name == "data" and s["coverage"]["total"] == total
    assert m["neighbours"]["status"] == "ok" and m["neighbours"]["coverage"]["scored"] == 5
    assert m["health"]["status"] == "ok" and m["health"]["coverage"]["scored"] > 0
    p = m["purity"]  # the tiny store has words with 2 senses and held-out examples over 2 synsets: scored
    assert p["status"] == "ok", p
    c = p["coverage"]
    assert 1 <= c["scored"] <= c["total"] and c["occurrences"] >= 4 * c["scored"]  # >= 4 examples a word
    assert p["purity"] >= p["one_cluster"]["purity"]  # splitting a cluster never lowers purity
    assert p["one_cluster"]["ari"] == 0.0 and "(share 0.2)" in p["data"]
    assert r["warnings"] == []  # built on a text folder: the WordNet pairs are not its corpus
    assert [h["metric"] for h in r["headlines"]][:1] == ["wic"]


def test_a_wic_file_is_reported_beside_the_wordnet_pairs(eval_store, bos_teacher, tmp_path, wordnet_here):  # noqa: F811
    from sensekit.cli.eval import store_rows
    from sensekit.eval.config import EvalConfig
    from sensekit.eval.store_eval import evaluate_store

    f = eval_files(tmp_path)
    r = evaluate_store(EvalConfig(store=str(eval_store), wic=str(f["wic"]), metrics=("wic",)), teacher=bos_teacher)
    w = r["metrics"]["wic"]
    assert w["data"] == "wordnet-heldout" and w["wic_file"]["status"] == "ok"
    assert w["wic_file"]["file"] == str(f["wic"]) and w["wic_file"]["coverage"]["total"] == 4
    rows = [row[0] for row in store_rows(r)]
    assert rows[0].startswith("WiC accuracy, WordNet held-out pairs") and any("WiC file" in x for x in rows)


def test_without_wordnet_the_wic_file_still_runs(eval_store, bos_teacher, tmp_path):  # noqa: F811
    from sensekit.eval.config import EvalConfig
    from sensekit.eval.store_eval import evaluate_store

    f = eval_files(tmp_path)
    no_wn = tmp_path / "empty-wordnet"
    no_wn.mkdir()
    cfg = EvalConfig(store=str(eval_store), wic=str(f["wic"]), wordnet=str(no_wn), metrics=("wic",))
    w = evaluate_store(cfg, teacher=bos_teacher)["metrics"]["wic"]
    assert w["data"] == "wic-file" and w["coverage"]["total"] == 4
    assert w["wordnet_heldout"]["status"] == "skipped" and "WordNet" in w["wordnet_heldout"]["reason"]


def test_a_store_built_before_the_rule_is_warned_about_and_still_evaluated(
    eval_store,  # noqa: F811
    bos_teacher_dir,  # noqa: F811
    tmp_path,
    bare_machine,
):
    import duckdb

    old = tmp_path / "old.sensekit"
    shutil.copytree(eval_store, old)
    con = duckdb.connect(str(old / "store.duckdb"))
    con.execute("UPDATE meta SET value = ? WHERE key = 'corpus'", [json.dumps(["wordnet"])])
    con.execute("DELETE FROM meta WHERE key = 'corpus_heldout'")
    con.close()
    res = invoke("eval", "store", "--store", old, "--metrics", "health", "--device", "cpu", "--json")
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert r["metrics"]["health"]["status"] == "ok"
    assert len(r["warnings"]) == 1 and "may contain the evaluation sentences" in r["warnings"][0]
    assert "may contain the evaluation sentences" in res.stderr


@pytest.mark.parametrize("share", ["0.7", "0", "-1"])
def test_heldout_share_out_of_range_is_one_line(eval_store, share):  # noqa: F811
    res = invoke("eval", "store", "--store", eval_store, "--heldout-share", share)
    assert isinstance(res.exception, InputError) and "outside (0, 0.5]" in str(res.exception)
    assert "\n" not in str(res.exception)


def test_malformed_similarity_line_names_its_number(tmp_path):
    from sensekit.eval.similarity import read_pairs

    path = tmp_path / "sim.txt"
    path.write_text("# header\nhappy\tglad\t9\nsmall tiny\nbad\tdark\t2\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"sim\.txt:3 has 2 fields"):
        read_pairs(path)
    path.write_text("happy\tglad\t9\nsmall\ttiny\tlots\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"sim\.txt:2: score 'lots' is not a number"):
        read_pairs(path)


def test_shipped_similarity_files_are_packaged():
    from sensekit.eval.config import default_data
    from sensekit.eval.similarity import read_pairs

    for name, n in (("simlex", 999), ("wordsim", 353)):
        path = default_data(name)
        assert path is not None and len(read_pairs(path)[2]) == n
    assert (Path(default_data("simlex")).parent / "README.md").is_file()  # sources and licences
