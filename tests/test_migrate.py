"""`sensekit migrate`: a v3 bundle (tests/fixtures/store_v3.tgz, written by the v3 writer: a loss and a lexical
view, a kept context vector, attachments in both views) becomes v4 in place, row for row, atomically."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
from pathlib import Path

import duckdb
import numpy as np
import pytest
from helpers import run_cli
from test_store import unit

from sensekit import SchemaMismatch, open_store
from sensekit.migrate import migrate

FIXTURE = Path(__file__).parent / "fixtures" / "store_v3.tgz"


@pytest.fixture()
def v3(tmp_path) -> Path:
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path / "v3.sensekit"


def _v3_rows(path: Path) -> dict:
    con = duckdb.connect(str(path / "store.duckdb"), read_only=True)
    try:
        return {
            "senses": con.execute(
                "SELECT sense_id, view, token_id, span_id, sense_index, count FROM senses ORDER BY sense_id"
            ).fetchall(),
            "embeddings": np.asarray(
                [r[0] for r in con.execute("SELECT embedding FROM senses ORDER BY sense_id").fetchall()], np.float32
            ),
            "contexts": con.execute(
                "SELECT sense_id, rank, doc_id, char_start, char_end, snippet, mark_start, mark_end, distance"
                " FROM contexts ORDER BY sense_id, rank"
            ).fetchall(),
            "relations": sorted(
                con.execute("SELECT head, related, kind, source, derived, provenance FROM relations").fetchall()
            ),
            "words": sorted(con.execute("SELECT * FROM words").fetchall()),
            "tokens": con.execute("SELECT * FROM tokens ORDER BY token_id").fetchall(),
        }
    finally:
        con.close()


def test_a_v3_store_is_refused_with_the_migrate_command(v3):
    with pytest.raises(SchemaMismatch, match=f"schema version 3.*sensekit migrate {v3}"):
        open_store(v3)


def test_migrate_keeps_every_row_and_vector(v3):
    before = _v3_rows(v3)
    result = migrate(v3)
    assert result["views"] == ["loss", "lexical"] and result["senses"] == len(before["senses"])
    assert result["context_vectors"] == 1
    with open_store(v3) as s:
        s.verify()
        assert s.meta["schema_version"] == 4 and s.meta["migrated_from"] == 3
        assert list(s.views) == ["loss", "lexical"] and s.default_view == "lexical"
        assert s.view("loss").key_mode == "next" and s.view("lexical").key_mode == "input"
        con = s.con
        got = con.execute(
            "SELECT sense_id, view, token_id, span_id, sense_index, count FROM senses ORDER BY sense_id"
        ).fetchall()
        assert got == before["senses"]
        np.testing.assert_array_equal(np.asarray(s._embeddings), before["embeddings"])
        got = con.execute(
            "SELECT sense_id, rank, doc_id, char_start, char_end, snippet, mark_start, mark_end, distance"
            " FROM contexts ORDER BY sense_id, rank"
        ).fetchall()
        assert got == before["contexts"]
        assert sorted(con.execute("SELECT * FROM relations").fetchall()) == before["relations"]
        assert sorted(con.execute("SELECT * FROM words").fetchall()) == before["words"]
        assert con.execute("SELECT * FROM tokens ORDER BY token_id").fetchall() == before["tokens"]
        lexical = s.senses("bank")
        np.testing.assert_array_equal(np.stack([x.embedding for x in lexical]), np.stack([unit(5), unit(6)]))
        (vectors,) = s.context_vectors([lexical[0].sense_id]).values()
        np.testing.assert_array_equal(vectors, (unit(5) * 2)[None])
        assert [(r.related, r.head_sense, r.head_distance) for r in s.relations("bank", view="loss")] == [
            ("river", 0, 0.25)
        ]
        assert [(r.related, r.head_sense, r.head_distance) for r in s.relations("bank")] == [("river", 1, 0.75)]
        assert [r.head_sense for r in s.relations("river")] == [None]  # unattached in the lexical view
        assert [n.sense.token_id for n in s.neighbors("river", k=1, view="loss")] == [s.token_ids("bank")[0]]
    with pytest.raises(Exception, match="already has schema version 4"):
        migrate(v3)


def test_migrate_to_float16_rebuilds_the_indexes(v3):
    migrate(v3, dtype="float16")
    with open_store(v3) as s:
        assert np.load(v3 / "embeddings.npy").dtype == np.float16 and s.view().dtype == "float16"
        assert [n.sense.token_id for n in s.neighbors("river", k=1, view="loss")] == [s.token_ids("bank")[0]]


def test_migrate_command(capsys, v3):
    code, out, err = run_cli(capsys, "migrate", v3)
    assert code == 0 and "schema 4" in out, err
    code, _, err = run_cli(capsys, "migrate", v3)
    assert code != 0 and "already has schema version 4" in err and len(err.strip().splitlines()) == 1


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_killed_migrate_leaves_the_v3_store_intact(v3, tmp_path):
    from test_reliability_kills import CHILD, _env, assert_no_partial_bundle_opens, kill_when

    before = {p.name: _sha256(p) for p in v3.iterdir()}
    marker = tmp_path / "paused"
    # the child stops after writing the new bundle's vector files, before it is renamed into place
    code = """
import sensekit.writer as _w
_write = _w.write_vector_file
def _write_then_pause(*a, **k):
    record = _write(*a, **k)
    pause("vectors-written")
    return record
_w.write_vector_file = _write_then_pause
from sensekit.migrate import migrate
migrate(sys.argv[1])
"""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD + code, str(v3)],
        env=_env(SENSEKIT_TEST_PAUSE_MARKER=str(marker)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    kill_when(proc, marker.exists, "the migrate wrote its vector files")
    assert {p.name: _sha256(p) for p in v3.iterdir()} == before  # the v3 store, byte for byte
    assert assert_no_partial_bundle_opens(v3)  # the half-written v4 bundle beside it never opens
    with pytest.raises(SchemaMismatch, match="sensekit migrate"):
        open_store(v3)
    migrate(v3)  # and it can be migrated again
    open_store(v3).close()
