"""Bad input, as a test suite (issue 12, section B): every case is refused (or handled) with one line on
stderr that starts with `error:`, the right exit code, and no traceback.

Decisions pinned here: text that is not UTF-8, and NUL bytes in plain text, are refused with the file and
line (never silently replaced); a JSONL line over 10 MiB is refused (a file without newlines); wiki
templates are stripped, never expanded, so a `Template:` loop cannot loop.
"""

from __future__ import annotations

import bz2
import json
import sys
import time
from pathlib import Path

import pytest
from helpers import TEXTS, run_cli
from test_store import write_small_store


def assert_one_line(err: str, code: int, want_code: int, needle: str) -> str:
    """The error is one line `error: ...` holding `needle`, with the expected exit code; returns the line."""
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert "Traceback" not in err, err[-2000:]
    assert code == want_code, (code, err[-2000:])
    assert len(lines) == 1, err[-2000:]
    assert lines[0].startswith("error:"), lines[0]
    assert needle in lines[0], (needle, lines[0])
    return lines[0]


def build_args(corpus, store, teacher_dir, *extra) -> list:
    return [
        "build",
        corpus,
        "--store",
        store,
        "--teacher",
        teacher_dir,
        "--device",
        "cpu",
        "--seq-len",
        "16",
        "--batch-size",
        "4",
        "-k",
        "2",
        "-G",
        "4",
        "--checkpoint-every",
        "0",
        "--quiet",
        *extra,
    ]


@pytest.fixture()
def store_path(tmp_path, tokenizer_json, tok):  # noqa: F811
    path = tmp_path / "small.sensekit"
    write_small_store(path, tokenizer_json, tok)
    return path


# -- files ----------------------------------------------------------------------------------------
def test_directory_where_a_pair_file_is_expected(capsys, store_path, tmp_path):
    folder = tmp_path / "pairs.tsv"
    folder.mkdir()
    code, _, err = run_cli(capsys, "relations", "add", f"pairs:{folder}", "--store", store_path)
    assert_one_line(err, code, 1, "is a directory")


def test_directory_where_a_config_file_is_expected(capsys, tmp_path):
    code, _, err = run_cli(capsys, "distill", "--config", tmp_path, "--store", "x", "--data", "y")
    assert_one_line(err, code, 1, "is a directory")


def test_file_where_a_directory_is_expected(capsys, store_path, tmp_path):
    a_file = tmp_path / "out"
    a_file.write_text("not a folder")
    code, _, err = run_cli(capsys, "export", "--store", store_path, "-o", a_file)
    assert_one_line(err, code, 1, "is not a directory")
    assert a_file.read_text() == "not a folder"


def test_a_file_as_the_store(capsys, tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    code, _, err = run_cli(capsys, "query", "bank", "--store", a_file)
    assert_one_line(err, code, 2, "no sensekit store")


def test_invalid_utf8_is_refused_with_its_line(capsys, tiny_dir, tmp_path):  # noqa: F811
    corpus = tmp_path / "latin1.txt"
    corpus.write_bytes("\n\n".join(TEXTS).encode() + "\n\nla caf\xe9 est ferm\xe9e\n".encode("latin-1"))
    line_no = corpus.read_bytes().count(b"\n")  # the bad line is the last one
    code, _, err = run_cli(capsys, *build_args(corpus, tmp_path / "s.sensekit", tiny_dir))
    line = assert_one_line(err, code, 1, "not valid UTF-8")
    assert f"latin1.txt:{line_no}:" in line and "e9" in line
    assert not (tmp_path / "s.sensekit").exists()


def test_a_binary_file_is_not_a_corpus(capsys, tiny_dir, tmp_path):  # noqa: F811
    corpus = tmp_path / "model.bin"
    corpus.write_bytes(bytes(range(256)) * 64)  # today's bug: it became a 3-token store
    code, _, err = run_cli(capsys, *build_args(corpus, tmp_path / "s.sensekit", tiny_dir))
    assert_one_line(err, code, 1, "model.bin:2: not valid UTF-8")  # line 1 is bytes 0-10 (ASCII)
    assert not (tmp_path / "s.sensekit").exists()


def test_nul_bytes_are_refused(capsys, tiny_dir, tmp_path):  # noqa: F811
    corpus = tmp_path / "utf16.txt"
    corpus.write_bytes("the bank of the river\n".encode("ascii") + "hello world\n".encode("utf-16-le"))
    code, _, err = run_cli(capsys, *build_args(corpus, tmp_path / "s.sensekit", tiny_dir))
    line = assert_one_line(err, code, 1, "NUL byte")
    assert "utf16.txt:2:" in line


def test_truncated_bz2_corpus(capsys, tiny_dir, tmp_path):  # noqa: F811
    whole = bz2.compress(("\n\n".join(TEXTS * 20) + "\n").encode())
    corpus = tmp_path / "corpus.txt.bz2"
    corpus.write_bytes(whole[: len(whole) // 2])
    code, _, err = run_cli(capsys, *build_args(corpus, tmp_path / "s.sensekit", tiny_dir))
    assert_one_line(err, code, 1, "truncated or corrupt")
    assert not (tmp_path / "s.sensekit").exists()


def test_truncated_bz2_pair_file(capsys, store_path, tmp_path):
    whole = bz2.compress(b"happy\tglad\tsyn\n" * 5000)
    pairs = tmp_path / "pairs.tsv.bz2"
    pairs.write_bytes(whole[: len(whole) // 2])
    code, _, err = run_cli(capsys, "relations", "add", f"pairs:{pairs}", "--store", store_path)
    assert_one_line(err, code, 1, "truncated or corrupt")
    code, out, _ = run_cli(capsys, "info", "--store", store_path, "--verify", "--json")
    assert code == 0 and json.loads(out)["counts"]["synonyms"] == 4  # the store did not change


def test_jsonl_line_over_10_mib_is_refused(capsys, tiny_dir, tmp_path):  # noqa: F811
    corpus = tmp_path / "docs.jsonl"
    big = json.dumps({"text": "bank " * (11 << 18)})  # 11 MiB + on one line
    corpus.write_text(json.dumps({"text": TEXTS[0]}) + "\n" + big + "\n")
    t0 = time.perf_counter()
    code, _, err = run_cli(capsys, *build_args(corpus, tmp_path / "s.sensekit", tiny_dir))
    line = assert_one_line(err, code, 1, "longer than 10 MiB")
    assert "docs.jsonl:2:" in line and len(line) < 400
    assert time.perf_counter() - t0 < 120


def test_kaikki_line_over_10_mib_is_a_bad_line(tmp_path):
    from sensekit.lexicon.kaikki import iter_kaikki
    from sensekit.lexicon.pairs import ReadReport

    path = tmp_path / "words.jsonl"
    entry = {"word": "happy", "lang_code": "en", "pos": "adj", "senses": [{"glosses": ["glad"]}]}
    path.write_text(json.dumps(entry) + "\n" + "x" * (11 << 20) + "\n" + json.dumps(entry) + "\n")
    report = ReadReport("w")
    assert [n for n, _ in iter_kaikki(path, report)] == [1, 3]
    assert report.bad == 1 and report.errors[0][0] == 2 and "10 MiB" in report.errors[0][1]


# -- wiki text --------------------------------------------------------------------------------------
def _dump(pages: list[tuple[str, int, str]]) -> str:
    body = "".join(
        f"<page><title>{t}</title><ns>{ns}</ns><id>{i}</id><revision><id>{i}</id><text xml:space="
        f'"preserve">{text}</text></revision></page>'
        for i, (t, ns, text) in enumerate(pages, 1)
    )
    return f'<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10">{body}</mediawiki>'


def test_template_loop_in_a_wiki_corpus(capsys, tiny_dir, tmp_path):  # noqa: F811
    """Templates are stripped, never expanded: a Template: page that transcludes itself cannot loop."""
    from sensekit.builder.corpus import wikitext_to_text

    article = "The {{loop}} bank of the river. " * 20 + "{{loop|{{loop|{{loop}}}}}} money in the bank."
    dump = tmp_path / "wiki.xml"
    dump.write_text(
        _dump([("Template:Loop", 10, "{{loop}} {{Loop2}}"), ("Template:Loop2", 10, "{{loop}}"), ("Bank", 0, article)])
    )
    t0 = time.perf_counter()
    assert isinstance(wikitext_to_text("{{a|" * 3000 + "}}" * 3000), str)  # deep nesting: no recursion error
    code, out, err = run_cli(capsys, *build_args(dump, tmp_path / "s.sensekit", tiny_dir))
    assert code == 0, err[-2000:]
    assert "wrote" in out and time.perf_counter() - t0 < 180


def test_template_loop_in_a_wiktionary_dump(shared, tmp_path):
    """wiktextract expands templates: a loop is cut off and the page's own relations still come out."""
    from sensekit.lexicon.kaikki import entry_pairs
    from sensekit.lexicon.wiktionary_dump import dump_entries

    article = (
        "==English==\n\n===Adjective===\n{{loop}}\n\n# [[feeling|Feeling]] {{loop}} [[pleasure]].\n"
        "#: {{syn|en|glad|cheerful}}\n#: {{ant|en|sad}}\n"
    )
    dump = tmp_path / "loop.xml"
    dump.write_text(
        _dump(
            [
                ("Template:loop", 10, "a {{loop}} b {{loop2}}"),
                ("Template:loop2", 10, "c {{loop}}"),
                ("happy", 0, article),
            ]
        )
    )
    t0 = time.perf_counter()
    entries = list(dump_entries(dump, processes=1, lang_code=None))
    pairs = {(a, b, k) for e in entries for a, b, k, _ in entry_pairs(e)}
    assert {("happy", "glad", "syn"), ("happy", "sad", "ant")} <= pairs
    assert time.perf_counter() - t0 < 300


# -- numbers out of range -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "flags,needle",
    [
        (["-k", "0"], "--senses-per-token must be >= 1, got 0"),
        (["-G", "-1"], "--samples-per-token must be >= 1, got -1"),
        (["--kmeans-tol", "nan"], "--kmeans-tol must be a finite number"),
        (["--reservoir-memory", "lots"], "--reservoir-memory 'lots' is not a size"),
    ],
)
def test_build_numbers_out_of_range(capsys, tmp_path, flags, needle):
    corpus = tmp_path / "c.txt"
    corpus.write_text("the bank of the river\n")
    code, _, err = run_cli(capsys, "build", corpus, "--store", tmp_path / "s.sensekit", "--quiet", *flags)
    assert_one_line(err, code, 1, needle)


@pytest.mark.parametrize(
    "flags,needle",
    [
        (["--lr", "nan"], "--lr must be a finite number, got nan"),
        (["--lr", "inf"], "--lr must be a finite number"),
        (["--kappa", "0"], "--kappa must be >= 1, got 0"),
        (["--sample-floor", "-3"], "--sample-floor must be >= 1, got -3"),
    ],
)
def test_distill_numbers_out_of_range(capsys, flags, needle):
    code, _, err = run_cli(capsys, "distill", "--store", "x", "--data", "y", *flags)
    assert_one_line(err, code, 1, needle)


def test_kappa_larger_than_the_pool_is_clamped(tmp_path):
    """kappa above the candidates a pool can hold keeps every candidate (the pool is the limit), as with a
    pool smaller than kappa in the paper's code: the losses equal those of kappa = the largest pool, and a
    kappa below it (which drops candidates) gives other losses."""
    from helpers import make_store, make_teacher_dir, write_corpus

    from sensekit import open_store
    from sensekit.cli.distill import distill
    from sensekit.distill.targets import SenseTargets

    teacher_dir = make_teacher_dir(tmp_path / "teacher")
    store = make_store(tmp_path / "s.sensekit", teacher_dir)
    corpus = write_corpus(tmp_path / "train.txt", repeats=4)
    neighbors = 3
    with open_store(store) as s:  # a positive pool: D(y) and up to `neighbors` synonyms, each <= K senses
        pool = (1 + neighbors) * SenseTargets.from_store(s, vocab_size=10**6).unit_rows.shape[1]

    def losses(kappa: int, out: str) -> list[dict]:
        distill(
            {
                "store": str(store),
                "data": [str(corpus)],
                "teacher": str(teacher_dir),
                "student_layers": "2",
                "train_layers": "top1",
                "seq_len": 24,
                "batch_size": 4,
                "max_windows": 8,
                "max_steps": 2,
                "kappa": kappa,
                "neighbors": neighbors,
                "sample_floor": 4,
                "output_dir": str(tmp_path / out),
                "device": "cpu",
                "save_every": 0,
            }
        )
        rows = [json.loads(x) for x in (tmp_path / out / "metrics.jsonl").read_text().splitlines()]
        return [{k: r[k] for k in ("kd", "ce", "sense_pos", "sense_neg", "total")} for r in rows]

    huge, at_pool, small = losses(1000, "huge"), losses(pool, "pool"), losses(1, "one")
    assert len(huge) == 2 and huge == at_pool  # the same numbers, bit for bit
    assert small != huge and any(r["sense_pos"] > 0 for r in huge)


# -- models ---------------------------------------------------------------------------------------
def test_teacher_id_not_there_offline(capsys, monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import time: patch it too
    corpus = tmp_path / "c.txt"
    corpus.write_text("the bank of the river\n")
    t0 = time.perf_counter()
    code, _, err = run_cli(
        capsys,
        "build",
        corpus,
        "--store",
        tmp_path / "s.sensekit",
        "--teacher",
        "no-such-org/no-such-model",
        "--device",
        "cpu",
        "--quiet",
    )
    assert_one_line(err, code, 1, "cannot load teacher 'no-such-org/no-such-model'")
    assert time.perf_counter() - t0 < 60  # offline: no network retries


def _save_tokenizer(folder: Path) -> None:
    from conftest import train_tokenizer
    from transformers import PreTrainedTokenizerFast

    PreTrainedTokenizerFast(
        tokenizer_object=train_tokenizer(), pad_token="<pad>", eos_token="<|endoftext|>"
    ).save_pretrained(str(folder))


@pytest.mark.parametrize("family", ["bert", "distilbert"])
def test_a_model_that_is_not_a_causal_lm(capsys, tmp_path, family):
    """BERT maps to a causal-LM class whose head is missing from an encoder checkpoint (it would be random);
    DistilBERT has no causal-LM class at all. Both are refused before any corpus is read."""
    from transformers import BertConfig, BertModel, DistilBertConfig, DistilBertModel

    folder = tmp_path / family
    _save_tokenizer(folder)
    if family == "bert":
        BertModel(
            BertConfig(vocab_size=400, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
        ).save_pretrained(str(folder))
    else:
        DistilBertModel(DistilBertConfig(vocab_size=400, dim=32, n_layers=1, n_heads=2, hidden_dim=64)).save_pretrained(
            str(folder)
        )
    corpus = tmp_path / "c.txt"
    corpus.write_text("the bank of the river\n")
    code, _, err = run_cli(
        capsys, "build", corpus, "--store", tmp_path / "s.sensekit", "--teacher", folder, "--device", "cpu", "--quiet"
    )
    line = assert_one_line(err, code, 1, f"teacher '{folder}'")
    assert "causal" in line.lower() or "AutoModelForCausalLM" in line


# -- words ------------------------------------------------------------------------------------------
def test_a_very_long_word_is_not_echoed_back(capsys, store_path):
    word = "x" * 10_000
    code, out, err = run_cli(capsys, "query", word, "--store", store_path)
    line = assert_one_line(err, code, 1, "unknown word 'xxxx")
    assert "…" in line and "10,000 characters" in line and len(line) < 500 and out == ""


@pytest.mark.parametrize(
    "word,code_wanted,needle",
    [
        ("", 1, "the word is empty"),
        ("   ", 1, "the word is empty"),
        ("'; DROP TABLE senses; --", 1, "unknown word"),
        ("[bold]bank[/bold]", 1, "unknown word '[bold]bank[/bold]'"),  # rich markup is printed, not interpreted
    ],
)
def test_odd_words(capsys, store_path, word, code_wanted, needle):
    code, _, err = run_cli(capsys, "query", "--store", store_path, "--", word)
    assert_one_line(err, code, code_wanted, needle)


def test_empty_and_missing_corpus(capsys, tmp_path):
    code, _, err = run_cli(capsys, "build", tmp_path / "none.txt", "--store", tmp_path / "s.sensekit", "--quiet")
    assert_one_line(err, code, 1, "does not exist")


def test_console_script_has_no_traceback_on_a_binary_corpus(tiny_dir, tmp_path):  # noqa: F811
    """The installed entry point (a real process): one line, exit 1."""
    import subprocess

    corpus = tmp_path / "x.bin"
    corpus.write_bytes(b"\xff\xfe\x00\x01" * 100)
    proc = subprocess.run(
        [sys.executable, "-m", "sensekit.cli", *map(str, build_args(corpus, tmp_path / "s", tiny_dir))],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1 and proc.stderr.startswith("error:") and "Traceback" not in proc.stderr
