"""A small store for the `sensekit serve` tests: senses with contexts and kept vectors, relations attached
to senses, and (with `payloads=True`) script and markup in every text a page shows.

Written with the real StoreWriter over the conftest tokenizer, so the app reads it as it reads any store.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

from sensekit.writer import StoreWriter

DIM = 16
SENSES = {"bank": 3, "river": 2, "money": 1, "light": 2, "dark": 1, "happy": 1, "glad": 1, "sad": 1, "spring": 2}
SENTENCES = {
    "bank": ["the bank of the river was muddy", "she put money in the bank today", "a steep bank of snow"],
    "river": ["the river ran fast after the rain", "down by the river we sat"],
    "money": ["money is not everything"],
    "light": ["turn on the light please", "the box was light to carry"],
    "dark": ["the room was dark and cold"],
    "happy": ["a happy child laughed"],
    "glad": ["we were glad to see you"],
    "sad": ["a sad song played"],
    "spring": ["the spring in the bed broke", "flowers bloom in spring"],
}
# (head, related, kind, head's sense_index): symmetric pairs are written both ways.
RELATIONS = [
    ("bank", "river", "syn", 0, 0),
    ("bank", "money", "syn", 1, 0),
    ("light", "dark", "ant", 0, 0),
    ("happy", "glad", "syn", 0, 0),
    ("happy", "sad", "ant", 0, 0),
    ("glad", "sad", "ant", 0, 0),
]
# Untrusted text as a corpus and a lexicon may carry it.
PAYLOADS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg onload=alert(1)>",
    "javascript:alert(1)",
    "</textarea><iframe src=javascript:alert(1)>",
    "{{7*7}} ${7*7} <b onmouseover=alert(1)>",
]
XSS_TOKEN_TEXT = " </title><script>alert('token')</script>"


LEXICAL_SENSES = {w: 1 + (n > 1) for w, n in SENSES.items()}  # the lexical view: 1 or 2 senses a word


def write_serve_store(
    path: Path,
    tokenizer_json: Path,
    tok,
    *,
    payloads: bool = False,
    extra_syn: str | None = None,
    lexical: bool = False,
    seed: int = 0,
) -> Path:
    """Write the store at `path` (replacing one there, atomically, as a rebuild does).
    `extra_syn`: one more synonym of 'bank' (attached to its sense 2), so two versions differ visibly.
    `lexical`: also a lexical view (LEXICAL_SENSES senses a word, one context each; relations attached to sense 0);
    it is then the store's default view."""
    rng = np.random.default_rng(seed)
    ids = {w: tok.token_to_id(" " + w) for w in SENSES}
    assert all(i is not None for i in ids.values()), ids
    words = list(SENSES)
    owners, sense_index, counts = [], [], []
    for w in words:
        for i in range(SENSES[w]):
            owners.append(ids[w]), sense_index.append(i), counts.append(int(rng.integers(3, 40)))
    centres = rng.standard_normal((len(owners), DIM)).astype(np.float32)
    token_ids, texts = [ids[w] for w in words], [" " + w for w in words]
    prov = {"teacher": "tiny-test", "corpus": "serve tests"}
    if payloads:  # a token whose text is markup (a byte-level vocabulary can hold any string), with one sense
        xss_id = max(tok.get_vocab().values()) + 1000
        token_ids.append(xss_id), texts.append(XSS_TOKEN_TEXT)
        owners.append(xss_id), sense_index.append(0), counts.append(7)
        centres = np.concatenate([centres, centres[:1] + 0.05])  # near bank's sense 0: a neighbour of bank
        prov["teacher"] = PAYLOADS[0]
        prov["corpus"] = PAYLOADS[1]
    with StoreWriter(path, dim=DIM, tokenizer_json=tokenizer_json, provenance=prov, space="identity") as w:
        w.add_tokens(token_ids, texts, [100] * len(token_ids))
        sids = w.add_senses(centres, sense_index, counts, token_ids=owners)
        rows: dict[str, list] = {
            k: []
            for k in (
                "sense_id",
                "rank",
                "doc_id",
                "char_start",
                "char_end",
                "snippet",
                "mark_start",
                "mark_end",
                "distance",
                "vector",
            )
        }
        j = 0
        for w_ in words:
            for i in range(SENSES[w_]):
                base = SENTENCES[w_][i % len(SENTENCES[w_])]
                for rank in range(3):
                    snippet = (base, f"yesterday {base}", f"{base}, as they say")[rank]
                    if payloads:
                        snippet = (
                            f"{PAYLOADS[(j + rank) % len(PAYLOADS)]} {base} {PAYLOADS[(j + rank + 1) % len(PAYLOADS)]}"
                        )
                    a = snippet.index(w_)
                    rows["sense_id"].append(int(sids[j]))
                    rows["rank"].append(rank)
                    rows["doc_id"].append(PAYLOADS[rank] if payloads else f"doc{j}-{rank}")
                    rows["char_start"].append(a)
                    rows["char_end"].append(a + len(w_))
                    rows["snippet"].append(snippet)
                    rows["mark_start"].append(a)
                    rows["mark_end"].append(a + len(w_))
                    rows["distance"].append(0.1 * rank)
                    rows["vector"].append((centres[j] + 0.3 * rng.standard_normal(DIM)).astype(np.float32).tolist())
                j += 1
        w.add_contexts(rows)
        rels = list(RELATIONS)
        if extra_syn:
            rels.append(("bank", extra_syn, "syn", 2, None))
        if payloads:
            rels += [("bank", PAYLOADS[1], "syn", 0, None), ("bank", PAYLOADS[0], "ant", 1, None)]
        heads, related, kinds, head_sense = [], [], [], []
        for h, r, k, hs, rs in rels:
            heads.append(h), related.append(r), kinds.append(k), head_sense.append(hs)
            if rs is not None:
                heads.append(r), related.append(h), kinds.append(k), head_sense.append(rs)
        prov_rows = [{"gloss": PAYLOADS[5]} if payloads else {"gloss": "test"} for _ in heads]
        w.replace_relations(
            "pairs",
            {
                "head": heads,
                "related": related,
                "kind": kinds,
                "derived": [False] * len(heads),
                "provenance": prov_rows,
            },
        )
        w.add_words(
            sorted(set(heads + related) - set(words)),
            [tok.encode(" " + x, add_special_tokens=False).ids for x in sorted(set(heads + related) - set(words))],
            [None] * len(set(heads + related) - set(words)),
        )
        w.set_head_senses(heads, related, np.asarray(head_sense), np.full(len(heads), 0.25, np.float32))
        if lexical:
            lex_owner = [ids[x] for x in words for _ in range(LEXICAL_SENSES[x])]
            lex_index = [i for x in words for i in range(LEXICAL_SENSES[x])]
            lex = rng.standard_normal((len(lex_owner), DIM)).astype(np.float32)
            lsids = w.add_senses(lex, lex_index, [10] * len(lex_owner), token_ids=lex_owner, view="lexical")
            snippets = [f"lexical: {SENTENCES[x][0]}" for x in words for _ in range(LEXICAL_SENSES[x])]
            marks = [s_.index(x) for s_, x in zip(snippets, [x for x in words for _ in range(LEXICAL_SENSES[x])])]
            keys = [x for x in words for _ in range(LEXICAL_SENSES[x])]
            w.add_contexts(
                {
                    "sense_id": [int(i) for i in lsids],
                    "rank": [0] * len(lsids),
                    "doc_id": ["lex"] * len(lsids),
                    "char_start": marks,
                    "char_end": [m + len(x) for m, x in zip(marks, keys)],
                    "snippet": snippets,
                    "mark_start": marks,
                    "mark_end": [m + len(x) for m, x in zip(marks, keys)],
                    "distance": [0.0] * len(lsids),
                }
            )
            w.set_head_senses(
                heads, related, np.zeros(len(heads)), np.full(len(heads), 0.5, np.float32), view="lexical"
            )
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(store: Path, port: int, *extra: str, wait_s: float = 60) -> subprocess.Popen:
    """`sensekit serve` (plus `extra` options) in a child process; returns once it answers on 127.0.0.1:port."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    exe = shutil.which("sensekit", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "sensekit.cli"]
    proc = subprocess.Popen(
        cmd + ["serve", "--store", str(store), "--port", str(port), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sensekit serve exited: {proc.stdout.read().decode()[-2000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/info", timeout=2).read()
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"sensekit serve did not answer within {wait_s:g} s")
