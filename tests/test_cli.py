"""`sensekit query | info | export`: output, JSON shape, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import duckdb
import numpy as np
import pytest
from helpers import run_cli
from test_store import write_small_store


@pytest.fixture()
def store_path(tmp_path, tokenizer_json, tok):  # noqa: F811
    path = tmp_path / "small.sensekit"
    write_small_store(path, tokenizer_json, tok)
    return path


def test_query_json_shape(capsys, store_path):
    code, out, _ = run_cli(capsys, "query", "bank", "--store", str(store_path), "--json", "-k", "3")
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == {"word", "store", "view", "tokens", "senses", "relations", "unattached", "neighbors"}
    assert doc["word"] == "bank"
    assert [t["text"] for t in doc["tokens"]] == [" bank"]
    assert [(s["sense_index"], s["count"], s["share"]) for s in doc["senses"]] == [(0, 20, 0.6667), (1, 10, 0.3333)]
    assert doc["senses"][0]["contexts"][0] == {
        "doc_id": "d1",
        "char_start": 4,
        "char_end": 9,
        "snippet": "the bank of the river",
        "mark_start": 4,
        "mark_end": 8,
        "distance": 0.1,
    }
    [river] = doc["relations"]["syn"]["wiktionary"]
    assert river["related"] == "river" and len(river["sense_ids"]) == 1 and not river["is_span"]
    assert doc["relations"]["ant"] == {}
    # written without attaching (no `relations add`): river belongs to no sense yet
    assert doc["unattached"] == {"syn": ["river"], "ant": []} and doc["senses"][0]["syn"] == []
    assert len(doc["neighbors"]) == 3 and {n["text"] for n in doc["neighbors"][:2]} == {" river", " money"}


def test_query_tables(capsys, store_path):
    code, out, _ = run_cli(capsys, "query", "bank", "--store", str(store_path))
    assert code == 0
    for needle in (
        "senses of 'bank'",
        "the bank of the river",
        "synonyms",
        "wiktionary 1",
        "without senses to attach: river",
        "nearest senses",
        "' river'",
    ):
        assert needle in out


def test_query_groups_relations_under_their_sense(capsys, store_path):
    from sensekit.writer import StoreWriter

    with StoreWriter.update(store_path) as w:
        w.set_head_senses(["bank"], ["river"], np.array([1]), np.array([0.25]))
    code, out, _ = run_cli(capsys, "query", "bank", "--store", str(store_path), "--json")
    doc = json.loads(out)
    assert [s["syn"] for s in doc["senses"]] == [[], ["river"]] and doc["unattached"]["syn"] == []
    assert doc["relations"]["syn"]["wiktionary"][0]["head_sense"] == 1
    code, out, _ = run_cli(capsys, "query", "bank", "--store", str(store_path))
    row = next(line for line in out.splitlines() if "money at bank" in line)
    assert "river" in row


def test_query_relations_only_word(capsys, store_path):
    code, out, _ = run_cli(capsys, "query", "good", "--store", str(store_path), "--json")
    assert code == 0 and json.loads(out)["relations"]["ant"]["wordnet"][0]["related"] == "bad"


def test_unknown_word_exits_1_with_suggestions(capsys, store_path):
    code, out, err = run_cli(capsys, "query", "banc", "--store", str(store_path))
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "unknown word 'banc'" in err and "did you mean: bank" in err


@pytest.mark.parametrize("word", ["", "'; DROP TABLE senses; --"])
def test_odd_words_are_user_errors(capsys, store_path, word):
    code, _, err = run_cli(capsys, "query", word, "--store", str(store_path))
    assert code == 1 and err.startswith("error:") and "Traceback" not in err


def test_missing_and_corrupt_store_exit_2(capsys, tmp_path):
    code, _, err = run_cli(capsys, "query", "bank", "--store", str(tmp_path / "none.sensekit"))
    assert code == 2 and "no sensekit store" in err and err.count("\n") == 1
    bad = tmp_path / "bad.sensekit"
    bad.mkdir()
    (bad / "store.duckdb").write_text("garbage")
    code, _, err = run_cli(capsys, "info", "--store", str(bad))
    assert code == 2 and err.count("\n") == 1


def test_info_and_export(capsys, store_path, tmp_path):
    code, out, _ = run_cli(capsys, "info", "--store", str(store_path), "--json")
    doc = json.loads(out)
    assert (
        code == 0
        and doc["counts"]["senses"] == 5
        and doc["index"]["count"] == 5
        and doc["provenance"]["teacher"] == "tiny"
    )
    assert doc["space"] == {"kind": "identity", "components": 0, "dim": 16}
    code, out, _ = run_cli(capsys, "export", "--store", str(store_path), "-o", str(tmp_path / "pq"))
    assert code == 0
    names = sorted(p.name for p in (tmp_path / "pq").iterdir())
    assert names == sorted(
        f"{t}.parquet"
        for t in (
            "meta",
            "tokens",
            "spans",
            "senses",
            "contexts",
            "words",
            "relations",
            "relation_senses",
            "similarity_space",
        )
    )
    n, dim = duckdb.sql(
        f"SELECT count(*), max(len(embedding)) FROM read_parquet('{tmp_path / 'pq' / 'senses.parquet'}')"
    ).fetchall()[0]
    assert n == 5 and dim == 16  # each sense with its vector


def test_console_script_has_no_traceback(store_path):
    proc = subprocess.run(
        [sys.executable, "-m", "sensekit.cli", "query", "zzzz", "--store", str(store_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and proc.stderr.startswith("error:")
