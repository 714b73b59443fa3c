"""`sensekit serve`: the JSON API and pages (Starlette's TestClient), escaping, errors, store replacement,
concurrent requests, the CLI command, and a live uvicorn server on loopback."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="sensekit serve needs starlette (pip install -e '.[serve]')")
pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx (pip install -e '.[test]')")

from serve_store import PAYLOADS, SENSES, XSS_TOKEN_TEXT, free_port, start_server, write_serve_store  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from sensekit import open_store  # noqa: E402
from sensekit.serve import api as serve_api  # noqa: E402
from sensekit.serve import create_app  # noqa: E402
from sensekit.writer import StoreWriter  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def serve_store(tmp_path_factory, tokenizer_json, tok) -> Path:
    return write_serve_store(tmp_path_factory.mktemp("serve") / "s.sensekit", tokenizer_json, tok)


@pytest.fixture(scope="module")
def xss_store(tmp_path_factory, tokenizer_json, tok) -> Path:
    return write_serve_store(tmp_path_factory.mktemp("xss") / "x.sensekit", tokenizer_json, tok, payloads=True)


def client(store: Path, **kw) -> TestClient:
    return TestClient(create_app(store), base_url="http://127.0.0.1", **kw)


@pytest.fixture(scope="module")
def c(serve_store) -> TestClient:
    return client(serve_store)


# -- the JSON API mirrors the Python API ---------------------------------------------------------
def test_word_api_mirrors_the_python_api(c, serve_store):
    doc = c.get("/api/word", params={"w": "bank", "k": 5}).json()
    with open_store(serve_store) as s:
        senses, near = s.senses("bank"), s.neighbors("bank", k=5)
    assert doc["word"] == "bank" and doc["view"] == "loss" and doc["version"]
    assert [x["sense_id"] for x in doc["senses"]] == [x.sense_id for x in senses]
    assert [x["count"] for x in doc["senses"]] == [x.count for x in senses]
    assert sum(x["share"] for x in doc["senses"]) == pytest.approx(1.0, abs=1e-3)
    first = doc["senses"][0]["contexts"][0]
    assert first["snippet"] == senses[0].contexts[0].snippet
    assert first["snippet"][first["mark_start"] : first["mark_end"]] == "bank"
    # relations grouped under the sense they are attached to
    assert doc["senses"][0]["syn"] == ["river"] and doc["senses"][1]["syn"] == ["money"]
    assert [n["sense_id"] for n in doc["neighbors"]] == [n.sense.sense_id for n in near]
    alone = c.get("/api/neighbors", params={"w": "bank", "k": 5}).json()["neighbors"]
    assert alone == doc["neighbors"]
    assert doc["tokens"][0]["n_senses"] == SENSES["bank"]
    assert doc["senses"][0]["colour"] == "#1f77b4"


def test_search_gives_prefixes_then_close_spellings(c):
    doc = c.get("/api/search", params={"q": "ba"}).json()
    assert doc["words"] == ["bank"]
    assert "bank" in c.get("/api/search", params={"q": "bnak"}).json()["close"]
    assert c.get("/api/search", params={"q": "s", "limit": 2}).json()["words"] == ["sad", "spring"]


def test_sense_by_id_and_info(c, serve_store):
    with open_store(serve_store) as s:
        want = s.senses("river")[1]
        info = s.info()
    doc = c.get(f"/api/sense/{want.sense_id}").json()
    assert doc["sense_id"] == want.sense_id and doc["text"] == " river"
    assert [x["snippet"] for x in doc["contexts"]] == [x.snippet for x in want.contexts]
    i = c.get("/api/info").json()
    assert i["counts"] == info.counts and i["space"] == info.space and i["views"] == ["loss"]
    assert i["name"] == "s.sensekit" and str(serve_store.parent) not in json.dumps(i)  # no file system path


def test_plot_points_are_the_plot_commands(c, serve_store):
    from sensekit.plot import _palette

    doc = c.get("/api/plot", params={"w": "bank"}).json()
    assert len(doc["senses"]) == 3 and len(doc["contexts"]) == 9  # 3 kept vectors per sense
    assert {p["sense"] for p in doc["contexts"]} == {0, 1, 2}
    assert all(p["snippet"] for p in doc["contexts"])
    rgb = ["#%02x%02x%02x" % tuple(round(v * 255) for v in c_[:3]) for c_ in _palette(3)]
    assert [s["colour"] for s in doc["senses"]] == rgb  # the colours of `sensekit plot`
    assert 0 < sum(doc["explained_variance"]) <= 1.0001
    assert serve_api.colours(12)[:2] == ["#1f77b4", "#aec7e8"]  # tab20 past 10 senses, as plot does


# -- pages ------------------------------------------------------------------------------------------
def test_word_page_has_cards_contexts_links_and_scatter(c):
    r = c.get("/", params={"w": "bank"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert html.count('class="card sense"') == 3
    assert "<mark>bank</mark>" in html
    assert 'href="/?w=river"' in html and 'href="/?w=money"' in html  # synonyms are links
    assert 'id="scatter" data-word="bank"' in html and "/static/app.js" in html
    assert 'id="neighbors"' in html
    assert c.get("/static/app.js").status_code == 200 and c.get("/static/app.css").status_code == 200
    home = c.get("/")
    assert home.status_code == 200 and 'id="q"' in home.text
    assert "HNSW index" in c.get("/info").text


def test_unknown_word_page_suggests_close_spellings(c):
    r = c.get("/", params={"w": "bnak"})
    assert r.status_code == 404 and 'href="/?w=bank"' in r.text and "did you mean" in r.text


def test_a_loss_only_store_refuses_the_lexical_view(c):
    assert c.get("/", params={"w": "bank", "view": "loss"}).status_code == 200
    r = c.get("/api/word", params={"w": "bank", "view": "lexical"})
    assert r.status_code == 400 and "this store has: loss" in r.json()["error"]


def test_views_default_to_lexical_and_the_url_holds_the_view(tokenizer_json, tok, tmp_path):
    from serve_store import LEXICAL_SENSES

    path = write_serve_store(tmp_path / "v.sensekit", tokenizer_json, tok, lexical=True)
    c = client(path)
    info = c.get("/api/info").json()
    assert info["views"] == ["loss", "lexical"] and info["default_view"] == "lexical"
    lex = c.get("/api/word", params={"w": "bank"}).json()
    loss = c.get("/api/word", params={"w": "bank", "view": "loss"}).json()
    assert lex["view"] == "lexical" and len(lex["senses"]) == LEXICAL_SENSES["bank"]
    assert loss["view"] == "loss" and len(loss["senses"]) == SENSES["bank"]
    assert lex["senses"][0]["contexts"][0]["snippet"].startswith("lexical:")
    assert {s["view"] for s in lex["senses"]} == {"lexical"} and {s["view"] for s in loss["senses"]} == {"loss"}
    assert sorted(lex["senses"][0]["syn"]) == ["money", "river"]  # attached per view
    with open_store(path) as s:
        assert [x["sense_id"] for x in lex["senses"]] == [x.sense_id for x in s.senses("bank", view="lexical")]
        assert [n["sense_id"] for n in loss["neighbors"]] == [
            n.sense.sense_id for n in s.neighbors("bank", k=10, view="loss")
        ]
    plot = c.get("/api/plot", params={"w": "bank", "view": "loss"}).json()
    assert len(plot["senses"]) == SENSES["bank"]
    # the page: a view switch, and links that keep a non-default view
    page = c.get("/", params={"w": "bank", "view": "loss"}).text
    assert '<option value="loss" selected>' in page and 'href="/?w=river&amp;view=loss"' in page
    assert page.count('class="card sense"') == SENSES["bank"]
    default = c.get("/", params={"w": "bank"}).text
    assert 'href="/?w=river"' in default and default.count('class="card sense"') == LEXICAL_SENSES["bank"]
    assert "lexical view" in c.get("/info").text


# -- errors: 4xx with a one-line JSON body, never a traceback ---------------------------------------
@pytest.mark.parametrize(
    "url, status",
    [
        ("/api/word", 400),
        ("/api/word?w=", 400),
        ("/api/word?w=%20%20", 400),
        ("/api/word?w=" + "x" * 500, 400),
        ("/api/word?w=ba%00nk", 400),
        ("/api/word?w=bank&k=many", 400),
        ("/api/word?w=bank&k=-1", 400),
        ("/api/word?w=bank&k=100000", 400),
        ("/api/word?w=bank&view=nope", 400),
        ("/api/word?w=zebra", 404),
        ("/api/word?w=../../etc/passwd", 404),
        ("/api/sense/abc", 400),
        ("/api/sense/-1", 400),
        ("/api/sense/99999999999999999999999", 400),
        ("/api/sense/123456", 404),
        ("/api/plot?w=zebra", 404),
        ("/api/plot", 400),
        ("/api/search?q=", 400),
        ("/api/search?q=ba&limit=0", 400),
        ("/api/nothing", 404),
        ("/api/neighbors?w=bank&k=0", 400),
    ],
)
def test_bad_requests_get_one_line_json_errors(c, url, status):
    r = c.get(url)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    doc = r.json()
    assert doc["status"] == status and "\n" not in doc["error"] and "Traceback" not in r.text


@pytest.mark.parametrize(
    "url",
    ["/static/../api.py", "/static/%2e%2e/api.py", "/static/..%2fapi.py", "/static/../../store.py", "/store.duckdb"],
)
def test_no_url_reaches_the_file_system(c, url):
    r = c.get(url)
    assert r.status_code == 404 and "import" not in r.text and "Traceback" not in r.text


def test_other_methods_are_refused(c):
    r = c.post("/api/word", params={"w": "bank"})
    assert r.status_code == 405 and "error" in r.json()


def test_an_unexpected_error_is_a_one_line_500(serve_store, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("secret internals\nline two")

    monkeypatch.setattr(serve_api, "word_doc", boom)
    r = client(serve_store, raise_server_exceptions=False).get("/api/word", params={"w": "bank"})
    assert r.status_code == 500 and r.json()["error"] == "internal error; see the server's log"
    assert "secret" not in r.text and "Traceback" not in r.text


def test_security_headers_and_host_check(c, serve_store):
    r = c.get("/", params={"w": "bank"})
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    # DNS rebinding: a page on another host name reaching the loopback server is refused
    evil = TestClient(create_app(serve_store), base_url="http://evil.example")
    for path in ("/api/word?w=bank", "/?w=bank"):
        r = evil.get(path)
        assert r.status_code == 400 and r.headers["content-type"] == "application/json"
        assert r.json()["error"].startswith("invalid Host header 'evil.example'") and "\n" not in r.text
    # the loopback names, with or without a port, IPv6 included
    app = create_app(serve_store)
    for base in ("http://127.0.0.1:8000", "http://localhost", "http://[::1]:8000"):
        assert TestClient(app, base_url=base).get("/api/info").status_code == 200, base


@pytest.mark.parametrize(
    "header, host",
    [
        ("127.0.0.1:8000", "127.0.0.1"),
        ("localhost", "localhost"),
        ("[::1]:8000", "[::1]"),
        ("[::1]", "[::1]"),
        ("::1", "::1"),
    ],
)
def test_host_name_drops_only_the_port(header, host):
    from sensekit.serve.app import host_name

    assert host_name(header) == host


# -- untrusted text stays inert ---------------------------------------------------------------------
class _Tags(HTMLParser):
    """Collects start tags with their attributes, and the text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _assert_inert(html: str) -> str:
    p = _Tags()
    p.feed(html)
    scripts = [a for t, a in p.tags if t == "script"]
    assert scripts == [{"src": "/static/app.js", "defer": None}], scripts
    assert not [t for t, _ in p.tags if t in ("img", "iframe", "textarea", "b", "object", "embed")]
    for tag, attrs in p.tags:
        assert not [k for k in attrs if k.startswith("on")], (tag, attrs)
        for k, v in attrs.items():  # URL attributes never hold a script URL
            if k in ("href", "src", "action", "formaction", "xlink:href", "data"):
                assert not (v or "").lower().lstrip().startswith("javascript:"), (tag, k, v)
    svgs = [a for t, a in p.tags if t == "svg"]
    assert all("onload" not in a for a in svgs)
    return "".join(p.text)


def test_script_and_markup_from_the_store_are_inert(xss_store):
    c = client(xss_store)
    text = _assert_inert(c.get("/", params={"w": "bank"}).text)
    for payload in PAYLOADS:  # shown as text, not as markup
        assert payload in text, payload
    near = c.get("/api/neighbors", params={"w": "bank", "k": 3}).json()["neighbors"]
    assert near[0]["text"] == XSS_TOKEN_TEXT  # a token text, as data (the page writes it with textContent)
    info = c.get("/info")
    assert PAYLOADS[0] in json.dumps(info.text) or "&lt;script&gt;" in info.text
    _assert_inert(info.text)
    for payload in PAYLOADS:  # the word in the URL, echoed back on the unknown-word page
        r = c.get("/", params={"w": payload})
        assert r.status_code in (200, 404)
        assert payload.strip() in _assert_inert(r.text)
    # the API carries the same strings as data: exact, in JSON, never sniffed as HTML
    r = c.get("/api/word", params={"w": "bank"})
    assert r.headers["content-type"] == "application/json" and r.headers["x-content-type-options"] == "nosniff"
    doc = r.json()
    snippets = [x["snippet"] for s in doc["senses"] for x in s["contexts"]]
    assert any(PAYLOADS[0] in s for s in snippets) and any(PAYLOADS[1] in s for s in snippets)
    assert PAYLOADS[1] in doc["senses"][0]["syn"] and PAYLOADS[0] in doc["senses"][1]["ant"]
    assert doc["neighbors"][0]["text"] == XSS_TOKEN_TEXT
    plot = c.get("/api/plot", params={"w": "bank"}).json()
    assert any("<" in (p["snippet"] or "") for p in plot["contexts"])  # cut to about 60 characters
    err = c.get("/api/word", params={"w": PAYLOADS[0]})
    assert err.status_code == 404 and err.headers["content-type"] == "application/json"


def test_the_page_script_never_writes_html():
    js = (REPO / "sensekit" / "serve" / "static" / "app.js").read_text()
    js = "\n".join(line for line in js.splitlines() if not line.lstrip().startswith("//"))  # code, not comments
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in js, sink
    assert "textContent" in js


@pytest.mark.slow
def test_a_store_built_from_a_hostile_corpus_is_shown_inert(tiny, tmp_path):
    """The real build (tiny teacher) over a corpus and a pair list carrying script: the page shows it as text."""
    from sensekit.builder.pipeline import BuildConfig, build

    corpus = tmp_path / "corpus.txt"
    line = 'the bank said <script>alert(1)</script> then "><img src=x onerror=alert(1)> by the river bank'
    corpus.write_text("\n\n".join([line, "money in the bank is safe", "the river bank was green"] * 6) + "\n")
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text('bank\t"><img src=x onerror=alert(2)>\tsyn\nbank\triver\tsyn\n')
    cfg = BuildConfig(
        corpus=(str(corpus),),
        store=str(tmp_path / "h.sensekit"),
        seq_len=32,
        batch_size=2,
        senses_per_token=2,
        samples_per_token=6,
        contexts_per_sense=3,
        checkpoint_every=0,
        relations=(f"pairs:{pairs}",),
    )
    store = build(cfg, teacher=tiny).store
    c = client(store)
    found = False
    for word in ("bank", "river", "the", "by"):
        r = c.get("/", params={"w": word})
        if r.status_code != 200:
            continue
        text = _assert_inert(r.text)
        found |= "<script>alert(1)</script>" in text or "onerror=alert" in text
        doc = c.get("/api/word", params={"w": word}).json()
        assert doc["word"] == word
    assert found, "no snippet carried the payload: the test corpus no longer exercises escaping"


# -- read-only, store replacement, concurrency ------------------------------------------------------
def test_serving_never_writes_the_store(tokenizer_json, tok, tmp_path):
    path = write_serve_store(tmp_path / "ro.sensekit", tokenizer_json, tok)
    before = {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in path.iterdir()}
    app = create_app(path)
    c = TestClient(app, base_url="http://127.0.0.1")
    for w in SENSES:
        c.get("/", params={"w": w}), c.get("/api/plot", params={"w": w})
    c.get("/info")
    import duckdb

    with pytest.raises(duckdb.Error):  # the connection is read-only
        app.state.holder.store.con.execute("CREATE TABLE x (a INT)")
    after = {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in path.iterdir()}
    assert after == before


def test_a_replaced_store_is_served_in_its_new_version(tokenizer_json, tok, tmp_path):
    path = write_serve_store(tmp_path / "r.sensekit", tokenizer_json, tok)
    c = client(path)
    first = c.get("/api/word", params={"w": "bank"}).json()
    assert first["senses"][2]["syn"] == []
    page = c.get("/", params={"w": "bank"}).text
    assert "shore" not in page

    write_serve_store(path, tokenizer_json, tok, extra_syn="shore", seed=1)  # a rebuild renamed into place
    second = c.get("/api/word", params={"w": "bank"}).json()
    assert second["version"] != first["version"] and second["senses"][2]["syn"] == ["shore"]
    assert 'href="/?w=shore"' in c.get("/", params={"w": "bank"}).text

    with StoreWriter.update(path) as w:  # `relations add`: the relations of one source replaced
        w.replace_relations(
            "extra", {"head": ["bank"], "related": ["coast"], "kind": ["syn"], "derived": [False], "provenance": [None]}
        )
    third = c.get("/api/word", params={"w": "bank"}).json()
    assert third["version"] != second["version"]
    assert "coast" in third["unattached"]["syn"]

    # between a bundle moved away and its successor renamed in: "store changed, reloading", then the new one
    moved = tmp_path / "moved.sensekit"
    path.rename(moved)
    r = c.get("/api/word", params={"w": "bank"})
    assert r.status_code == 503 and r.json()["error"].startswith("store changed, reloading")
    assert r.headers["retry-after"] == "1"
    page = c.get("/", params={"w": "bank"})
    assert page.status_code == 503 and "store changed, reloading" in page.text and 'http-equiv="refresh"' in page.text
    moved.rename(path)
    time.sleep(0.6)  # a failed reopen is retried after RETRY_S
    r = c.get("/api/word", params={"w": "bank"})
    assert r.status_code == 200 and "coast" in r.json()["unattached"]["syn"]


def test_concurrent_requests_answer_correctly(serve_store):
    app = create_app(serve_store)
    with open_store(serve_store) as s:
        want = {w: [x.sense_id for x in s.senses(w)] for w in SENSES}
    errors: list = []

    def worker(seed: int) -> None:
        c = TestClient(app, base_url="http://127.0.0.1")
        words = list(SENSES)
        try:
            for i in range(40):
                w = words[(seed + i) % len(words)]
                kind = i % 3
                if kind == 0:
                    got = [x["sense_id"] for x in c.get("/api/word", params={"w": w, "k": 1 + i % 7}).json()["senses"]]
                elif kind == 1:
                    got = [x["sense_id"] for x in c.get("/api/plot", params={"w": w}).json()["senses"]]
                else:
                    r = c.get("/", params={"w": w})
                    assert r.status_code == 200
                    got = want[w] if r.text.count('class="card sense"') == len(want[w]) else None
                if got != want[w]:
                    errors.append((w, got))
        except Exception as exc:  # noqa: BLE001 (reported by the assertion below)
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:5]


def test_concurrent_requests_while_the_store_is_replaced(tokenizer_json, tok, tmp_path):
    path = write_serve_store(tmp_path / "c.sensekit", tokenizer_json, tok)
    app = create_app(path)
    stop = threading.Event()
    seen: dict[str, int] = {}
    errors: list = []

    def reader() -> None:
        c = TestClient(app, base_url="http://127.0.0.1")
        while not stop.is_set():
            r = c.get("/api/word", params={"w": "bank"})
            if r.status_code == 503:
                seen["503"] = seen.get("503", 0) + 1
                continue
            doc = r.json()
            syn = doc["senses"][2]["syn"]
            if r.status_code != 200 or syn not in ([], ["shore"]):
                errors.append((r.status_code, doc))
            seen[doc["version"]] = seen.get(doc["version"], 0) + 1

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for i in range(4):
            write_serve_store(path, tokenizer_json, tok, extra_syn="shore" if i % 2 == 0 else None, seed=i)
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not errors, errors[:3]
    assert len([k for k in seen if k != "503"]) >= 2, seen  # answers from more than one version


def test_requests_for_new_words_run_side_by_side(serve_store):
    """Two uncached requests are inside the store at the same time (each waits for the other at a barrier):
    with one lock around the store, the barrier times out."""
    app = create_app(serve_store)
    holder = app.state.holder
    both_inside = threading.Barrier(2, timeout=10)
    real_word_doc = serve_api.word_doc

    def word_doc(store, *args, **kw):
        both_inside.wait()
        return real_word_doc(store, *args, **kw)

    statuses: list = []

    def get(word: str) -> None:
        statuses.append(TestClient(app, base_url="http://127.0.0.1").get("/api/word", params={"w": word}).status_code)

    serve_api.word_doc = word_doc
    try:
        threads = [threading.Thread(target=get, args=(w,)) for w in ("bank", "river")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    finally:
        serve_api.word_doc = real_word_doc
    assert statuses == [200, 200] and holder.misses == 2


def test_a_replacement_waits_for_requests_reading_the_old_version(tokenizer_json, tok, tmp_path):
    """A request still reading the old version finishes on it; the next one gets the new version."""
    from sensekit.serve.holder import StoreHolder

    path = write_serve_store(tmp_path / "w.sensekit", tokenizer_json, tok)
    holder = StoreHolder(path)
    inside, release = threading.Event(), threading.Event()
    old_answer: list = []

    def slow_reader(store):
        inside.set()
        release.wait(10)
        return [r.related for r in store.relations("bank")]

    reader = threading.Thread(target=lambda: old_answer.append(holder.run(slow_reader)))
    reader.start()
    assert inside.wait(10)
    write_serve_store(path, tokenizer_json, tok, extra_syn="shore", seed=1)
    new_answer: list = []
    newer = threading.Thread(
        target=lambda: new_answer.append(holder.run(lambda s: [r.related for r in s.relations("bank")]))
    )
    newer.start()
    time.sleep(0.2)
    assert not new_answer  # the reopen waits for the reader of the old version
    release.set()
    reader.join(10)
    newer.join(10)
    assert "shore" not in old_answer[0] and "shore" in new_answer[0]
    assert holder.generation == 1
    holder.close()


# -- the command, a live server, the import rule ----------------------------------------------------
def test_serving_imports_no_torch():
    code = "import sys, sensekit.serve.app, sensekit.serve; assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_cli_serve_on_a_missing_store_is_one_line(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "sensekit.cli", "serve", "--store", str(tmp_path / "none.sensekit")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "no sensekit store" in r.stderr and "Traceback" not in r.stderr


def test_cli_serve_answers_on_loopback(serve_store):
    port = free_port()
    proc = start_server(serve_store, port)
    try:
        doc = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/word?w=bank", timeout=10).read())
        assert [s["sense_index"] for s in doc["senses"]] == [0, 1, 2]
        with socket.socket() as s:  # bound to loopback only
            for addr in {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}:
                if not addr.startswith("127."):
                    assert s.connect_ex((addr, port)) != 0
                    break
    finally:
        proc.terminate()
        proc.wait(timeout=20)
