"""The store bundle: writer, schema pin, read API, atomic replace, version and index checks."""

from __future__ import annotations

import hashlib
import pickle
import shutil
import subprocess
import sys

import duckdb
import numpy as np
import pytest

import sensekit
from sensekit import IndexMismatch, InputError, NotFound, SchemaMismatch, StoreError, open_store
from sensekit.paths import schema_text
from sensekit.writer import StoreWriter

# Pin of schemas/store.sql per schema version. Changing the DDL changes the hash: bump
# SCHEMA_VERSION in sensekit/store.py and add the new pin here.
SCHEMA_PINS = {
    1: "61a303e863be3f3373dfbf96a4059c86eef08a5c9ddcfe1885aa19daf101a9ce",
    2: "1d34a152b8d9a088e5f7343fe3c9aa4d23b0d340aaf4bdb82a3bde21b08d9222",
    3: "855f056016a73d7ab1a2c713ad55a8a0fcb3cc8bde1872ee2085442bb741bc8a",
    4: "1eba452c3f70baac14561e9e3d20948f7a973e9a0d26484d3b7f8046d2968eaf",
}

DIM = 16


def unit(i: int) -> np.ndarray:
    v = np.zeros(DIM, np.float32)
    v[i] = 1.0
    return v


def write_small_store(path, tokenizer_json, tok, provenance=None, space="identity"):
    """bank: 2 senses (e0, e1); river: 1 sense (e0 + 0.1 e2); money: 1 sense (e1 + 0.1 e3);
    glad: 1 sense (e4). Relations: bank~river (syn, wiktionary), happy~glad, good!~bad.
    The identity space keeps these hand-made geometries (tests/test_space.py covers the others)."""
    ids = {w: tok.token_to_id(" " + w) for w in ("bank", "river", "money", "glad", "happy", "good", "bad")}
    emb = np.stack([unit(0), unit(1), unit(0) + 0.1 * unit(2), unit(1) + 0.1 * unit(3), unit(4)])
    owners = [ids["bank"], ids["bank"], ids["river"], ids["money"], ids["glad"]]
    with StoreWriter(
        path, dim=DIM, tokenizer_json=tokenizer_json, provenance=provenance or {"teacher": "tiny"}, space=space
    ) as w:
        w.add_tokens(
            [ids[x] for x in ("bank", "river", "money", "glad")], [" bank", " river", " money", " glad"], [30, 5, 7, 2]
        )
        sids = w.add_senses(emb, [0, 1, 0, 0, 0], [20, 10, 5, 7, 2], token_ids=owners)
        w.add_contexts(
            {
                "sense_id": [sids[0], sids[0], sids[1]],
                "rank": [0, 1, 0],
                "doc_id": ["d1", "d2", "d3"],
                "char_start": [4, 0, 9],
                "char_end": [9, 4, 14],
                "snippet": ["the bank of the river", "bank erosion", "money at bank"],
                "mark_start": [4, 0, 9],
                "mark_end": [8, 4, 13],
                "distance": [0.1, 0.2, 0.3],
            }
        )
        w.add_words(["river", "glad", "happy"], [[ids["river"]], [ids["glad"]], [ids["happy"]]], [None, None, None])
        w.replace_relations(
            "wiktionary",
            {
                "head": ["bank", "river"],
                "related": ["river", "bank"],
                "kind": ["syn", "syn"],
                "derived": [False, False],
                "provenance": [{"gloss": "land beside water"}, {"gloss": "land beside water"}],
            },
        )
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
    return ids


@pytest.fixture()
def store_path(tmp_path, tokenizer_json, tok):
    path = tmp_path / "small.sensekit"
    write_small_store(path, tokenizer_json, tok)
    return path


def test_schema_is_pinned_to_its_version():
    digest = hashlib.sha256(schema_text("store.sql").encode()).hexdigest()
    assert SCHEMA_PINS.get(sensekit.SCHEMA_VERSION) == digest, (
        "schemas/store.sql changed: bump SCHEMA_VERSION in sensekit/store.py and pin the new hash here"
    )


def test_bundle_layout(store_path):
    assert sorted(p.name for p in store_path.iterdir()) == [
        "embeddings.npy",
        "senses.hnsw",
        "store.duckdb",
        "tokenizer.json",
    ]
    assert not [p for p in store_path.parent.iterdir() if p.name.startswith(".")]


def test_senses_tokens_and_contexts(store_path, tok):
    with open_store(store_path) as s:
        [t] = s.tokens("bank")
        assert (t.token_id, t.text, t.occurrences, t.n_senses) == (tok.token_to_id(" bank"), " bank", 30, 2)
        senses = s.senses("bank")
        assert [(x.sense_index, x.count) for x in senses] == [(0, 20), (1, 10)]
        np.testing.assert_array_equal(senses[0].embedding, unit(0))
        assert [c.marked() for c in senses[0].contexts] == ["the [[bank]] of the river", "[[bank]] erosion"]
        assert s.senses("happy") == []  # a word without senses: empty list, no error
        assert s.sense(senses[1].sense_id).contexts[0].snippet == "money at bank"
        with pytest.raises(NotFound):
            s.sense(999)


def test_sense_counts_and_parquet_export(store_path, tok, tmp_path):
    import pyarrow.parquet as pq

    with open_store(store_path) as s:
        counts = s.sense_counts()
        assert counts[tok.token_to_id(" bank")] == 2 and counts.sum() == s.info().counts["senses"]
        written = s.export_parquet(tmp_path)
        assert sorted(p.name for p in written) == [f"{t}.parquet" for t in s.table_names()]
        n_senses = s.info().counts["senses"] + s.info().counts["span_senses"]
        assert pq.read_table(tmp_path / "senses.parquet").num_rows == n_senses


def test_writer_reads_what_attaching_relations_needs(store_path, tok):
    bank, glad = tok.token_to_id(" bank"), tok.token_to_id(" glad")
    w = StoreWriter.update(store_path)
    try:
        assert sorted(w.relation_words()) == ["bad", "bank", "glad", "good", "happy", "river"]
        token_id, sense_index, emb = w.token_senses([glad, bank])
        order = sorted([(bank, 0), (bank, 1), (glad, 0)])
        assert list(zip(token_id.tolist(), sense_index.tolist())) == order
        assert emb.dtype == np.float32 and emb.shape == (3, DIM)
        np.testing.assert_array_equal(emb[[i for i, (t, _) in enumerate(order) if t == glad][0]], unit(4))
        assert [len(a) for a in w.token_senses([])] == [0, 0, 0]
        w.clear_words()
        assert w.con.execute("SELECT count(*) FROM words").fetchone()[0] == 0
    finally:
        w.abort()
    with open_store(store_path) as s:
        assert len(s.words_table()) == 3  # abort left the bundle as it was


def test_relations_filters(store_path):
    with open_store(store_path) as s:
        rels = s.relations("bank")
        assert [(r.related, r.kind, r.source, r.provenance.get("gloss")) for r in rels] == [
            ("river", "syn", "wiktionary", "land beside water")
        ]
        assert [r.related for r in s.relations("good", kind="ant")] == ["bad"]
        assert s.relations("good", kind="syn") == []
        assert [r.related for r in s.relations("happy", source="wordnet")] == ["glad"]
        assert s.relations("happy", source="wiktionary") == []
        with pytest.raises(InputError):
            s.relations("good", kind="hyponym")


def test_neighbors_by_word_sense_and_vector(store_path):
    with open_store(store_path) as s:
        # bank's senses are e0 and e1; the nearest other senses are river (e0+) and money (e1+).
        assert [n.text for n in s.neighbors("bank", k=2)] == [" money", " river"] or [
            n.text for n in s.neighbors("bank", k=2)
        ] == [" river", " money"]
        assert all(n.sense.token_id != s.tokens("bank")[0].token_id for n in s.neighbors("bank", k=10))
        by_vec = s.neighbors(unit(4), k=1)
        assert by_vec[0].text == " glad" and by_vec[0].distance == pytest.approx(0.0, abs=1e-6)
        bank0 = s.senses("bank")[0].sense_id
        assert bank0 not in [n.sense.sense_id for n in s.neighbors(bank0, k=10)]
        assert s.neighbors(bank0, k=1)[0].text == " river"


@pytest.mark.parametrize("word", ["o'brien", 'say "hi"', "DROP TABLE senses; --", "naïve", "日本", "  "])
def test_awkward_words_are_plain_data(store_path, word):
    with open_store(store_path) as s:
        if not word.strip():
            with pytest.raises(InputError):
                s.senses(word)
            return
        assert s.relations(word) == []
        s.senses(word)
        s.similar_words(word)
    with open_store(store_path) as s:  # the store is untouched
        assert s.info().counts["senses"] == 5


def test_atomic_replace_keeps_old_store_on_failure(store_path, tokenizer_json, tok):
    with pytest.raises(RuntimeError):
        with StoreWriter(store_path, dim=DIM, tokenizer_json=tokenizer_json) as w:
            w.add_tokens([1], ["x"], [1])
            raise RuntimeError("crash mid-build")
    with open_store(store_path) as s:
        assert s.info().counts["tokens"] == 4
    # A killed process leaves its temporary sibling behind; the old store still opens.
    w = StoreWriter(store_path, dim=DIM, tokenizer_json=tokenizer_json)
    w.con.close()
    with open_store(store_path) as s:
        assert s.info().counts["tokens"] == 4
    # A later complete write replaces it and leaves nothing behind.
    write_small_store(store_path, tokenizer_json, tok, provenance={"teacher": "second"})
    with open_store(store_path) as s:
        assert s.info().provenance["teacher"] == "second"
    assert [p.name for p in store_path.parent.iterdir()] == [store_path.name]


def test_update_replaces_relations_per_source(store_path):
    with StoreWriter.update(store_path) as w:
        w.replace_relations(
            "wordnet",
            {
                "head": ["good", "bad"],
                "related": ["bad", "good"],
                "kind": ["ant", "ant"],
                "derived": [False, False],
                "provenance": [None, None],
            },
        )
    with open_store(store_path) as s:
        assert s.relations("happy") == []
        assert [r.related for r in s.relations("bank")] == ["river"]  # other sources untouched
        assert s.info().counts["antonyms"] == 2


def test_schema_version_mismatch_is_refused(store_path):
    con = duckdb.connect(str(store_path / "store.duckdb"))
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(SchemaMismatch, match=r"schema version 99.*version 4.*rebuild"):
        open_store(store_path)


def test_index_mismatch_is_refused(store_path, tmp_path, tokenizer_json, tok):
    other = tmp_path / "other.sensekit"
    ids = write_small_store(other, tokenizer_json, tok)
    with StoreWriter.update(other) as w:  # one more token sense: a different index
        w.add_senses(unit(5)[None, :], [1], [1], token_ids=[ids["glad"]])
    shutil.copyfile(other / "senses.hnsw", store_path / "senses.hnsw")
    with pytest.raises(IndexMismatch, match="count"):
        open_store(store_path)
    (store_path / "senses.hnsw").write_bytes(b"garbage")
    with pytest.raises(StoreError):
        open_store(store_path)


def test_missing_and_corrupt_store(tmp_path):
    with pytest.raises(StoreError, match="no sensekit store"):
        open_store(tmp_path / "nothing.sensekit")
    bad = tmp_path / "bad.sensekit"
    bad.mkdir()
    (bad / "store.duckdb").write_bytes(b"not a database" * 100)
    with pytest.raises(StoreError):
        open_store(bad)


def test_hnsw_recall_at_10(tmp_path, tokenizer_json):
    rng = np.random.default_rng(7)
    n, d = 20_000, 64
    centres = rng.standard_normal((200, d)).astype(np.float32)
    vectors = centres[rng.integers(0, 200, n)] + 0.3 * rng.standard_normal((n, d)).astype(np.float32)
    with StoreWriter(tmp_path / "big.sensekit", dim=d, tokenizer_json=tokenizer_json) as w:
        w.add_tokens(np.arange(2000), [f"t{i}" for i in range(2000)], np.full(2000, 10))
        w.add_senses(vectors, np.arange(n) % 10, np.ones(n), token_ids=np.arange(n) // 10)
    queries = centres[rng.integers(0, 200, 200)] + 0.3 * rng.standard_normal((200, d)).astype(np.float32)
    with open_store(tmp_path / "big.sensekit") as s:
        found = [[nb.sense.sense_id for nb in s.neighbors(q, k=10)] for q in queries]
        space_v, space_q = s.space.apply(vectors), s.space.apply(queries)  # exact search in the store's space
    unit_v = space_v / np.linalg.norm(space_v, axis=1, keepdims=True)
    unit_q = space_q / np.linalg.norm(space_q, axis=1, keepdims=True)
    truth = np.argsort(-(unit_q @ unit_v.T), axis=1)[:, :10]
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])
    assert recall >= 0.98


def test_import_never_pulls_torch(store_path):
    code = (
        "import sys, sensekit, sensekit.cli; s = sensekit.open_store(sys.argv[1]);"
        "s.senses('bank'); s.relations('bank'); s.neighbors('bank'); s.info();"
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; sys.exit(1 if bad else 0)"
    )
    subprocess.run([sys.executable, "-c", code, str(store_path)], check=True)


class _CountingConnection:  # DuckDB's connection methods are read-only: count through a stand-in
    def __init__(self, con):
        self._con, self.queries = con, []

    def execute(self, *a, **k):
        self.queries.append(a[0])
        return self._con.execute(*a, **k)

    def __getattr__(self, name):
        return getattr(self._con, name)


def test_senses_are_cached_per_open_version(store_path, monkeypatch):
    """A second senses() call is answered from the open store's LRU (no DuckDB query); the LRU is bounded."""
    import sensekit.store as store_module

    with open_store(store_path) as s:
        first = s.senses("bank")
        assert first[0].contexts  # read now, before counting
        s.con = counting = _CountingConnection(s.con)
        again = s.senses("bank")
        assert again == first and again[0].contexts == first[0].contexts
        assert not counting.queries
        with pytest.raises(ValueError):
            again[0].embedding[0] = 1.0  # shared records stay read-only
        monkeypatch.setattr(store_module, "SENSE_CACHE_BYTES", 4 * DIM * 2)  # room for two senses
        for w in ("river", "money", "glad"):
            s.senses(w)
        assert s._sense_cache_rows <= 2 and len(s._sense_cache) <= 2
        s.con = s.con._con


def test_contexts_are_read_on_first_use_by_one_query_for_all_the_senses(store_path):
    """senses() runs no DuckDB query; the first read of any sense's contexts runs one for all of them, and
    the contexts equal those of sense(id). close() reads the contexts of records still held, so they stay
    readable after it."""
    with open_store(store_path) as s:
        s.con = counting = _CountingConnection(s.con)
        senses = s.senses("bank")
        assert len(senses) >= 2 and not counting.queries
        assert [c.rank for c in senses[1].contexts] == sorted(c.rank for c in senses[1].contexts)
        assert len(senses[1].contexts) > 0 and len(counting.queries) == 1
        assert [len(x.contexts) for x in senses] and len(counting.queries) == 1
        s.con = s.con._con
        s._sense_cache.clear()
        assert tuple(s.sense(senses[0].sense_id).contexts) == tuple(senses[0].contexts)
        copied = pickle.loads(pickle.dumps(senses[1]))  # a record travels to other processes whole
        assert copied == senses[1] and copied.contexts == tuple(senses[1].contexts)
        unread = s.senses("bank")  # a new LRU entry (the cache was emptied): its contexts are not read yet
        want = [c.snippet for c in senses[1].contexts]
    assert [c.snippet for c in unread[1].contexts] == want and want


def test_sense_labels_round_trip(tmp_path, tokenizer_json, tok):
    """synset, gloss, lemma and label are written per sense and read back; unlabelled senses read None."""
    ids = {w: tok.token_to_id(" " + w) for w in ("bank", "river")}
    with StoreWriter(tmp_path / "l.sensekit", dim=DIM, tokenizer_json=tokenizer_json, space="identity") as w:
        w.add_tokens([ids["bank"], ids["river"]], [" bank", " river"], [3, 1])
        w.add_senses(
            np.stack([unit(0), unit(1)]),
            [0, 1],
            [2, 1],
            token_ids=[ids["bank"]] * 2,
            synset=["bank.n.01", None],
            gloss=["sloping land beside a body of water", None],
            lemma=["bank", None],
            label=["river shore", "money deposit"],
        )
        w.add_senses(unit(2)[None], [0], [1], token_ids=[ids["river"]])
        with pytest.raises(InputError, match="one entry per sense"):
            w.add_senses(unit(3)[None], [0], [1], token_ids=[ids["river"]], label=["a", "b"])
    with open_store(tmp_path / "l.sensekit") as s:
        first, second = s.senses("bank")
        assert (first.synset, first.gloss, first.lemma, first.label) == (
            "bank.n.01",
            "sloping land beside a body of water",
            "bank",
            "river shore",
        )
        assert (second.synset, second.gloss, second.lemma, second.label) == (None, None, None, "money deposit")
        assert s.senses("river")[0].synset is None and s.senses("river")[0].label is None
        near = {n.sense.sense_index: n.sense for n in s.neighbors(s.senses("river")[0].embedding, k=3)}
        assert near[0].synset == "bank.n.01"


def test_a_third_view_is_one_more_record(tmp_path, tokenizer_json, tok):
    """Three views written the same way: each read back with its own record, senses, index, space and
    relation attachments; the default is chosen in one place (view.default_view)."""
    from sensekit.view import ViewRecord

    ids = {w: tok.token_to_id(" " + w) for w in ("bank", "river", "money")}
    path = tmp_path / "three.sensekit"
    base = np.stack([unit(0), unit(1), unit(0) + 0.1 * unit(2), unit(1) + 0.1 * unit(3)])
    owners = [ids["bank"], ids["bank"], ids["river"], ids["money"]]
    with StoreWriter(path, dim=DIM, tokenizer_json=tokenizer_json, space="identity") as w:
        w.add_tokens(list(ids.values()), [" bank", " river", " money"], [3, 1, 1])
        for shift, view in enumerate(("loss", "lexical", "middle")):
            if view == "middle":  # views are kept in the order first written or declared
                w.declare_view(ViewRecord("middle", 3, "input"))
            # each view's vectors differ: a rotation of the four rows by `shift` coordinates
            w.add_senses(np.roll(base, shift + 5, axis=1), [0, 1, 0, 0], [2, 1, 1, 1], token_ids=owners, view=view)
        w.replace_relations(
            "x",
            {"head": ["bank"], "related": ["river"], "kind": ["syn"], "derived": [False], "provenance": [None]},
        )
        for sense, view in enumerate(("loss", "lexical", "middle")):
            w.set_head_senses(["bank"], ["river"], np.array([sense % 2]), np.array([0.1 * (sense + 1)]), view=view)
    assert sorted(p.name for p in path.iterdir() if p.suffix == ".hnsw") == [
        "senses.hnsw",
        "senses.lexical.hnsw",
        "senses.middle.hnsw",
    ]
    with open_store(path) as s:
        assert list(s.views) == ["loss", "lexical", "middle"] and s.default_view == "lexical"
        middle = s.view("middle")
        assert (middle.layer, middle.hidden_layer, middle.key_mode, middle.index_file_name) == (
            3,
            3,
            "input",
            "senses.middle.hnsw",
        )
        for shift, (name, view) in enumerate(s.views.items()):
            got = view.senses("bank")
            assert [x.view for x in got] == [name, name]
            np.testing.assert_array_equal(np.stack([x.embedding for x in got]), np.roll(base, shift + 5, axis=1)[:2])
            assert view.sense_matrix()["sense_id"].tolist() == [4 * shift + i for i in range(4)]
            near = view.neighbors("bank", k=2)
            assert near and all(n.sense.view == name for n in near)
            assert view.index.get_current_count() == 4 and view.space.transform == "identity"
            (rel,) = view.relations("bank")
            assert (rel.related, rel.head_sense) == ("river", shift % 2)
            assert rel.head_distance == pytest.approx(0.1 * (shift + 1))
        info = s.info()
        assert set(info.views) == {"loss", "lexical", "middle"} and info.views["middle"]["layer"] == 3
        assert info.counts["senses"] == info.counts["middle_senses"] == 4
        assert s.view("middle").neighbors(s.view("middle").senses("river")[0].sense_id, k=1)[0].sense.view == "middle"
    with open_store(path, view="middle") as s:
        assert s.default_view == "middle" and s.senses("bank")[0].view == "middle"
    with StoreWriter.update(path) as w:  # an update keeps all three views and their records
        assert w.views == ("loss", "lexical", "middle")
    with open_store(path) as s:
        assert list(s.views) == ["loss", "lexical", "middle"] and s.view("middle").layer == 3
        assert s.view("middle").relations("bank")[0].head_sense == 0
        with pytest.raises(InputError, match="no other view"):
            s.view("other")
