"""Concurrency (issue 12, section E): processes query one store read-only at once and every answer is
correct, with no lock errors; while `relations add` and rebuilds replace the store, readers keep answering
from the version they opened, or get a clear "store changed, reopen" StoreError, never a crash or wrong data.

Every answer is checked against the answers computed beforehand for the store version it came from (known
by its content fingerprint). `benchmarks/reliability.py` runs the full size (8 processes x 2,000 queries);
the tests here run a smaller version. The reader processes are tests/readers.py (the query path only: no
torch); every reader crosses at least one replacement (it waits halfway for one, see readers.py).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import train_tokenizer
from readers import add_expected, bump_generation, collect, drop_sense_cache, start_readers
from test_store import write_small_store

from sensekit import open_store
from sensekit.errors import StoreError

QUERY_WORDS = ["bank", "river", "money", "glad", "happy", "good", "bad", "spring", "zzzz", "light"]


def _write_variant(path: Path, tokenizer_json: Path, tok, seed: int) -> Path:
    """A rebuild with other vectors (and the small store's tokens and relations)."""
    from sensekit.writer import StoreWriter

    ids = {w: tok.token_to_id(" " + w) for w in ("bank", "river", "money", "glad", "happy", "good", "bad")}
    emb = np.random.default_rng(seed).standard_normal((6, 16)).astype(np.float32)
    with StoreWriter(
        path, dim=16, tokenizer_json=tokenizer_json, provenance={"teacher": "tiny", "seed": seed}, space="identity"
    ) as w:
        w.add_tokens(
            [ids[x] for x in ("bank", "river", "money", "glad")], [" bank", " river", " money", " glad"], [30, 5, 7, 2]
        )
        w.add_senses(
            emb,
            [0, 1, 2, 0, 0, 0],
            [10, 10, 10, 5, 7, 2],
            token_ids=[ids["bank"]] * 3 + [ids["river"], ids["money"], ids["glad"]],
        )
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
    return path


def _add_relations(path: Path) -> None:
    """What `sensekit relations add` does to the store: replace one source's rows, all at once."""
    from sensekit.writer import StoreWriter

    with StoreWriter.update(path) as w:
        w.replace_relations(
            "pairs:extra.tsv",
            {
                "head": ["bank", "money"],
                "related": ["money", "bank"],
                "kind": ["syn", "syn"],
                "derived": [False, False],
                "provenance": [None, None],
            },
        )


class Versions:
    """The store versions a writer cycles through, each with its expected answers (by content fingerprint)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tok = train_tokenizer()
        self.tokenizer_json = root / "tokenizer.json"
        self.tok.save(str(self.tokenizer_json))
        self.expected = root / "expected.json"
        self.generation = root / "generation"
        scratch = root / "scratch.sensekit"
        for step in range(3):  # compute each version's answers once, on a scratch copy
            self.install(scratch, step)
            add_expected(scratch, self.expected, QUERY_WORDS)
        shutil.rmtree(scratch)

    def install(self, store: Path, step: int) -> None:
        """Step 0: a (re)build of the small store; 1: `relations add` on it; 2: a rebuild with other vectors."""
        kind = step % 3
        if kind == 0:
            write_small_store(store, self.tokenizer_json, self.tok)
        elif kind == 1:
            _add_relations(store)
        else:
            _write_variant(store, self.tokenizer_json, self.tok, seed=7)


@pytest.fixture(scope="module")
def versions(tmp_path_factory) -> Versions:
    return Versions(tmp_path_factory.mktemp("versions"))


def test_readers_in_parallel_all_answer_correctly(versions, tmp_path, figure):
    store = tmp_path / "s.sensekit"
    versions.install(store, 0)
    procs = start_readers(store, versions.expected, tmp_path, processes=4, queries=300, reopen_every=0)
    total = collect(procs)
    assert total["errors"] == [] and total["wrong"] == 0 and total["unknown_version"] == 0
    assert total["ok"] == 4 * 300 and total["reopened"] == 0
    figure("answers_correct", total["ok"])


@pytest.mark.parametrize("reopen_every", [0, 25])  # hold the store open throughout / reopen it now and then
def test_readers_survive_relations_add_and_rebuilds(versions, tmp_path, reopen_every, figure):
    store = tmp_path / "s.sensekit"
    versions.install(store, 0)
    gen = tmp_path / "generation"
    procs = start_readers(store, versions.expected, tmp_path, 3, 400, reopen_every, gen_file=gen)
    step = 0
    while any(p.poll() is None for p, _ in procs):  # replace the store as long as the readers run
        step += 1
        versions.install(store, step)
        bump_generation(gen, store)
        time.sleep(0.05)
    total = collect(procs)
    assert total["errors"] == [] and total["wrong"] == 0 and total["unknown_version"] == 0, total
    assert total["ok"] == 3 * 400 and step >= 1
    assert total["uncached"] >= 3 * 400  # every query read the store's files, none came from memory
    # every reader waited halfway for a replacement after it opened the store: each crossed at least one,
    # reading the replaced version's files
    assert total["crossed"] >= 3, total
    figure("answers_correct", total["ok"])
    figure("readers_crossing", 3)
    if reopen_every:
        assert len(total["versions"]) >= 2, total  # reopened readers saw the new versions
    print(f"{step} replacements; answers per version {total['versions']}; {total['crossed']} queries crossed one;")
    print(f"{total['reopened']} reopen messages")
    with open_store(store) as s:
        s.verify()
    assert not [p for p in store.parent.iterdir() if p.name.startswith(".")]  # no leftovers of the swaps


def test_an_open_store_keeps_its_version_after_a_rebuild(versions, tmp_path):
    store = tmp_path / "s.sensekit"
    versions.install(store, 0)
    with open_store(store) as first:  # the answers of this version, from another handle
        want = {
            w: [(x.sense_id, x.count, x.embedding.tolist(), x.contexts) for x in first.senses(w)] for w in QUERY_WORDS
        }
    s = open_store(store)
    before = s.senses("bank")  # the tokenizer is loaded: nothing more is read from the path
    versions.install(store, 2)  # a rebuild with other vectors
    assert s.changed()
    drop_sense_cache(s)  # read the replaced files (DuckDB, embeddings.npy), not the handle's memory
    after = s.senses("bank")
    assert [(x.sense_id, x.count) for x in after] == [(x.sense_id, x.count) for x in before]
    np.testing.assert_array_equal(after[0].embedding, before[0].embedding)
    for w in QUERY_WORDS:  # words this handle never read before the replacement
        got = [(x.sense_id, x.count, x.embedding.tolist(), x.contexts) for x in s.senses(w)]
        assert got == want[w], w
    assert [n.sense.sense_id for n in s.neighbors("bank", k=3)]
    # reopened while the old one is still open: the new version (DuckDB would hand back its instance cached
    # for the path, the old file, to a plain duckdb.connect), and each store keeps answering from its own
    with open_store(store) as fresh:
        assert len(fresh.senses("bank")) == 3  # the new version
        assert fresh.meta["content_sha256"] != s.meta["content_sha256"]
        assert [(x.sense_id, x.count) for x in s.senses("bank")] == [(x.sense_id, x.count) for x in before]
    s.close()


def test_a_store_replaced_before_its_first_word_says_reopen(versions, tmp_path):
    store = tmp_path / "s.sensekit"
    versions.install(store, 0)
    s = open_store(store)
    versions.install(store, 1)  # relations add
    with pytest.raises(StoreError, match=r"changed since it was opened .*; reopen it"):
        s.senses("bank")
    assert s.neighbors(np.eye(16, dtype=np.float32)[4], k=1)[0].text == " glad"  # vectors need no tokenizer
    s.close()
