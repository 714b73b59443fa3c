"""Fuzzing with hypothesis (issue 12, section B): the JSONL readers and the pair-list reader take arbitrary
bytes and either parse them or report a line number; `sensekit query` takes arbitrary words and answers
or says the word is unknown, never crashes. Example counts stay small: these run in CI."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest
from conftest import WORDS, train_tokenizer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_store import write_small_store

from sensekit.cli import main
from sensekit.errors import InputError
from sensekit.lexicon.kaikki import iter_kaikki
from sensekit.lexicon.pairs import ReadReport, read_pair_file

FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# bytes that look like the files: lines of JSON, tabs, odd encodings, NULs, compression magic
_PIECES = st.sampled_from(
    [
        b"\n",
        b"\r\n",
        b"\t",
        b"{",
        b"}",
        b'"text"',
        b'"word"',
        b":",
        b",",
        b"[",
        b"]",
        b"\x00",
        b"\xff\xfe",
        b"\xe9",
        b"\xc3\xa9",
        b"syn",
        b"ant",
        b"1",
        b"0",
        b"null",
        b"happy",
        b"#",
        b"\xef\xbb\xbf",
        b"BZh9",
        b"\x1f\x8b",
        b'"lang_code": "en"',
        b'"senses": [{}]',
    ]
)
RAW = st.one_of(st.binary(max_size=400), st.lists(_PIECES, max_size=60).map(b"".join))
LINE_REF = re.compile(r":(\d+): ")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def _line_count(data: bytes) -> int:
    return data.count(b"\n") + 1


@FUZZ
@given(data=RAW)
def test_corpus_jsonl_reader_parses_or_names_a_line(folder, data):
    from sensekit.builder.corpus import iter_documents

    path = _write(folder, "docs.jsonl", data)
    try:
        docs = list(iter_documents([str(path)]))
    except InputError as exc:
        m = LINE_REF.search(str(exc))
        assert m and 1 <= int(m.group(1)) <= _line_count(data), str(exc)
        assert "\n" not in str(exc)
        return
    assert all(isinstance(doc_id, str) and isinstance(text, str) for doc_id, text in docs)


@FUZZ
@given(data=RAW)
def test_corpus_text_reader_parses_or_names_a_line(folder, data):
    from sensekit.builder.corpus import iter_documents

    path = _write(folder, "docs.txt", data)
    try:
        docs = list(iter_documents([str(path)]))
    except InputError as exc:
        m = LINE_REF.search(str(exc))
        assert m and 1 <= int(m.group(1)) <= _line_count(data), str(exc)
        return
    assert all("\x00" not in text for _, text in docs)  # NUL bytes are refused, never passed on


@FUZZ
@given(data=RAW, on_error=st.sampled_from(["skip", "fail"]))
def test_kaikki_reader_parses_or_names_a_line(folder, data, on_error):
    path = _write(folder, "words.jsonl", data)
    report = ReadReport("fuzz")
    try:
        entries = list(iter_kaikki(path, report, on_error=on_error, lang_code=None))
    except InputError as exc:
        assert on_error == "fail"
        m = LINE_REF.search(str(exc))
        assert m and 1 <= int(m.group(1)) <= _line_count(data), str(exc)
        return
    assert report.bad == len(report.errors)
    assert all(1 <= line <= _line_count(data) for line, _ in report.errors)
    assert all(isinstance(entry, dict) and 1 <= n <= _line_count(data) for n, entry in entries)


@FUZZ
@given(data=RAW, on_error=st.sampled_from(["skip", "fail"]), binary=st.sampled_from([None, "ant"]))
def test_pair_reader_parses_or_names_a_line(folder, data, on_error, binary):
    path = _write(folder, "pairs.tsv", data)
    report = ReadReport("fuzz")
    try:
        pairs = list(read_pair_file(path, report, binary_labels=binary, on_error=on_error))
    except InputError as exc:
        assert on_error == "fail"
        m = LINE_REF.search(str(exc))
        assert m and 1 <= int(m.group(1)) <= _line_count(data), str(exc)
        return
    assert all(1 <= line <= _line_count(data) for line, _ in report.errors)
    for w1, w2, kind, prov in pairs:
        assert w1 and w2 and kind in ("syn", "ant") and "\x00" not in w1 + w2
        assert 1 <= prov["line"] <= _line_count(data)


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz"])
@FUZZ
@given(data=RAW)
def test_compressed_garbage_is_a_one_line_error(folder, data, suffix):
    """Bytes that are not a valid compressed stream: one InputError naming the file, never a traceback."""
    for reader in (lambda p: list(read_pair_file(p)), lambda p: list(iter_kaikki(p, lang_code=None))):
        path = _write(folder, f"x{suffix}", data)
        try:
            reader(path)
        except InputError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc)


# -- sensekit query over arbitrary words -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fuzzstore")
    tok = train_tokenizer()
    tok.save(str(folder / "tokenizer.json"))
    path = folder / "small.sensekit"
    write_small_store(path, folder / "tokenizer.json", tok)
    return path


def _query(store: Path, word: str, *flags: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(["query", "--store", str(store), *flags, "--", word])
            code = 0
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


WORD = st.one_of(
    st.text(max_size=40),
    st.sampled_from(WORDS + ["river bank", "[bold]x[/]", "%s", "\\", "'", '"']),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=200, max_size=3000),
)


@FUZZ
@given(word=WORD, as_json=st.booleans())
def test_query_answers_or_says_unknown(fuzz_store, word, as_json):
    code, out, err = _query(fuzz_store, word, *(["--json"] if as_json else []))
    assert "Traceback" not in err
    if code == 0:
        assert out and not err
        if as_json:
            assert json.loads(out)["word"] == word.strip()
        return
    assert code == 1, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert "unknown word" in lines[0] or "the word is empty" in lines[0], lines[0]
    assert len(lines[0]) < 600  # a long word is cut, not echoed back whole
