"""embeddings.npy (sensekit/sense_array.py), small row groups, and a store read from many threads."""

from __future__ import annotations

import shutil
import threading

import duckdb
import numpy as np
import pytest
from test_store import write_small_store

from sensekit import StoreError, _sql, open_store
from sensekit.sense_array import EMBEDDINGS_KEY
from sensekit.writer import ROW_GROUP_ROWS, StoreWriter


@pytest.fixture()
def store_path(tmp_path, tokenizer_json, tok):
    path = tmp_path / "small.sensekit"
    write_small_store(path, tokenizer_json, tok)
    return path


def duckdb_embeddings(path) -> np.ndarray:
    con = duckdb.connect(str(path / "store.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT embedding FROM senses ORDER BY sense_id").fetchall()
    finally:
        con.close()
    return np.asarray([r[0] for r in rows], np.float32)


def test_the_array_holds_duckdbs_embeddings_in_sense_id_order(store_path):
    on_disk = np.load(store_path / "embeddings.npy")
    assert on_disk.dtype == np.float32
    np.testing.assert_array_equal(on_disk, duckdb_embeddings(store_path))
    with open_store(store_path) as s:
        record = s.meta[EMBEDDINGS_KEY]
        assert set(record) == {"file", "rows", "dim", "ids", "sha256"}
        assert (record["rows"], record["dim"]) == on_disk.shape
        for sense in s.senses("bank") + s.senses("river"):
            np.testing.assert_array_equal(sense.embedding, s._duckdb_embeddings(np.array([sense.sense_id]))[0])
            assert not sense.embedding.flags.writeable
        m = s.sense_matrix()
        np.testing.assert_array_equal(m["embedding"], on_disk[np.searchsorted(s._sense_ids, m["sense_id"])])


def test_a_store_without_the_file_record_reads_duckdb(store_path):
    """A store written before embeddings.npy existed (no meta record) answers the same from DuckDB."""
    with open_store(store_path) as s:
        want = [(x.sense_id, x.embedding.copy(), x.contexts) for x in s.senses("bank")]
        matrix = s.sense_matrix()["embedding"]
    con = duckdb.connect(str(store_path / "store.duckdb"))
    con.execute("DELETE FROM meta WHERE key = ?", [EMBEDDINGS_KEY])
    con.close()
    (store_path / "embeddings.npy").unlink()
    with open_store(store_path) as s:
        assert s._embeddings is None
        got = [(x.sense_id, x.embedding, x.contexts) for x in s.senses("bank")]
        np.testing.assert_array_equal(s.sense_matrix()["embedding"], matrix)
    assert [g[0] for g in got] == [w[0] for w in want] and [g[2] for g in got] == [w[2] for w in want]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g[1], w[1])


def _one_line_store_error(path, *needles):
    with pytest.raises(StoreError) as err:
        open_store(path)
    message = str(err.value)
    assert "\n" not in message and "embeddings.npy" in message and "rebuild" in message
    for needle in needles:
        assert needle in message
    return message


def test_a_missing_or_truncated_file_is_refused_in_one_line(store_path, tmp_path):
    missing = tmp_path / "missing.sensekit"
    shutil.copytree(store_path, missing)
    (missing / "embeddings.npy").unlink()
    _one_line_store_error(missing, "missing")

    short = tmp_path / "short.sensekit"
    shutil.copytree(store_path, short)
    raw = (short / "embeddings.npy").read_bytes()
    (short / "embeddings.npy").write_bytes(raw[:-8])
    _one_line_store_error(short)


def test_a_file_from_another_store_is_refused(store_path, tmp_path, tokenizer_json, tok):
    """Same shape, other vectors: the rows compared with DuckDB at open differ."""
    other = tmp_path / "other.sensekit"
    write_small_store(other, tokenizer_json, tok)
    array = np.load(other / "embeddings.npy")
    np.save(other / "embeddings.npy", (array[::-1] + 1.0).astype(np.float32))
    _one_line_store_error(other, "another store")


def test_verify_hashes_the_whole_file(store_path):
    """A changed byte in a row that open() does not compare is found by verify() (`info --verify`)."""
    with open_store(store_path) as s:
        s.verify()
        n, dim = s._embeddings.shape
    assert n >= 4  # row 1 is neither the first, the middle nor the last row compared at open
    path = store_path / "embeddings.npy"
    raw = bytearray(path.read_bytes())
    header = len(raw) - n * dim * 4
    raw[header + dim * 4 + 3] ^= 0x01  # row 1, first value, lowest mantissa bit
    path.write_bytes(bytes(raw))
    with open_store(store_path) as s, pytest.raises(StoreError, match="sha256"):
        s.verify()


def test_an_update_rewrites_the_file(store_path):
    """`relations add` (StoreWriter.update) adds sense rows for spans: the file follows."""
    with StoreWriter.update(store_path) as w:
        span = w.next_span_id()
        w.add_spans([span], [[1, 2]], ["two tokens"])
        w.add_senses(np.ones((2, 16), np.float32), [0, 1], [0, 0], span_ids=[span, span])
    np.testing.assert_array_equal(np.load(store_path / "embeddings.npy"), duckdb_embeddings(store_path))
    with open_store(store_path) as s:
        assert len(s._embeddings) == len(s._sense_ids)


def test_tables_are_written_in_small_row_groups(tmp_path, tokenizer_json):
    """Lookups prune by zone map to one row group: the writer must keep them small."""
    path = tmp_path / "rows.sensekit"
    n = 3 * ROW_GROUP_ROWS + 5
    with StoreWriter(path, dim=4, tokenizer_json=tokenizer_json, space="identity") as w:
        w.add_tokens(np.arange(n), [f" t{i}" for i in range(n)], np.ones(n, np.int64))
        sids = w.add_senses(np.ones((n, 4), np.float32), np.zeros(n), np.ones(n), token_ids=np.arange(n))
        w.add_contexts(
            {
                "sense_id": sids,
                "rank": np.zeros(n, np.int16),
                "doc_id": ["d"] * n,
                "char_start": np.zeros(n, np.int32),
                "char_end": np.ones(n, np.int32),
                "snippet": ["a snippet"] * n,
                "mark_start": np.zeros(n, np.int32),
                "mark_end": np.ones(n, np.int32),
                "distance": np.zeros(n, np.float32),
            }
        )
    con = duckdb.connect(str(path / "store.duckdb"), read_only=True)
    for table in ("senses", "contexts"):
        groups = con.execute(
            f"SELECT row_group_id, max(row_group_id) OVER () FROM pragma_storage_info('{table}') LIMIT 1"
        ).fetchall()[0][1]
        assert groups + 1 >= 4, table  # 3 full groups and the rest, not one group of 6,149 rows
    con.close()


def test_threads_read_one_store_side_by_side(store_path):
    """Every thread gets its own DuckDB cursor: many threads at once give the serial answers."""
    words = ["bank", "river", "money", "glad", "happy", "good", "bad"]
    with open_store(store_path) as s:

        def answers(store):
            out = []
            for w in words:
                out.append(
                    (
                        [(x.sense_id, x.contexts) for x in store.senses(w)],
                        store.tokens(w),
                        store.relations(w),
                        store.similar_words(w),
                    )
                )
            return out

        want = answers(s)
        results, errors = [], []
        start = threading.Barrier(8)

        def worker():
            try:
                start.wait()
                for _ in range(20):
                    s._sense_cache.clear()  # read DuckDB each time, not the LRU
                    results.append(answers(s))
            except Exception as exc:  # noqa: BLE001 (reported below)
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and len(results) == 160
        assert all(r == want for r in results)
        cursors = list(s._cursors)
        assert len(cursors) == 8  # one per thread
    assert all(_closed(c) for c in cursors)  # closed with the store


def _closed(cursor) -> bool:
    try:
        cursor.execute(_sql.ALL_META)
    except duckdb.Error:
        return True
    return False
