"""Span clouds (a hand-computable case) and attach_relations into a small store built with StoreWriter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import train_tokenizer

from sensekit.errors import InputError
from sensekit.lexicon.attach import attach_relations, parse_source
from sensekit.lexicon.config import RelationsConfig
from sensekit.lexicon.tokens import SenseTable, span_clouds
from sensekit.store import open_store
from sensekit.writer import StoreWriter

FIX = Path(__file__).parent / "fixtures" / "lexicon"
DIM = 4


# -- span clouds ------------------------------------------------------------------------------------
def _table():
    # token 0: [0,0], [10,0]   token 1: [1,0], [9,0], [5,5]   token 2: [0,4], [20,0]   token 3: no senses
    emb = np.array([[0, 0], [10, 0], [1, 0], [9, 0], [5, 5], [0, 4], [20, 0]], np.float32)
    return SenseTable(np.array([0, 0, 1, 1, 1, 2, 2]), np.array([0, 1, 0, 1, 2, 0, 1]), emb)


def test_span_cloud_by_hand():
    table = _table()
    span, row, emb = span_clouds(table, [(0, 1), (0, 1, 2), (0, 3), (1, 0)], rows=2)
    got = {(int(s), int(r)): e.tolist() for s, r, e in zip(span, row, emb)}
    # (0,1): A1 = [0,0],[10,0]; nearest of token 1: [1,0],[9,0]; cloud = means.
    assert got[(0, 0)] == pytest.approx([0.5, 0]) and got[(0, 1)] == pytest.approx([9.5, 0])
    # (0,1,2): M = [[0.5,0],[9.5,0]]; token 2's nearest is [0,4] for both rows.
    assert got[(1, 0)] == pytest.approx([1 / 3, 4 / 3]) and got[(1, 1)] == pytest.approx([19 / 3, 4 / 3])
    # (0,3): token 3 has no senses -> no cloud.  (1,0): K = 2 of token 1's 3 senses.
    assert not any(s == 2 for s, _ in got)
    assert got[(3, 0)] == pytest.approx([0.5, 0]) and got[(3, 1)] == pytest.approx([9.5, 0])
    assert len(got) == 6


def test_span_cloud_rows_default_to_k_and_follow_the_first_token():
    table = _table()
    span, row, _ = span_clouds(table, [(1, 0), (0, 1)])  # K = k_max = 3; token 0 has only 2 senses
    assert sorted(zip(span.tolist(), row.tolist())) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]


def test_span_cloud_chunks_agree():
    rng = np.random.default_rng(0)
    tok = np.repeat(np.arange(50), 5)
    table = SenseTable(tok, np.tile(np.arange(5), 50), rng.standard_normal((250, 8)).astype(np.float32))
    spans = [tuple(rng.integers(0, 50, size=rng.integers(2, 4))) for _ in range(200)]
    a = span_clouds(table, spans)
    b = span_clouds(table, spans, chunk_bytes=1)  # one span per chunk
    order_a, order_b = np.lexsort((a[1], a[0])), np.lexsort((b[1], b[0]))
    np.testing.assert_allclose(a[2][order_a], b[2][order_b], rtol=1e-5, atol=1e-5)


# -- attach -------------------------------------------------------------------------------------------
def unit(i: int) -> np.ndarray:
    v = np.zeros(DIM, np.float32)
    v[i] = 1.0
    return v


@pytest.fixture()
def store(tmp_path, tokenizer_json):
    """bank: 2 senses (e0, e1); river: 2 senses (e0 + 0.1 e2, e3); other words: one sense each."""
    tok = train_tokenizer()
    words = ["bank", "river", "happy", "glad", "sad", "good", "bad", "big", "large", "small", "fast", "slow"]
    ids = {w: tok.token_to_id(" " + w) for w in words}
    assert all(v is not None for v in ids.values())
    emb = [unit(0), unit(1), unit(0) + 0.1 * unit(2), unit(3)]
    emb += [unit(i % DIM) * (1 + i) for i in range(len(words) - 2)]
    owners = [ids["bank"], ids["bank"], ids["river"], ids["river"]] + [ids[w] for w in words[2:]]
    index = [0, 1, 0, 1] + [0] * (len(words) - 2)
    path = tmp_path / "small.sensekit"
    with StoreWriter(path, dim=DIM, tokenizer_json=tokenizer_json, provenance={"teacher": "tiny"}) as w:
        w.add_tokens([ids[x] for x in words], [" " + x for x in words], [5] * len(words))
        w.add_senses(np.stack(emb), index, [3] * len(owners), token_ids=owners)
    return path, ids


def _rows(path, source=None):
    with open_store(path) as s:
        return {(h, r, k, d) for h, r, k, src, d in s.relations_table() if source is None or src == source}


def test_attach_pair_file(store):
    path, ids = store
    result = attach_relations(path, [str(FIX / "pairs.tsv")], polarity=True)
    counts = result["sources"]["pairs:pairs.tsv"]
    assert counts["bad"] == 2 and [n for n, _ in counts["errors"]] == [11, 12]
    assert _rows(path) == {
        ("happy", "glad", "syn", False),
        ("glad", "happy", "syn", False),
        ("good", "bad", "ant", False),
        ("bad", "good", "ant", False),
        ("big", "large", "syn", False),
        ("large", "big", "syn", False),
        ("big", "small", "ant", False),
        ("small", "big", "ant", False),
        ("fast", "slow", "ant", False),
        ("slow", "fast", "ant", False),
        ("bank", "river bank", "syn", False),  # 'river bank' is two tokens: never a head
        ("happy", "sad", "ant", True),
        ("sad", "happy", "ant", True),  # syn(unhappy, sad), polarity-normalised
    }
    assert counts["rows"] == 13 and counts["syn"] == 5 and counts["ant"] == 8 and counts["derived"] == 2
    assert result["spans"] == 1 and result["span_rows"] == 2
    with open_store(path) as s:
        words = {w: (t, sp) for w, t, sp in s.words_table()}
        assert set(words) == {
            "happy",
            "glad",
            "good",
            "bad",
            "big",
            "large",
            "small",
            "fast",
            "slow",
            "bank",
            "river bank",
            "sad",
        }
        tids, span_id = words["river bank"]
        assert tids == [ids["river"], ids["bank"]] and span_id is not None and span_id >= 0
        assert words["bank"] == ([ids["bank"]], None)
        m = s.sense_matrix()
        cloud = m["embedding"][m["span_id"] == span_id]
        # A1 = river's senses (e0 + 0.1 e2, e3); nearest bank senses: e0, then e1 (closer to e3 than e0? tie-free:
        # |e3 - e0| = |e3 - e1| = sqrt 2, argmin takes the first, e0).
        np.testing.assert_allclose(cloud, [(unit(0) + 0.1 * unit(2) + unit(0)) / 2, (unit(3) + unit(0)) / 2], atol=1e-6)
        rel = {r.related: r for r in s.relations("bank")}
        assert rel["river bank"].is_span and rel["river bank"].related_token_ids == (ids["river"], ids["bank"])
        assert rel["river bank"].provenance == {"file": "pairs.tsv", "line": 7}
        sad = s.relations("happy", kind="ant")[0]
        assert sad.derived and sad.provenance["original"] == ["unhappy", "sad", "syn"]
        assert len(s.senses("river bank")) == 2


def test_attach_replaces_per_source_and_keeps_others(store):
    path, _ = store
    attach_relations(path, [str(FIX / "pairs.tsv")])
    first = _rows(path)
    res = attach_relations(path, [str(FIX / "kaikki-sample.jsonl")])
    wikt = res["sources"]["wiktionary"]
    assert wikt["bad"] == 5 and wikt["rows"] > 0
    assert _rows(path, "pairs:pairs.tsv") == first  # untouched
    gloss = {(r.head, r.related): r.provenance for r in open_store(path).relations("happy", source="wiktionary")}
    assert gloss[("happy", "glad")]["gloss"] == "Feeling pleasure or contentment."
    # attaching the pair file again under another name and again under its own: rows are replaced, not doubled
    attach_relations(path, [str(FIX / "pairs.tsv")])
    with open_store(path) as s:
        rows = s.relations_table()
        assert len([r for r in rows if r[3] == "pairs:pairs.tsv"]) == len(first)
        assert len({w for w, _, _ in s.words_table()}) == len(s.words_table())
        assert s.info().counts["spans"] == 1


def test_attach_require_senses_and_limits(store):
    path, _ = store
    res = attach_relations(path, ["custom=pairs:" + str(FIX / "pairs.tsv")], require_senses=True, max_span_tokens=1)
    c = res["sources"]["custom"]
    assert c["dropped_related"] == 2  # 'river bank' and 'unhappy' have more tokens than max_span_tokens
    with open_store(path) as s:
        assert all(src == "custom" for *_, src, _ in s.relations_table())
        assert not any(r == "river bank" for _, r, *_ in s.relations_table())
        assert s.info().counts["spans"] == 0


def test_parse_source_syntax(tmp_path):
    p = tmp_path / "x.tsv"
    p.write_text("a\tb\tsyn\n")
    assert parse_source("wordnet").name == "wordnet" and parse_source("wordnet").path is None
    assert parse_source("wordnet:/usr/share/wordnet").path == "/usr/share/wordnet"
    assert parse_source(f"pairs:{p}").name == "pairs:x.tsv"
    assert parse_source(str(p)).source_type == "pairs"
    assert parse_source(f"mine={p}").name == "mine"
    assert parse_source(str(FIX / "kaikki-sample.jsonl")).source_type == "kaikki"
    assert parse_source(str(FIX / "tiny-dump.xml")).source_type == "dump"
    with pytest.raises(InputError, match="does not exist"):
        parse_source("pairs:/nope.tsv")
    with pytest.raises(InputError, match="cannot tell"):
        parse_source(str(tmp_path))
    with pytest.raises(InputError, match="same name"):
        attach_relations(tmp_path / "none", [str(p), f"pairs:{p}"])
    with pytest.raises(InputError, match="unknown relation option"):
        attach_relations(tmp_path / "none", [str(p)], colour="red")


def test_relations_config_defaults_and_checks(store):
    cfg = RelationsConfig()
    got = (cfg.head_min_chars, cfg.max_span_tokens, cfg.lang_code, cfg.on_error, cfg.cloud_rows)
    assert got == (3, 3, "en", "skip", None)
    assert RelationsConfig(lang_code=None).lang_code is None  # None: every language
    for bad in (
        {"head_min_chars": 0},
        {"on_error": "ignore"},
        {"binary_labels": "x"},
        {"cloud_rows": 0},
        {"polarity": "yes"},
    ):
        with pytest.raises(InputError, match="^--"):
            RelationsConfig(**bad)
    path, _ = store
    by_config = attach_relations(path, [str(FIX / "pairs.tsv")], RelationsConfig(polarity=True, max_span_tokens=1))
    rows = _rows(path)
    by_keywords = attach_relations(path, [str(FIX / "pairs.tsv")], polarity=True, max_span_tokens=1)
    assert by_config == by_keywords and _rows(path) == rows
    # keywords override single fields of a given config
    again = attach_relations(path, [str(FIX / "pairs.tsv")], RelationsConfig(polarity=True), max_span_tokens=1)
    assert again == by_config


def test_cli_relations_add(store):
    import typer
    from typer.testing import CliRunner

    from sensekit.cli import relations

    path, _ = store
    app = typer.Typer()
    app.add_typer(relations.app)
    res = CliRunner().invoke(app, ["relations", "add", str(FIX / "pairs.tsv"), "--store", str(path), "--polarity"])
    assert res.exit_code == 0, res.output
    assert "pairs:pairs.tsv" in res.output and "line 11" in res.output
    assert ("happy", "sad", "ant", True) in _rows(path)


def test_attach_a_raw_dump(wiktextract, store):
    """A .xml dump is parsed by wiktextract (in this process) and attached like any source."""
    path, ids = store
    res = attach_relations(path, [str(FIX / "tiny-dump.xml")], processes=1)
    c = res["sources"]["wiktionary"]
    assert c["read"] == 4 and c["used"] == 3  # the French page is read and filtered out
    rows = _rows(path)
    assert {
        ("happy", "glad", "syn", False),
        ("glad", "happy", "syn", False),
        ("big", "small", "ant", False),
        ("small", "big", "ant", False),
        ("bank", "river bank", "syn", False),
        ("happy", "sad", "ant", False),
    } <= rows
    assert not any(h == "bon" or r == "mauvais" for h, r, _, _ in rows)
    with open_store(path) as s:
        prov = {r.related: r.provenance for r in s.relations("bank")}
        assert prov["river bank"]["gloss"] == "A raised shelf of ground beside a river."
        assert s.info().counts["spans"] == 1


def test_relations_are_attached_to_the_head_sense_they_belong_to(tmp_path, tokenizer_json):
    tok = train_tokenizer()
    words = ["bank", "river", "money", "glad"]
    ids = {w: tok.token_to_id(" " + w) for w in words}
    path = tmp_path / "senses.sensekit"
    with StoreWriter(path, dim=DIM, tokenizer_json=tokenizer_json, space="identity") as w:  # hand-made geometry
        w.add_tokens([ids[x] for x in words], [" " + x for x in words], [5] * 4)
        w.add_senses(
            np.stack([unit(0), unit(1), unit(0) + 0.1 * unit(2), unit(1) + 0.1 * unit(3), -unit(3)]),
            [0, 1, 0, 0, 0],
            [3] * 5,
            token_ids=[ids["bank"], ids["bank"], ids["river"], ids["money"], ids["glad"]],
        )
    pairs = tmp_path / "p.tsv"
    pairs.write_text("bank\triver\tsyn\nbank\tmoney\tsyn\nhappy\tglad\tsyn\n")
    result = attach_relations(path, [f"pairs:{pairs}"])
    with open_store(path) as s:
        rel = {r.related: r for r in s.relations("bank")}
        assert rel["river"].head_sense == 0 and rel["money"].head_sense == 1
        assert rel["river"].head_distance == pytest.approx(1 - 1 / np.sqrt(1.01), abs=1e-5)
        assert [r.head_sense for r in s.relations("river")] == [0]
        # 'happy' has no senses: its relation is kept, unattached
        assert [(r.related, r.head_sense, r.head_distance) for r in s.relations("happy")] == [("glad", None, None)]
    assert result["attached"] == 4  # both directions of bank~river and bank~money; happy~glad is not


def test_nearest_head_senses_equals_a_brute_force_over_every_pair():
    """Heads with several related words of different sense counts, a pair with none, a forced pick: each
    pair gets the head sense with the highest cosine to any of the related word's senses."""
    from sensekit.lexicon.attach import nearest_head_senses

    rng = np.random.default_rng(0)
    counts = np.array([3, 1, 4, 2, 0, 5])  # senses of owners 0..5 (owner 4 has none)
    start = np.concatenate(([0], np.cumsum(counts)[:-1]))
    vectors = rng.normal(size=(counts.sum(), 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    pairs = [(0, 1), (0, 2), (0, 3), (2, 5), (2, 0), (5, 3), (1, 2), (3, 4), (5, 1)]
    h, r = (np.array(x) for x in zip(*pairs))
    forced = np.full(len(pairs), -1)
    forced[-1] = 2  # owner 5's third sense, whatever the cosine
    pick, cos = nearest_head_senses(vectors, (start[h], counts[h]), (start[r], counts[r]), forced)
    for i, (a, b) in enumerate(pairs):
        if counts[b] == 0:
            assert pick[i] == -1
            continue
        sims = vectors[start[a] : start[a] + counts[a]] @ vectors[start[b] : start[b] + counts[b]].T
        want = 2 if forced[i] >= 0 else int(sims.max(1).argmax())
        assert pick[i] == want and cos[i] == pytest.approx(sims.max(1)[want], abs=1e-6)


def test_relation_words_come_sorted_so_builds_number_their_spans_alike():
    """Span ids follow the order of the relation words: a hash UNION's order would differ between two
    builds of the same input."""
    import duckdb

    from sensekit import _sql

    rng = np.random.default_rng(0)
    words = [f"w{i:05d} x" for i in rng.permutation(3000)]
    con = duckdb.connect()
    con.execute("CREATE TABLE relations (head VARCHAR, related VARCHAR)")
    con.executemany("INSERT INTO relations VALUES (?, ?)", list(zip(words[:1500], words[1500:])))
    got = [w for (w,) in con.execute(_sql.RELATION_WORDS).fetchall()]
    assert got == sorted(words)
