"""Concurrency (issue 12, section E): processes query one store read-only at once and every answer is
correct, with no lock errors; while `relations add` and rebuilds replace the store, readers keep answering
from the version they opened, or get a clear "store changed, reopen" StoreError, never a crash or wrong data.

Every answer is checked against the answers computed beforehand for the store version it came from (known
by its content fingerprint). `benchmarks/reliability.py` runs the full size (8 processes x 2,000 queries);
the tests here run a smaller version. The reader processes use `WORKER` (the query path only: no torch).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import train_tokenizer
from test_store import write_small_store

from sensekit import open_store
from sensekit.errors import StoreError

QUERY_WORDS = ["bank", "river", "money", "glad", "happy", "good", "bad", "spring", "zzzz", "light"]

# One reader process: python -c WORKER STORE EXPECTED.json N_QUERIES REOPEN_EVERY OUT.json
WORKER = r"""
import json, sys, time
from sensekit import open_store
from sensekit.errors import NotFound, StoreError

def answer(s, word):
    senses = s.senses(word)
    return {"senses": [[x.sense_id, x.sense_index, x.count, float(round(float(x.embedding.sum()), 4))] for x in senses],
            "relations": sorted([r.related, r.kind, r.source] for r in s.relations(word)),
            "neighbors": [[n.sense.sense_id, round(n.distance, 4)] for n in s.neighbors(word, k=3)]}

# -- main --
store, expected, out = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[5]
n, reopen_every = int(sys.argv[3]), int(sys.argv[4])
words = sorted(next(iter(expected.values())))
counts = {"ok": 0, "wrong": 0, "reopened": 0, "unknown_version": 0, "errors": [], "versions": {}}
s, since_open, t0 = None, 0, time.perf_counter()
i = 0
while i < n:
    if s is None or (reopen_every and since_open >= reopen_every):
        if s is not None:
            s.close()
        s, since_open = open_store(store), 0
    version = s.meta.get("content_sha256")
    word = words[i % len(words)]
    try:
        got = answer(s, word)
    except StoreError as exc:
        if "changed" in str(exc) and "reopen" in str(exc):
            counts["reopened"] += 1
            s.close()
            s = None
            continue  # the same query again, on the store's new version
        counts["errors"].append(f"{type(exc).__name__}: {exc}"[:300])
        got = None
    except Exception as exc:  # a crash: reported, never hidden
        counts["errors"].append(f"{type(exc).__name__}: {exc}"[:300])
        got = None
    if got is not None:
        if version not in expected:
            counts["unknown_version"] += 1
        elif got == expected[version][word]:
            counts["ok"] += 1
        else:
            counts["wrong"] += 1
            want = expected[version][word]
            counts["errors"].append(f"wrong answer for {word!r} on {version[:12]}: {got} != {want}"[:300])
    counts["versions"][version[:12]] = counts["versions"].get(version[:12], 0) + 1
    i += 1
    since_open += 1
counts["seconds"] = time.perf_counter() - t0
json.dump(counts, open(out, "w"))
"""


def _answers(store: Path) -> tuple[str, dict]:
    """(content fingerprint, {word: answer}) of the store at `store`, computed the way WORKER computes them."""
    namespace: dict = {}
    exec(WORKER.split("# -- main --")[0], namespace)  # the `answer` function only
    with open_store(store) as s:
        return s.meta["content_sha256"], {w: namespace["answer"](s, w) for w in QUERY_WORDS}


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
        self.expected: dict[str, dict] = {}
        scratch = root / "scratch.sensekit"
        for step in range(3):  # compute each version's answers once, on a scratch copy
            self.install(scratch, step)
            fp, answers = _answers(scratch)
            self.expected[fp] = answers
        shutil.rmtree(scratch)
        (root / "expected.json").write_text(json.dumps(self.expected))

    def install(self, store: Path, step: int) -> None:
        """Step 0: a (re)build of the small store; 1: `relations add` on it; 2: a rebuild with other vectors."""
        kind = step % 3
        if kind == 0:
            write_small_store(store, self.tokenizer_json, self.tok)
        elif kind == 1:
            _add_relations(store)
        else:
            _write_variant(store, self.tokenizer_json, self.tok, seed=7)


def start_readers(
    store: Path, expected: Path, out_dir: Path, processes: int, queries: int, reopen_every: int
) -> list[tuple[subprocess.Popen, Path]]:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]),
    )
    procs = []
    for i in range(processes):
        out = out_dir / f"reader-{i}.json"
        procs.append(
            (
                subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        WORKER,
                        str(store),
                        str(expected),
                        str(queries),
                        str(reopen_every),
                        str(out),
                    ],
                    env=env,
                    stderr=subprocess.PIPE,
                ),
                out,
            )
        )
    return procs


def collect(procs: list[tuple[subprocess.Popen, Path]], timeout: float = 600) -> dict:
    """Sum the readers' counts; a reader that died is reported with its stderr."""
    total = {"ok": 0, "wrong": 0, "reopened": 0, "unknown_version": 0, "errors": [], "versions": {}, "seconds": 0.0}
    for proc, out in procs:
        _, err = proc.communicate(timeout=timeout)
        if proc.returncode != 0 or not out.is_file():
            total["errors"].append(f"reader exited {proc.returncode}: {err.decode(errors='replace')[-500:]}")
            continue
        counts = json.loads(out.read_text())
        for key in ("ok", "wrong", "reopened", "unknown_version"):
            total[key] += counts[key]
        total["errors"] += counts["errors"]
        for v, n in counts["versions"].items():
            total["versions"][v] = total["versions"].get(v, 0) + n
        total["seconds"] = max(total["seconds"], counts["seconds"])
    return total


@pytest.fixture(scope="module")
def versions(tmp_path_factory) -> Versions:
    return Versions(tmp_path_factory.mktemp("versions"))


def test_readers_in_parallel_all_answer_correctly(versions, tmp_path):
    store = tmp_path / "s.sensekit"
    versions.install(store, 0)
    procs = start_readers(store, versions.root / "expected.json", tmp_path, processes=4, queries=300, reopen_every=0)
    total = collect(procs)
    assert total["errors"] == [] and total["wrong"] == 0 and total["unknown_version"] == 0
    assert total["ok"] == 4 * 300 and total["reopened"] == 0


@pytest.mark.parametrize("reopen_every", [0, 25])  # hold the store open throughout / reopen it now and then
def test_readers_survive_relations_add_and_rebuilds(versions, tmp_path, reopen_every):
    store = tmp_path / "s.sensekit"
    versions.install(store, 0)
    procs = start_readers(
        store, versions.root / "expected.json", tmp_path, processes=3, queries=400, reopen_every=reopen_every
    )
    step = 0
    while any(p.poll() is None for p, _ in procs):  # replace the store as long as the readers run
        step += 1
        versions.install(store, step)
        time.sleep(0.05)
    total = collect(procs)
    assert total["errors"] == [] and total["wrong"] == 0 and total["unknown_version"] == 0, total
    assert total["ok"] == 3 * 400 and step >= 1
    print(f"{step} replacements; answers per version {total['versions']}; {total['reopened']} reopen messages")
    with open_store(store) as s:
        s.verify()
    assert not [p for p in store.parent.iterdir() if p.name.startswith(".")]  # no leftovers of the swaps


def test_an_open_store_keeps_its_version_after_a_rebuild(versions, tmp_path):
    store = tmp_path / "s.sensekit"
    versions.install(store, 0)
    s = open_store(store)
    before = s.senses("bank")  # the tokenizer is loaded: nothing more is read from the path
    versions.install(store, 2)  # a rebuild with other vectors
    assert s.changed()
    after = s.senses("bank")
    assert [(x.sense_id, x.count) for x in after] == [(x.sense_id, x.count) for x in before]
    np.testing.assert_array_equal(after[0].embedding, before[0].embedding)
    assert [n.sense.sense_id for n in s.neighbors("bank", k=3)]
    s.close()
    with open_store(store) as fresh:
        assert len(fresh.senses("bank")) == 3  # the new version


def test_a_store_replaced_before_its_first_word_says_reopen(versions, tmp_path):
    store = tmp_path / "s.sensekit"
    versions.install(store, 0)
    s = open_store(store)
    versions.install(store, 1)  # relations add
    with pytest.raises(StoreError, match=r"changed since it was opened .*; reopen it"):
        s.senses("bank")
    assert s.neighbors(np.eye(16, dtype=np.float32)[4], k=1)[0].text == " glad"  # vectors need no tokenizer
    s.close()
