"""Reproducibility (issue 12, section F): the same inputs and seed give byte-identical sense and relation
tables, and `sensekit info` shows the content fingerprint (meta `content_sha256`, sha256 over the ordered
content tables, computed when the store is written) that proves it; `sensekit info --verify` recomputes it.
The HNSW file is not covered: hnswlib builds it with several threads, so its bytes may differ."""

from __future__ import annotations

import json

import duckdb
import pytest
from helpers import build_config, run_cli
from test_store import write_small_store

from sensekit import open_store
from sensekit.builder.pipeline import build

TABLES = {
    "senses": "SELECT * FROM senses ORDER BY sense_id",
    "relations": "SELECT * FROM relations ORDER BY source, head, related, kind",
    "tokens": "SELECT * FROM tokens ORDER BY token_id",
    "contexts": "SELECT * FROM contexts ORDER BY sense_id, rank",
}


def tables(store) -> dict:
    """Each table as an arrow table, in a fixed row order (compared with .equals: values and types, bit for bit)."""
    con = duckdb.connect(str(store / "store.duckdb"), read_only=True)
    try:
        return {name: con.sql(query).to_arrow_table() for name, query in TABLES.items()}
    finally:
        con.close()


_cfg = build_config


@pytest.fixture()
def pairs(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("good\tbad\tant\nhappy\tglad\tsyn\nbig\tlarge\tsyn\nlight\tdark\tant\nbank\triver bank\tsyn\n")
    return path


def test_same_inputs_and_seed_give_identical_tables_and_fingerprints(tiny, text_corpus, pairs, tmp_path):  # noqa: F811
    relations = (f"pairs:{pairs}",)
    a = build(_cfg(text_corpus, tmp_path / "a.sensekit", relations=relations), teacher=tiny).store
    b = build(_cfg(text_corpus, tmp_path / "b.sensekit", relations=relations), teacher=tiny).store
    c = build(_cfg(text_corpus, tmp_path / "c.sensekit", relations=relations, seed=1), teacher=tiny).store
    ta, tb = tables(a), tables(b)
    assert ta["relations"].num_rows > 0 and ta["senses"].num_rows > 0
    for name in TABLES:
        assert ta[name].equals(tb[name]), name
    with open_store(a) as sa, open_store(b) as sb, open_store(c) as sc:
        assert sa.verify() == sb.verify() == sa.meta["content_sha256"]
        assert sc.verify() != sa.verify()  # another seed: other senses, another fingerprint
        assert {k: v for k, v in sa.meta["build_config"].items() if k != "store"} == {
            k: v for k, v in sb.meta["build_config"].items() if k != "store"
        }
    assert not ta["senses"].equals(tables(c)["senses"])


def test_cli_build_matches_the_api_build(capsys, tiny, tiny_dir, text_corpus, tmp_path):  # noqa: F811
    api = build(_cfg(text_corpus, tmp_path / "api.sensekit", teacher=str(tiny_dir)), teacher=tiny).store
    code, _, err = run_cli(
        capsys,
        "build",
        text_corpus,
        "--store",
        tmp_path / "cli.sensekit",
        "--teacher",
        tiny_dir,
        "--device",
        "cpu",
        "--seq-len",
        "16",
        "--batch-size",
        "2",
        "-k",
        "3",
        "-G",
        "6",
        "-E",
        "2",
        "--checkpoint-every",
        "0",
        "--link-budget",
        "0",
        "--quiet",
    )
    assert code == 0, err
    code, out, _ = run_cli(capsys, "info", "--store", tmp_path / "cli.sensekit", "--json")
    with open_store(api) as s:
        assert json.loads(out)["provenance"]["content_sha256"] == s.meta["content_sha256"]


def test_info_shows_and_verifies_the_fingerprint(capsys, tmp_path, tokenizer_json, tok):  # noqa: F811
    store = tmp_path / "s.sensekit"
    write_small_store(store, tokenizer_json, tok)
    code, out, _ = run_cli(capsys, "info", "--store", store, "--json")
    fp = json.loads(out)["provenance"]["content_sha256"]
    assert code == 0 and len(fp) == 64
    code, out, _ = run_cli(capsys, "info", "--store", store)
    assert code == 0 and f"content fingerprint (sha256 over the tables): {fp}\n" in out
    code, out, _ = run_cli(capsys, "info", "--store", store, "--verify")
    assert code == 0 and f"content fingerprint (sha256 over the tables): {fp} verified" in out
    code, out, _ = run_cli(capsys, "info", "--store", store, "--verify", "--json")
    assert code == 0 and json.loads(out)["verified"] == fp

    con = duckdb.connect(str(store / "store.duckdb"))  # a change made behind sensekit's back
    con.execute("UPDATE senses SET count = count + 1 WHERE sense_id = 0")
    con.close()
    code, out, err = run_cli(capsys, "info", "--store", store, "--verify")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "content does not match its fingerprint" in lines[0]


def test_the_fingerprint_ignores_layout_and_batching(monkeypatch, tmp_path, tokenizer_json, tok):  # noqa: F811
    import sensekit.fingerprint as F
    from sensekit.writer import StoreWriter

    one, two = tmp_path / "one.sensekit", tmp_path / "two.sensekit"
    write_small_store(one, tokenizer_json, tok)
    write_small_store(two, tokenizer_json, tok)
    with open_store(one) as s1, open_store(two) as s2:
        fp = s1.meta["content_sha256"]
        assert s2.meta["content_sha256"] == fp
        monkeypatch.setattr(F, "_BATCH_ROWS", 2)  # other record batches: the same streams
        assert s1.verify() == fp  # the tables' fingerprint, read again in other batches, and the vector files'
    with StoreWriter.update(one) as w:  # an update that writes the same rows again changes nothing
        w.replace_relations(
            "wordnet",
            {
                "head": ["happy", "glad", "good", "bad"],
                "related": ["glad", "happy", "bad", "good"],
                "kind": ["syn", "syn", "ant", "ant"],
                "derived": [False] * 4,
                "provenance": [None] * 4,
            },
        )
    with open_store(one) as s1:
        assert s1.verify() == fp
    with StoreWriter.update(one) as w:  # and a real change shows
        w.replace_relations(
            "wordnet", {"head": ["good"], "related": ["bad"], "kind": ["ant"], "derived": [False], "provenance": [None]}
        )
    with open_store(one) as s1:
        assert s1.verify() != fp
