"""Raw Wiktionary dumps through wiktextract: the tiny fixture dump, and the shared test dump (integration)."""

from __future__ import annotations

import collections
import json
import os
from pathlib import Path

import pytest

from sensekit.lexicon.kaikki import entries_pairs, entry_pairs
from sensekit.lexicon.pairs import ReadReport, normalize
from sensekit.lexicon.wiktionary_dump import dump_entries, extract, hoist_nym_lines

FIX = Path(__file__).parent / "fixtures" / "lexicon"
TINY = FIX / "tiny-dump.xml"


def test_hoist_nym_lines():
    text = "\n".join(
        [
            "==English==",
            "# First {{lb|en|x}} gloss.",
            "#: {{ux|en|an example}}",
            "#: {{syn|en|a|b|q1={{q|rare}}}}",
            "## Sub gloss.",
            "##* {{quote-book|en|passage=x",
            "|year=1900}}",
            "##: {{ant|en|c}}",
            "#: {{ant|en|d}}",
            "==French==",
            "#: {{syn|fr|orphan}}",
        ]
    )
    assert hoist_nym_lines(text).split("\n") == [
        "==English==",
        "# First {{lb|en|x}} gloss. {{syn|en|a|b|q1={{q|rare}}}} {{ant|en|d}}",
        "#: {{ux|en|an example}}",
        "## Sub gloss. {{ant|en|c}}",
        "##* {{quote-book|en|passage=x",
        "|year=1900}}",
        "==French==",
        "#: {{syn|fr|orphan}}",
    ]


@pytest.fixture(scope="module")
def tiny_entries(wiktextract):  # wiktextract imports NLTK's Brown corpus
    stats: dict = {}
    entries = list(dump_entries(TINY, processes=1, lang_code=None, stats=stats))
    return entries, stats


def test_tiny_dump_exact_pairs(tiny_entries):
    entries, stats = tiny_entries
    assert stats["pages"] == 4 and stats["entries"] == 4 and stats["failed_pages"] == 0
    got = {(a, b, k, p.get("sense_index"), p.get("gloss")) for e in entries for a, b, k, p in entry_pairs(e)}
    happy = "Feeling pleasure or contentment."
    size = "Of great size; large."
    shelf = "A raised shelf of ground beside a river."
    assert got == {
        ("happy", "glad", "syn", 0, happy),
        ("happy", "cheerful", "syn", 0, happy),  # {{syn}} under sense 1
        ("happy", "sad", "ant", 0, happy),
        ("happy", "unhappy", "ant", 0, happy),  # {{ant}} under sense 1
        ("happy", "lucky", "syn", 1, "fortunate"),
        ("happy", "fortunate", "syn", 1, "fortunate"),  # {{sense}} {{l}}
        ("happy", "unlucky", "ant", 1, "fortunate"),
        ("big", "large", "syn", 0, size),
        ("big", "huge", "syn", 0, size),
        ("big", "small", "ant", 0, "of great size"),
        ("big", "little", "ant", 0, "of great size"),
        ("bank", "riverbank", "syn", 2, shelf),
        ("bank", "river bank", "syn", 2, shelf),  # ##: under a subsense
        ("bank", "savings bank", "syn", 0, "institution"),
        ("bon", "mauvais", "ant", 0, "Good."),
    }
    # "Alternative forms" are spelling variants, not synonyms; {{alter}}'s args after the empty one are labels.
    bank = next(e for e in entries if e["word"] == "bank")
    assert [r["word"] for r in bank["related"]] == ["banck", "banke"]
    words = [w for e in entries for a, b, _, _ in entry_pairs(e) for w in (a, b)]
    assert not any(w.startswith("Template:") for w in words)
    report = ReadReport("d")
    en = list(entries_pairs(entries, report, lang_code="en"))
    assert report.used == 3 and all(p[0] != "bon" for p in en)


def test_dump_captures_languages_by_the_kaikki_rule(wiktextract):
    from sensekit.errors import InputError
    from sensekit.lexicon.wiktionary_dump import _import_wiktextract, _language_names

    _import_wiktextract()
    assert "English" in _language_names("en") and _language_names("EN") == _language_names("en")
    assert _language_names("english") == _language_names("English") == ["English"]
    assert _language_names("all") is None and _language_names(None) is None
    with pytest.raises(InputError, match="unknown Wiktionary language"):
        _language_names("no-such-language")


def test_extract_writes_xz_atomically(wiktextract, tmp_path):
    import lzma

    out = tmp_path / "tiny.jsonl.xz"
    counts = extract(TINY, out, processes=1, full=False)
    lines = lzma.decompress(out.read_bytes()).splitlines()
    assert counts["entries"] == len(lines) == 4 and json.loads(lines[0])["word"]
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.jsonl.xz"]  # no temporary file left behind


def test_lexicon_extract_cli(wiktextract, tmp_path):
    import typer
    from typer.testing import CliRunner

    from sensekit.cli import lexicon
    from sensekit.lexicon.kaikki import kaikki_pairs

    app = typer.Typer()
    app.add_typer(lexicon.app)
    out = tmp_path / "tiny.jsonl.gz"
    res = CliRunner().invoke(app, ["lexicon", "extract", str(TINY), "-o", str(out), "--processes", "1"])
    assert res.exit_code == 0, res.output
    assert "wrote 4 entries" in res.output
    report = ReadReport("x")
    pairs = list(kaikki_pairs(out, report, lang_code=None))  # the output reads back as kaikki JSONL
    assert report.bad == 0 and report.used == 4 and ("bank", "river bank", "syn") in {p[:3] for p in pairs}


# -- the shared test dump ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def test_dump(shared):
    path = shared / "data" / "wiktionary" / "enwiktionary-test-pages-articles.xml.bz2"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    stats: dict = {}
    entries = list(dump_entries(path, processes=2, lang_code="en", stats=stats))  # parsed once per session
    return entries, stats


@pytest.mark.integration
def test_shared_dump_relations(test_dump):
    entries, stats = test_dump
    assert stats["failed_pages"] == 0
    english = [e for e in entries if e.get("lang_code") == "en"]
    assert len(english) >= 1200, len(english)
    report = ReadReport("wiktionary")
    pairs = list(entries_pairs(entries, report, lang_code="en"))
    kinds = collections.Counter(k for _, _, k, _ in pairs)
    assert kinds["syn"] >= 2000 and kinds["ant"] >= 250, kinds
    rows = normalize(pairs)
    assert not any(w.startswith("Template:") for w in rows["head"] + rows["related"])
    raw = json.dumps(english)
    assert '"word": "Template:' not in raw  # nowhere in the entries, relation lists or not
    # Per-sense links carry their sense's gloss; entry-level ones only when a {{sense}} names it.
    with_gloss = sum(1 for _, _, _, p in pairs if p.get("gloss"))
    assert with_gloss >= 1400, with_gloss


def test_wiktextract_finds_brown_when_nltk_was_imported_first(shared):
    """NLTK reads NLTK_DATA once, at its first import: a test order (or a user's script) that imports NLTK
    before the shared folder is known must still let wiktextract find the Brown corpus."""
    import subprocess
    import sys

    script = (
        "import os; os.environ.pop('NLTK_DATA', None); import nltk; "
        "from sensekit.lexicon.wiktionary_dump import _import_wiktextract; _import_wiktextract(); print('ok')"
    )
    env = {k: v for k, v in os.environ.items() if k != "NLTK_DATA"} | {"SENSEKIT_SHARED": str(shared)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.stdout.strip() == "ok", done.stderr[-500:]
