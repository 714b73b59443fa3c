"""embeddings.npy (sensekit/sense_array.py): the store of record for vectors and each way it is checked;
small row groups; a store read from many threads."""

from __future__ import annotations

import json
import shutil
import threading

import duckdb
import numpy as np
import pytest
from test_store import write_small_store

from sensekit import InputError, StoreError, _sql, open_store
from sensekit.sense_array import EMBEDDINGS_KEY, sample_rows
from sensekit.writer import ROW_GROUP_ROWS, StoreWriter


@pytest.fixture()
def store_path(tmp_path, tokenizer_json, tok):
    path = tmp_path / "small.sensekit"
    write_small_store(path, tokenizer_json, tok)
    return path


def _meta(path) -> dict:
    con = duckdb.connect(str(path / "store.duckdb"), read_only=True)
    try:
        return {k: json.loads(v) for k, v in con.execute("SELECT key, value FROM meta").fetchall()}
    finally:
        con.close()


def _set_record(path, key, **changes) -> None:
    record = {**_meta(path)[key], **changes}
    con = duckdb.connect(str(path / "store.duckdb"))
    con.execute("UPDATE meta SET value = ? WHERE key = ?", [json.dumps(record), key])
    con.close()


def test_the_array_holds_every_senses_vector_in_sense_id_order(store_path):
    on_disk = np.load(store_path / "embeddings.npy")
    assert on_disk.dtype == np.float32
    con = duckdb.connect(str(store_path / "store.duckdb"), read_only=True)
    columns = [
        r[0] for r in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = 'senses'").fetchall()
    ]
    con.close()
    assert "embedding" not in columns  # each vector is stored once
    with open_store(store_path) as s:
        record = s.meta[EMBEDDINGS_KEY]
        assert set(record) == {"file", "rows", "dim", "dtype", "ids", "sample", "sha256"}
        assert (record["rows"], record["dim"], record["dtype"]) == (*on_disk.shape, "float32")
        for sense in s.senses("bank") + s.senses("river"):
            pos = int(np.searchsorted(s._sense_ids, sense.sense_id))
            np.testing.assert_array_equal(sense.embedding, on_disk[pos])
            assert not sense.embedding.flags.writeable
        m = s.sense_matrix()
        np.testing.assert_array_equal(m["embedding"], on_disk[np.searchsorted(s._sense_ids, m["sense_id"])])


def test_a_float16_store_holds_half_the_bytes_and_answers_in_float32(tmp_path, tokenizer_json, tok):
    ids = {w: tok.token_to_id(" " + w) for w in ("bank", "river")}
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3, 16)).astype(np.float32)
    out = {}
    for dtype in ("float16", "float32"):
        path = tmp_path / f"{dtype}.sensekit"
        with StoreWriter(path, dim=16, tokenizer_json=tokenizer_json, space="identity", dtype=dtype) as w:
            w.add_tokens(list(ids.values()), [" bank", " river"], [2, 1])
            sids = w.add_senses(vectors, [0, 1, 0], [1, 1, 1], token_ids=[ids["bank"], ids["bank"], ids["river"]])
            w.add_contexts(
                {
                    "sense_id": sids[:1],
                    "rank": [0],
                    "doc_id": ["d"],
                    "char_start": [0],
                    "char_end": [4],
                    "snippet": ["bank"],
                    "mark_start": [0],
                    "mark_end": [4],
                    "distance": [0.0],
                    "vector": vectors[:1] * 2,
                }
            )
        with open_store(path) as s:
            got = np.stack([x.embedding for x in s.senses("bank")])
            assert got.dtype == np.float32 and s.view().dtype == dtype
            out[dtype] = (got, s.context_vectors([int(sids[0])])[int(sids[0])], s.neighbors("river", k=2))
        assert np.load(path / "embeddings.npy").dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out["float32"][0], vectors[:2])
    np.testing.assert_array_equal(out["float16"][0], vectors[:2].astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(out["float16"][1], (vectors[:1] * 2).astype(np.float16).astype(np.float32))
    assert [n.sense.sense_id for n in out["float16"][2]] == [n.sense.sense_id for n in out["float32"][2]]
    with pytest.raises(InputError, match="float64.*float16, float32"):
        StoreWriter(tmp_path / "x", dim=16, tokenizer_json=tokenizer_json, dtype="float64")


def _one_line_store_error(path, *needles):
    with pytest.raises(StoreError) as err:
        open_store(path)
    message = str(err.value)
    assert "\n" not in message and "embeddings.npy" in message and "rebuild" in message
    for needle in needles:
        assert needle in message
    return message


def _copy(store_path, tmp_path, name):
    path = tmp_path / f"{name}.sensekit"
    shutil.copytree(store_path, path)
    return path


def test_a_missing_short_or_padded_file_is_refused_in_one_line(store_path, tmp_path):
    missing = _copy(store_path, tmp_path, "missing")
    (missing / "embeddings.npy").unlink()
    _one_line_store_error(missing, "missing")

    short = _copy(store_path, tmp_path, "short")
    raw = (short / "embeddings.npy").read_bytes()
    (short / "embeddings.npy").write_bytes(raw[:-8])
    _one_line_store_error(short)

    padded = _copy(store_path, tmp_path, "padded")
    with open(padded / "embeddings.npy", "ab") as fh:
        fh.write(b"\0" * 8)
    _one_line_store_error(padded, "truncated or padded")


def test_a_dtype_or_dimension_mismatch_is_refused(store_path, tmp_path):
    wide = _copy(store_path, tmp_path, "wide")
    np.save(wide / "embeddings.npy", np.load(wide / "embeddings.npy").astype(np.float64))  # same values, float64
    _one_line_store_error(wide, "float64", "as float32")

    recorded = _copy(store_path, tmp_path, "recorded")
    _set_record(recorded, EMBEDDINGS_KEY, dtype="float16")  # the record says float16, the file is float32
    _one_line_store_error(recorded, "float32", "as float16")

    narrow = _copy(store_path, tmp_path, "narrow")
    np.save(narrow / "embeddings.npy", np.load(narrow / "embeddings.npy")[:, :8].copy())
    _one_line_store_error(narrow, "[5, 8]", "16 dims")


def test_an_ids_checksum_mismatch_is_refused(store_path, tmp_path):
    other = _copy(store_path, tmp_path, "ids")
    _set_record(other, EMBEDDINGS_KEY, ids="0" * 16)
    _one_line_store_error(other, "other sense ids")


def test_a_changed_row_or_a_file_from_another_store_is_refused(store_path, tmp_path, tokenizer_json, tok):
    """Same shape, other vectors: the sampled rows' checksum differs (every row of a small file is sampled)."""
    other = tmp_path / "other.sensekit"
    write_small_store(other, tokenizer_json, tok)
    array = np.load(other / "embeddings.npy")
    np.save(other / "embeddings.npy", (array[::-1] + 1.0).astype(np.float32))
    _one_line_store_error(other, "sampled rows differ")

    changed = _copy(store_path, tmp_path, "changed")
    array = np.load(changed / "embeddings.npy")
    array[2, 5] = np.nextafter(array[2, 5], np.float32(2))  # one value, one ulp
    np.save(changed / "embeddings.npy", array)
    _one_line_store_error(changed, "sampled rows differ")


def test_the_sample_grows_with_the_file():
    assert list(sample_rows(5)) == [0, 1, 2, 3, 4]  # a small file: every row
    assert len(sample_rows(1000)) == 64 and sample_rows(1000)[-1] == 999
    assert len(sample_rows(1_000_000)) == 1000 and sample_rows(1_000_000)[0] == 0


def _big_store(path, tokenizer_json, n=300):
    rng = np.random.default_rng(1)
    with StoreWriter(path, dim=4, tokenizer_json=tokenizer_json, space="identity") as w:
        w.add_tokens(np.arange(n), [f" t{i}" for i in range(n)], np.ones(n, np.int64))
        w.add_senses(rng.normal(size=(n, 4)).astype(np.float32), np.zeros(n), np.ones(n), token_ids=np.arange(n))


def test_verify_hashes_the_whole_file(tmp_path, tokenizer_json):
    """A changed value in a row that opening does not sample is found by verify() (`info --verify`)."""
    path = tmp_path / "big.sensekit"
    _big_store(path, tokenizer_json)
    with open_store(path) as s:
        s.verify()
        n, dim = s._embeddings.shape
    row = next(r for r in range(n) if r not in set(sample_rows(n).tolist()))
    array = np.load(path / "embeddings.npy")
    array[row, 0] = np.nextafter(array[row, 0], np.float32(10))
    np.save(path / "embeddings.npy", array)
    with open_store(path) as s, pytest.raises(StoreError, match="sha256"):
        s.verify()


def test_a_short_write_is_a_full_disk_and_keeps_the_old_store(store_path, monkeypatch):
    """The written size is checked: a short embeddings.npy is reported as a full disk, the store unchanged."""
    import sensekit.sense_array as sense_array

    before = (store_path / "embeddings.npy").read_bytes()
    real = sense_array._expected_size
    with pytest.raises(StoreError, match="no space left.*unchanged") as err:
        with StoreWriter.update(store_path) as w:
            w.add_senses(np.ones((1, 16), np.float32), [0], [0], token_ids=[7])
            monkeypatch.setattr(sense_array, "_expected_size", lambda *a: real(*a) + 4)  # 4 bytes short on disk
    assert "\n" not in str(err.value)
    monkeypatch.undo()
    assert (store_path / "embeddings.npy").read_bytes() == before
    open_store(store_path).close()


def test_an_update_rewrites_the_file(store_path):
    """`relations add` (StoreWriter.update) adds sense rows for spans: the file follows."""
    with open_store(store_path) as s:
        before = np.asarray(s._embeddings).copy()
    with StoreWriter.update(store_path) as w:
        span = w.next_span_id()
        w.add_spans([span], [[1, 2]], ["two tokens"])
        w.add_senses(np.ones((2, 16), np.float32), [0, 1], [0, 0], span_ids=[span, span])
    after = np.load(store_path / "embeddings.npy")
    np.testing.assert_array_equal(after[: len(before)], before)
    np.testing.assert_array_equal(after[len(before) :], np.ones((2, 16), np.float32))
    with open_store(store_path) as s:
        assert len(s._embeddings) == len(s._sense_ids) == len(before) + 2


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
