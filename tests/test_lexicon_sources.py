"""Lexicon readers on hand-written fixtures: kaikki JSONL, pair lists, polarity, the schema."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
from pathlib import Path

import pytest

from sensekit.errors import InputError
from sensekit.lexicon.kaikki import in_language, kaikki_pairs, wanted_language
from sensekit.lexicon.pairs import ReadReport, normalize, read_pair_file
from sensekit.lexicon.polarity import strip_negation
from sensekit.lexicon.wiktextract_schema import compile_fast_check, compile_validator, load_schema, validate_entry

FIX = Path(__file__).parent / "fixtures" / "lexicon"
KAIKKI = FIX / "kaikki-sample.jsonl"
PAIRS = FIX / "pairs.tsv"


def _pairs(rows):
    return {(h, r, k) for h, r, k in zip(rows["head"], rows["related"], rows["kind"])}


# -- kaikki JSONL ---------------------------------------------------------------------------------
def test_kaikki_pairs_exact_and_bad_lines_reported():
    report = ReadReport("wiktionary")
    vocab: set[str] = set()
    pairs = list(kaikki_pairs(KAIKKI, report, vocabulary=vocab))
    got = {(a, b, k) for a, b, k, _ in pairs}
    assert got == {
        ("happy", "glad", "syn"),
        ("happy", "cheerful", "syn"),
        ("happy", "sad", "ant"),
        ("happy", "unhappy", "ant"),
        ("happy", "lucky", "syn"),
        ("glad", "happy", "syn"),
        ("good", "bad", "ant"),
        ("good", "evil", "ant"),
        ("good", "fine", "syn"),
        ("bad", "good", "ant"),
        ("big", "large", "syn"),
        ("big", "huge", "syn"),
        ("big", "small", "ant"),
        ("big", "little", "ant"),
        ("large", "big", "syn"),
        ("small", "tiny", "syn"),
        ("small", "big", "ant"),
        ("small", "large", "ant"),
        ("fast", "quick", "syn"),
        ("fast", "slow", "ant"),
        ("bank", "bank", "syn"),  # Thesaurus:bank -> bank; the self-pair goes in normalize()
        ("bank", "river bank", "syn"),
        ("unhappy", "sad", "syn"),
        ("spring", "springtime", "syn"),
        ("tiny", "huge", "ant"),
    }
    # French is filtered out, Template:l is dropped, and `light` has no lang_code (only lang: English).
    assert not any("mauvais" in p[:2] or p[1].startswith("Template:") for p in pairs)
    assert report.read == 20 and report.used == 13 and report.bad == 5
    assert [line for line, _ in report.errors] == [8, 11, 15, 17, 19]
    msgs = dict(report.errors)
    assert "not valid JSON" in msgs[8]
    assert "word: expected string, got integer" in msgs[11]
    assert "word: required field missing" in msgs[15]
    assert "senses[0].synonyms[0].word: required field missing" in msgs[17]
    assert "entry: expected object, got array" in msgs[19]
    assert {"happy", "unhappy", "tiny"} <= vocab and "bon" not in vocab
    by_name = {(a, b, k) for a, b, k, _ in kaikki_pairs(KAIKKI, lang_code="English")}  # the filter takes lang names too
    assert {("light", "heavy", "ant"), ("light", "dark", "ant"), ("happy", "glad", "syn")} <= by_name


def test_kaikki_provenance_has_gloss_and_head_sense():
    pairs = {(a, b, k): p for a, b, k, p in kaikki_pairs(KAIKKI)}
    p = pairs[("happy", "glad", "syn")]
    assert p["gloss"] == "Feeling pleasure or contentment." and p["sense_index"] == 0
    assert p["sense_id"] == "en-happy-adj-1" and p["entry"] == "happy" and p["pos"] == "adj" and p["line"] == 1
    assert pairs[("happy", "lucky", "syn")]["sense_index"] == 1
    fine = pairs[("good", "fine", "syn")]  # entry-level, matched to the sense its `sense` names
    assert fine["gloss"] == "of high quality" and fine["sense_index"] == 1
    assert pairs[("big", "huge", "syn")]["tags"] == ["informal"]
    assert pairs[("bank", "river bank", "syn")]["sense_index"] == 1


def test_kaikki_on_error_fail_names_the_line():
    with pytest.raises(InputError, match=r"kaikki-sample.jsonl:8: not valid JSON"):
        list(kaikki_pairs(KAIKKI, on_error="fail"))


def test_kaikki_compressed_and_all_languages(tmp_path):
    data = KAIKKI.read_bytes()
    (tmp_path / "k.jsonl.gz").write_bytes(gzip.compress(data))
    (tmp_path / "k.jsonl.bz2").write_bytes(bz2.compress(data))
    plain = sorted((a, b, k) for a, b, k, _ in kaikki_pairs(KAIKKI))
    (tmp_path / "k.jsonl.xz").write_bytes(lzma.compress(data))
    for name in ("k.jsonl.gz", "k.jsonl.bz2", "k.jsonl.xz"):
        assert sorted((a, b, k) for a, b, k, _ in kaikki_pairs(tmp_path / name)) == plain
    every = {(a, b, k) for a, b, k, _ in kaikki_pairs(KAIKKI, lang_code=None)}
    assert ("bon", "mauvais", "ant") in every
    for lang in ("all", "*", ""):
        assert {(a, b, k) for a, b, k, _ in kaikki_pairs(KAIKKI, lang_code=lang)} == every


def test_one_language_rule():
    """Code or name, any case; the dump parser captures by the same rule (test_lexicon_wiktionary_dump)."""
    for given in ("en", "EN", "English", "english"):
        want = wanted_language(given)
        assert in_language(want, "en", "English") and not in_language(want, "fr", "French")
    assert in_language(wanted_language("en"), None, "En")  # a name can match a code: the rule is symmetric
    assert all(wanted_language(x) is None for x in (None, "", "all", "*"))
    assert in_language(None, None, None)


def test_validator_follows_the_schema_file():
    schema = load_schema()
    assert schema["required"] == ["word"]
    v = compile_validator(schema)
    ok = {"word": "x", "senses": [{"glosses": ["g"], "synonyms": [{"word": "y", "extra": 1}]}], "other": [1]}
    assert v(ok) is None
    assert v({"word": ""}) == "word: shorter than 1 character(s)"
    assert v({"word": "x", "senses": [{"glosses": "g"}]}) == "senses[0].glosses: expected array, got string"
    assert v({"word": "x", "antonyms": [{"word": None}]}) == "antonyms[0].word: expected string, got null"
    assert validate_entry({"word": "x", "lang_code": 3}) == "lang_code: expected string, got integer"


def test_fast_check_agrees_with_the_validator():
    schema = load_schema()
    slow, fast = compile_validator(schema), compile_fast_check(schema)
    lines = KAIKKI.read_text().splitlines()
    cases = [json.loads(line) for line in lines if line.strip() and not line.startswith("{not")]
    cases += [
        {"word": "x", "senses": [{"synonyms": [{"word": "y", "tags": ["a", 1]}]}]},
        {"word": "x", "pos": None},
        {"word": True},
        {"word": "x", "senses": {}},
        {"word": "x", "senses": [[]]},
        "word",
        None,
        3.5,
        {"word": "x", "antonyms": [{"word": "y", "sense": 3}]},
        {"word": "x", "senses": [{"senseid": ["a"], "id": "b"}]},
    ]
    for case in cases:
        assert fast(case) == (slow(case) is None), case


# -- pair lists -----------------------------------------------------------------------------------
def test_pair_file_rows_and_errors():
    report = ReadReport("pairs")
    pairs = list(read_pair_file(PAIRS, report))
    assert [(a, b, k) for a, b, k, _ in pairs] == [
        ("happy", "glad", "syn"),
        ("good", "bad", "ant"),
        ("big", "large", "syn"),
        ("big", "small", "ant"),
        ("bank", "river bank", "syn"),
        ("glad", "glad", "syn"),
        ("unhappy", "sad", "syn"),
        ("fast", "slow", "ant"),
    ]
    assert pairs[0][3] == {"file": "pairs.tsv", "line": 3}
    assert report.bad == 2 and [n for n, _ in report.errors] == [11, 12]
    assert "expected 3 columns" in report.errors[0][1] and "unknown relation 'maybe'" in report.errors[1][1]
    with pytest.raises(InputError, match=r"pairs.tsv:11: expected 3 columns"):
        list(read_pair_file(PAIRS, on_error="fail"))


def test_pair_file_binary_labels():
    path = FIX / "pairs-binary.tsv"
    got = [(a, b, k) for a, b, k, _ in read_pair_file(path, binary_labels="ant")]
    assert got == [("happy", "sad", "ant"), ("happy", "glad", "syn")]
    assert [k for _, _, k, _ in read_pair_file(path, binary_labels="syn")] == ["syn", "ant"]
    report = ReadReport("p")
    assert list(read_pair_file(path, report)) == [] and report.bad == 1  # first line reads as a header
    assert "--binary-labels" in report.errors[0][1]


# -- normalisation and polarity ---------------------------------------------------------------------
def test_normalize_symmetric_dedup_no_self_pairs():
    rows = normalize(
        [("a", "b", "syn", {"n": 1}), ("b", "a", "syn", {"n": 2}), ("a", "A", "syn", None), ("a", "c", "ant", None)]
    )
    assert sorted(_pairs(rows)) == [("a", "b", "syn"), ("a", "c", "ant"), ("b", "a", "syn"), ("c", "a", "ant")]
    prov = {(h, r): p for h, r, p in zip(rows["head"], rows["related"], rows["provenance"])}
    assert prov[("a", "b")] == {"n": 1} and prov[("b", "a")] == {"n": 2}  # each read row beats a mirror image
    assert not any(rows["derived"])


def test_strip_negation():
    known = {"happy", "sad", "care", "typical", "pendent", "dependent", "regular"}
    assert strip_negation("unhappy", known) == ("happy", -1, ("un-",))
    assert strip_negation("careless", known) == ("care", -1, ("-less",))
    assert strip_negation("atypical", known) == ("typical", -1, ("a-",))
    assert strip_negation("irregular", known) == ("regular", -1, ("ir-",))
    assert strip_negation("independent", known) == ("dependent", -1, ("in-",))  # the shortest chain wins
    assert strip_negation("nonunhappy", known) == ("nonunhappy", 1, ())  # two strips: a double negation
    assert strip_negation("sad", known) == ("sad", 1, ())
    assert strip_negation("unknownword", known) == ("unknownword", 1, ())


def test_polarity_flips_are_derived_and_keep_the_original():
    pairs = [
        ("unhappy", "sad", "syn", {"line": 1}),
        ("happy", "glad", "syn", None),
        ("happy", "unhappy", "ant", None),
        ("careless", "careful", "ant", None),
        ("care", "x", "syn", None),
    ]
    rows = normalize(pairs, polarity=True)
    got = {(h, r, k, d) for h, r, k, d in zip(rows["head"], rows["related"], rows["kind"], rows["derived"])}
    assert got == {
        ("happy", "sad", "ant", True),
        ("sad", "happy", "ant", True),  # syn(unhappy, sad)
        ("happy", "glad", "syn", False),
        ("glad", "happy", "syn", False),
        ("care", "careful", "syn", True),
        ("careful", "care", "syn", True),  # ant(careless, careful)
        ("care", "x", "syn", False),
        ("x", "care", "syn", False),
    }  # ant(happy, unhappy) -> syn(happy, happy): a self-pair, dropped
    prov = {(h, r): p for h, r, p in zip(rows["head"], rows["related"], rows["provenance"])}
    want = {"line": 1, "original": ["unhappy", "sad", "syn"], "polarity": {"unhappy": ["un-"]}}
    assert prov[("happy", "sad")] == want
    off = normalize(pairs)
    assert ("unhappy", "sad", "syn") in _pairs(off) and not any(off["derived"])
