"""`sensekit serve`: the JSON API and pages (Starlette's TestClient), escaping, errors, store replacement,
concurrent requests, the CLI command, and a live uvicorn server on loopback."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
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
from sensekit.errors import SensekitError  # noqa: E402
from sensekit.serve import api as serve_api  # noqa: E402
from sensekit.serve import create_app  # noqa: E402
from sensekit.serve.app import SECURITY_HEADERS  # noqa: E402
from sensekit.store import SenseStore  # noqa: E402
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


@pytest.fixture(scope="module")
def live(serve_store):
    """`sensekit serve` on 127.0.0.1 in a child process: ("127.0.0.1", port)."""
    port = free_port()
    proc = start_server(serve_store, port)
    yield "127.0.0.1", port
    proc.terminate()
    proc.wait(timeout=20)


def raw_request(addr: tuple[str, int], request: str | bytes) -> tuple[int, dict, bytes]:
    """Send `request` byte for byte (no client normalises its path or adds a Host header); returns the
    status, the headers (lower-case names) and the body of the answer."""
    with socket.create_connection(addr, timeout=10) as s:
        s.sendall(request.encode("latin-1") if isinstance(request, str) else request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict((k.strip().lower(), v.strip()) for k, v in (x.split(":", 1) for x in lines[1:] if ":" in x))
    return int(lines[0].split()[1]), headers, body


# -- the JSON API mirrors the Python API ---------------------------------------------------------
def test_word_api_mirrors_the_python_api(c, serve_store):
    doc = c.get("/api/word", params={"w": "bank", "k": 5}).json()
    with open_store(serve_store) as s:
        senses, near = s.senses("bank"), s.neighbors("bank", k=5)
        first_snippet = senses[0].contexts[0].snippet  # contexts are read on first use, while the store is open
    assert doc["word"] == "bank" and doc["view"] == "loss" and doc["version"]
    assert [x["sense_id"] for x in doc["senses"]] == [x.sense_id for x in senses]
    assert [x["count"] for x in doc["senses"]] == [x.count for x in senses]
    assert sum(x["share"] for x in doc["senses"]) == pytest.approx(1.0, abs=1e-3)
    first = doc["senses"][0]["contexts"][0]
    assert first["snippet"] == first_snippet
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


@pytest.mark.parametrize("url", ["/static/%2e%2e/api.py", "/static/..%2fapi.py", "/store.duckdb"])
def test_no_url_reaches_the_file_system(c, url):
    r = c.get(url)
    assert r.status_code == 404 and "import" not in r.text and "Traceback" not in r.text


@pytest.mark.parametrize(
    "raw_path",
    ["/static/../api.py", "/static/../../store.py", "/static/./../app.py", "/static/%2e%2e/%2e%2e/store.py"],
)
def test_raw_dot_dot_paths_reach_the_static_files_and_stop_there(live, raw_path):
    """Sent as written (an HTTP client would remove the dots before sending, and test the router instead): the
    server's static-file handler gets the '..' and refuses it with its JSON 404; the page router's 404 for
    /api.py would be an HTML page."""
    status, headers, body = raw_request(
        live, f"GET {raw_path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    assert status == 404 and headers["content-type"] == "application/json", (status, headers, body[:200])
    assert b"import" not in body and b"Traceback" not in body


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
        assert "--allow-host NAME" in r.json()["error"]
    # the loopback names, with or without a port, IPv6 included, in any case
    app = create_app(serve_store)
    for base in ("http://127.0.0.1:8000", "http://localhost", "http://[::1]:8000", "http://LocalHost:8000"):
        assert TestClient(app, base_url=base).get("/api/info").status_code == 200, base


@pytest.mark.parametrize(
    "header, host",
    [
        ("127.0.0.1:8000", "127.0.0.1"),
        ("localhost", "localhost"),
        ("LOCALHOST:80", "localhost"),
        ("[::1]:8000", "[::1]"),
        ("[::1]", "[::1]"),
        ("::1", "::1"),
        ("my-host.local:8080", "my-host.local"),
    ],
)
def test_host_name_drops_only_the_port(header, host):
    from sensekit.serve.app import host_name

    assert host_name(header) == host


@pytest.mark.parametrize(
    "header",
    [
        "[::1]evil.example",
        "[::1]:8000evil",
        "[::1",
        "",
        " ",
        "evil.example:port",
        "a b",
        "a@b",
        "127.0.0.1:",
        "x/y",
        ".x",
    ],
)
def test_a_malformed_host_header_is_no_host(header):
    from sensekit.serve.app import host_name

    with pytest.raises(ValueError, match="malformed Host header"):
        host_name(header)


@pytest.mark.parametrize(
    "headers, error",
    [
        ([], "missing Host header"),
        ([(b"host", b"")], "missing Host header"),
        ([(b"host", b"[::1]evil.example")], "malformed Host header '[::1]evil.example'"),
        ([(b"host", b"127.0.0.1 evil.example")], "malformed Host header"),
        ([(b"host", b"127.0.0.1"), (b"host", b"evil.example")], "more than one Host header"),
        ([(b"host", b"evil.example")], "invalid Host header 'evil.example'"),
    ],
)
def test_a_missing_or_malformed_host_header_is_a_one_line_400(serve_store, headers, error):
    """At the ASGI level, where a request can lack a Host header or hold two."""
    import asyncio

    app = create_app(serve_store)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/info",
        "raw_path": b"/api/info",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    assert start["status"] == 400, (start, body)
    head = {k.decode(): v.decode() for k, v in start["headers"]}
    assert head["content-type"] == "application/json" and "script-src 'self'" in head["content-security-policy"]
    doc = json.loads(body)
    assert doc["status"] == 400 and doc["error"].startswith(error) and "\n" not in doc["error"], doc


@pytest.mark.parametrize(
    "request_text, status, error",
    [
        ("GET /api/info HTTP/1.0\r\n\r\n", 400, "missing Host header"),
        ("GET /api/info HTTP/1.1\r\nHost: [::1]evil.example\r\nConnection: close\r\n\r\n", 400, "malformed Host"),
        ("GET /api/info HTTP/1.1\r\nHost: evil.example:8000\r\nConnection: close\r\n\r\n", 400, "invalid Host"),
        ("GET /api/info HTTP/1.1\r\nHost: [::1]:1\r\nConnection: close\r\n\r\n", 200, None),
    ],
)
def test_the_live_server_checks_the_host_header_as_sent(live, request_text, status, error):
    got, headers, body = raw_request(live, request_text)
    assert got == status, body[:300]
    if error:
        assert headers["content-type"] == "application/json" and json.loads(body)["error"].startswith(error), body


def test_a_server_beyond_loopback_answers_only_to_the_names_allowed(serve_store):
    from sensekit.errors import InputError
    from sensekit.serve import served_hosts

    assert served_hosts("127.0.0.1") == sorted(["127.0.0.1", "localhost", "[::1]", "::1"])
    for host in ("0.0.0.0", "::", "192.168.1.5", "myhost.local"):  # the Host check is never off
        with pytest.raises(
            InputError, match=rf"--host {re.escape(host)} serves beyond this machine.*--allow-host NAME"
        ):
            served_hosts(host)
    hosts = served_hosts("0.0.0.0", ["MyHost.local", "fe80::1", "10.0.0.7"])
    assert {"myhost.local", "[fe80::1]", "10.0.0.7", "127.0.0.1"} <= set(hosts) and "0.0.0.0" not in hosts
    assert "192.168.1.5" in served_hosts("192.168.1.5", ["myhost.local"])  # the bound address is a name too
    for bad in ("*", "*.example", "myhost:8000", "[::1]evil.example", "a b", ""):
        with pytest.raises(InputError, match=r"--allow-host .* is not a host name or address"):
            served_hosts("0.0.0.0", [bad])
    app = create_app(serve_store, allowed_hosts=hosts)
    assert TestClient(app, base_url="http://myhost.local:8000").get("/api/info").status_code == 200
    assert TestClient(app, base_url="http://[fe80::1]:8000").get("/api/info").status_code == 200
    assert TestClient(app, base_url="http://127.0.0.1").get("/api/info").status_code == 200
    r = TestClient(app, base_url="http://evil.example").get("/api/info")
    assert r.status_code == 400 and "invalid Host header 'evil.example'" in r.json()["error"]


def test_cli_serve_beyond_loopback_needs_allow_host(tmp_path, serve_store):
    r = subprocess.run(
        [sys.executable, "-m", "sensekit.cli", "serve", "--store", str(serve_store), "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1 and "--allow-host NAME" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "serving" not in r.stderr, r.stderr


def test_error_pages_carry_the_security_headers(c, serve_store):
    """Every error answer, page or JSON, carries the Content-Security-Policy and the other headers."""
    responses = {
        "unknown word page": c.get("/", params={"w": "zebra"}),
        "bad view page": c.get("/", params={"w": "bank", "view": "lexical"}),
        "bad k page": c.get("/", params={"w": "bank", "k": "many"}),
        "no such page": c.get("/nothing"),
        "method page": c.post("/"),
        "API 400": c.get("/api/word", params={"w": "bank", "k": "-1"}),
        "API 404": c.get("/api/word", params={"w": "zebra"}),
        "static 404": c.get("/static/none.js"),
        "host 400": TestClient(create_app(serve_store), base_url="http://evil.example").get("/"),
    }
    for name, r in responses.items():
        assert r.status_code >= 400, name
        for header, value in SECURITY_HEADERS.items():
            assert r.headers.get(header) == value, (name, header)
        assert r.headers["cache-control"] == "no-store", name


def test_the_lexical_view_page_on_a_loss_only_store_is_a_400_page(c):
    r = c.get("/", params={"w": "bank", "view": "lexical"})
    assert r.status_code == 400 and r.headers["content-type"].startswith("text/html")
    assert "unknown view &#39;lexical&#39;; this store has: loss" in r.text and "Traceback" not in r.text
    assert 'class="card sense"' not in r.text and 'http-equiv="refresh"' not in r.text
    r = c.get("/info", params={"view": "lexical"})
    assert r.status_code == 400 and "this store has: loss" in r.text


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
    info = c.get("/info")  # the provenance holds PAYLOADS[0] and [1]: escaped, never raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in info.text and PAYLOADS[0] not in info.text
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in info.text and PAYLOADS[1] not in info.text
    _assert_inert(info.text)
    for payload in PAYLOADS:  # the word in the URL, echoed back on the unknown-word page
        r = c.get("/", params={"w": payload})
        assert r.status_code == 404, (payload, r.status_code)
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

    # a bundle moved away: the last good version is still served, and /api/info says why
    moved = tmp_path / "moved.sensekit"
    path.rename(moved)
    r = c.get("/api/word", params={"w": "bank"})
    assert r.status_code == 200 and r.json()["version"] == third["version"]
    assert "no sensekit store" in c.get("/api/info").json()["replacement_error"]
    moved.rename(path)  # the served version put back: nothing to report
    r = c.get("/api/word", params={"w": "bank"})
    assert r.status_code == 200 and r.json()["version"] == third["version"] and "coast" in r.json()["unattached"]["syn"]
    assert c.get("/api/info").json()["replacement_error"] is None


def _put_in_place(bundle: Path, path: Path) -> None:
    """Replace the bundle at `path` by `bundle` (two renames; the old one is removed)."""
    aside = path.with_name(path.name + ".aside")
    path.rename(aside)
    bundle.rename(path)
    shutil.rmtree(aside)


def test_a_replacement_that_fails_to_open_keeps_the_last_good_version(tokenizer_json, tok, tmp_path, caplog):
    """A rebuild whose bundle cannot be opened (here a truncated embeddings.npy): the old version goes on being
    served, /api/info and /info say why, the log says it once, the bundle is not opened again at every request,
    and no page reloads itself; the next good rebuild is served."""
    path = write_serve_store(tmp_path / "f.sensekit", tokenizer_json, tok)
    app = create_app(path)
    holder = app.state.holder
    c = TestClient(app, base_url="http://127.0.0.1")
    good = c.get("/api/word", params={"w": "bank"}).json()

    broken = write_serve_store(tmp_path / "broken.sensekit", tokenizer_json, tok, extra_syn="shore", seed=1)
    npy = broken / "embeddings.npy"
    npy.write_bytes(npy.read_bytes()[:-100])
    with pytest.raises(SensekitError):
        open_store(broken)
    _put_in_place(broken, path)
    opens = []
    real_open = holder._open
    holder._open = lambda: opens.append(1) or real_open()
    caplog.set_level(logging.INFO, logger="sensekit.serve")
    for _ in range(5):
        r = c.get("/api/word", params={"w": "bank", "k": 3})  # a new key: the store is read
        assert r.status_code == 200 and r.json()["version"] == good["version"] and r.json()["senses"][2]["syn"] == []
    page = c.get("/", params={"w": "river"})
    assert page.status_code == 200 and 'http-equiv="refresh"' not in page.text
    assert len(opens) == 1, "the bundle that failed to open was opened again"
    info = c.get("/api/info").json()
    assert info["version"] == good["version"] and "embeddings.npy" in info["replacement_error"]
    assert "\n" not in info["replacement_error"]
    assert "cannot be opened" in c.get("/info").text and "embeddings.npy" in c.get("/info").text
    warnings = [x for x in caplog.records if x.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cannot be opened" in warnings[0].getMessage()
    assert good["version"] in warnings[0].getMessage()  # names the version still served

    _put_in_place(write_serve_store(tmp_path / "next.sensekit", tokenizer_json, tok, extra_syn="shore", seed=2), path)
    r = c.get("/api/word", params={"w": "bank"})
    assert r.status_code == 200 and r.json()["version"] != good["version"] and r.json()["senses"][2]["syn"] == ["shore"]
    assert c.get("/api/info").json()["replacement_error"] is None and len(opens) == 2
    assert "cannot be opened" not in c.get("/info").text
    assert any("serving version " + r.json()["version"] in x.getMessage() for x in caplog.records)


def test_a_store_error_answer_is_a_503_without_a_reload_loop(serve_store, monkeypatch):
    from sensekit.errors import StoreError

    def unreadable(*a, **k):
        raise StoreError("cannot read the store now")

    monkeypatch.setattr(serve_api, "word_doc", unreadable)
    c = client(serve_store)
    r = c.get("/api/word", params={"w": "money"})
    assert r.status_code == 503 and r.json()["error"] == "cannot read the store now" and r.headers["retry-after"] == "1"
    page = c.get("/", params={"w": "money"})
    assert page.status_code == 503 and "cannot read the store now" in page.text
    assert 'http-equiv="refresh"' not in page.text and "reloads by itself" not in page.text
    js = (REPO / "sensekit" / "serve" / "static" / "app.js").read_text()
    assert "location.reload" not in js.split("r.status === 503")[1].split("else")[0]  # nor the script


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
                    r = c.get("/api/word", params={"w": w, "k": 1 + i % 7})
                elif kind == 1:
                    r = c.get("/api/plot", params={"w": w})
                else:
                    r = c.get("/", params={"w": w})
                if r.status_code != 200:  # the status first: an error body has no senses
                    errors.append((w, r.status_code, r.text[:200]))
                    continue
                if kind == 2:
                    got = want[w] if r.text.count('class="card sense"') == len(want[w]) else None
                else:
                    got = [x["sense_id"] for x in r.json()["senses"]]
                if got != want[w]:
                    errors.append((w, got))
        except Exception as exc:  # noqa: BLE001 (reported by the assertion below)
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not [t for t in threads if t.is_alive()], "a request thread never finished"
    assert not errors, errors[:5]


CROSS_K = 7  # a request with this k waits, inside the store, until the writer has replaced the bundle


def _answer(doc: dict) -> list:
    """What the replacement test compares: each sense's id, count and attached synonyms."""
    return [(x["sense_id"], x["count"], x["syn"]) for x in doc["senses"]]


def test_concurrent_requests_while_the_store_is_replaced(tokenizer_json, tok, tmp_path, monkeypatch, figure):
    """Readers ask for every word, uncached (no answer cache, and the store's sense cache emptied before each
    read), while a writer replaces the store 4 times. Requests with k=CROSS_K wait inside the old version
    until a replacement has finished, then read it: DuckDB and embeddings.npy of a replaced bundle. Every
    answer is checked against its version's, computed beforehand; any error status or exception fails."""
    from readers import drop_sense_cache

    kinds = [dict(extra_syn="shore" if i % 2 else None, seed=i) for i in range(5)]  # version 0, then 4 rebuilds
    expected: dict[str, dict] = {}
    for i, kind in enumerate(kinds):
        scratch = write_serve_store(tmp_path / f"scratch-{i}.sensekit", tokenizer_json, tok, **kind)
        with open_store(scratch) as s:
            expected[s.meta["content_sha256"][:12]] = {w: _answer(serve_api.word_doc(s, w, 3, "loss")) for w in SENSES}
    assert len(expected) == 5
    path = write_serve_store(tmp_path / "c.sensekit", tokenizer_json, tok, **kinds[0])
    app = create_app(path, cache_size=0)  # no answer cache: every request reads the store

    state = threading.Condition()
    progress = {"replaced": 0, "waiting": 0, "path_version": None}
    crossed: list[str] = []
    real_word_doc, real_read = serve_api.word_doc, SenseStore._read_senses
    file_reads: dict[int, int] = {}  # thread -> reads of the store's files (not the sense cache)

    def read_senses(self, *a, **k):
        file_reads[threading.get_ident()] = file_reads.get(threading.get_ident(), 0) + 1
        return real_read(self, *a, **k)

    def word_doc(store, word, k, view):
        if k == CROSS_K:  # read the word once, wait for a replacement, then read it again from the files
            real_word_doc(store, word, 3, view)
            with state:
                seen = progress["replaced"]
                progress["waiting"] += 1
                state.notify_all()
                state.wait_for(lambda: progress["replaced"] > seen, timeout=30)
                progress["waiting"] -= 1
                replaced = store.meta["content_sha256"][:12] != progress["path_version"]
        drop_sense_cache(store)  # read DuckDB and embeddings.npy, never the answers of an earlier request
        reads = file_reads.get(threading.get_ident(), 0)
        doc = real_word_doc(store, word, 3, view)
        # .get: another reader may have refilled the cache since the drop, so this thread may not have read yet
        if k == CROSS_K and replaced and file_reads.get(threading.get_ident(), 0) > reads:
            crossed.append(word)  # read from the files of a version no longer at the path
        return doc

    monkeypatch.setattr(SenseStore, "_read_senses", read_senses)
    monkeypatch.setattr(serve_api, "word_doc", word_doc)
    stop = threading.Event()
    seen: dict[str, int] = {}
    errors: list = []

    def reader(n: int) -> None:
        c = TestClient(app, base_url="http://127.0.0.1")
        words = list(SENSES)
        i = n
        try:
            while not stop.is_set():
                w = words[i % len(words)]
                k = CROSS_K if i % 5 == 0 else 3
                i += 1
                r = c.get("/api/word", params={"w": w, "k": k})
                if r.status_code != 200:  # the status first: an error body has no senses
                    errors.append((r.status_code, r.text[:200]))
                    continue
                doc = r.json()
                if _answer(doc) != expected.get(doc["version"], {}).get(w):
                    errors.append(("wrong answer", doc["version"], w, _answer(doc)))
                with state:
                    seen[doc["version"]] = seen.get(doc["version"], 0) + 1
        except Exception as exc:  # noqa: BLE001 (a crash in a thread fails the test below)
            errors.append(repr(exc))

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    try:
        for kind in kinds[1:]:
            with state:  # a request is inside the old version: the replacement crosses it
                assert state.wait_for(lambda: progress["waiting"] > 0, timeout=30), "no request waited"
            write_serve_store(path, tokenizer_json, tok, **kind)
            with open_store(path) as s:
                version = s.meta["content_sha256"][:12]
            with state:
                progress["replaced"] += 1
                progress["path_version"] = version
                state.notify_all()
            time.sleep(0.05)
    finally:
        stop.set()
        with state:  # release requests still waiting for a replacement
            progress["replaced"] += len(kinds)
            state.notify_all()
        for t in threads:
            t.join(timeout=60)
    assert not [t for t in threads if t.is_alive()], "a reader thread never finished"
    assert not errors, errors[:3]
    assert len(crossed) >= 4, crossed  # at least one uncached read of a replaced version per replacement
    figure("replacements", len(kinds) - 1)
    assert len(seen) >= 3 and set(seen) <= set(expected), seen  # answers from several versions, each known


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


def test_cli_serve_answers_on_loopback_only(live):
    port = live[1]
    doc = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/word?w=bank", timeout=10).read())
    assert [s["sense_index"] for s in doc["senses"]] == [0, 1, 2]
    # what the system says is listening on the port: the loopback address, and nothing else
    assert listening_addresses(port) == {"127.0.0.1"}
    for addr in local_addresses():  # and no other address of this machine answers
        with socket.socket() as s:
            s.settimeout(2)
            assert s.connect_ex((addr, port)) != 0, addr


def listening_addresses(port: int) -> set[str]:
    """The local addresses of the TCP sockets listening on `port` (Linux: /proc/net/tcp and tcp6)."""
    import ipaddress

    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            pytest.skip("no /proc/net/tcp: the listening address is read from Linux's socket table")
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(addr)  # 32-bit words in host (little-endian) order
                raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                found.add(str(ipaddress.ip_address(raw)))
    return found


def local_addresses() -> set[str]:
    """This machine's IPv4 addresses other than loopback (the route out, and the host name's)."""
    found = set()
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # a documentation address: connecting a UDP socket sends nothing
        found.add(s.getsockname()[0])
    with contextlib.suppress(OSError):
        found |= {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
    return {a for a in found if not a.startswith("127.") and a != "0.0.0.0"}
