"""`sensekit serve`: a local, read-only web app over a store (Starlette; Jinja2 pages; a JSON API).

Routes (every one a GET; the URL holds the word and the view, so links can be shared):

    /                      search page; /?w=WORD[&view=V][&k=N] is the word page
    /info[?view=V]         the store's provenance, counts, index and similarity space
    /api/search?q=PREFIX   words starting with PREFIX, then close spellings
    /api/word?w=WORD       tokens, senses (contexts, attached synonyms/antonyms), relations, nearest senses
    /api/neighbors?w=WORD  nearest senses of other tokens (the page loads them after the cards)
    /api/sense/ID          one sense with its contexts
    /api/plot?w=WORD       the PCA points of the word's senses and context vectors (sensekit plot's)
    /api/info              as /info, in JSON
    /static/...            the page's CSS and JS, shipped in this package

Safety: Jinja2 autoescapes every page, the JS writes text with textContent only, a Content-Security-Policy
allows scripts and styles from this server only, the Host header must be one well-formed name the server
answers to (loopback names and `--allow-host` names: no DNS rebinding), no URL names a file, and the store
is opened read-only. Errors are one-line JSON (4xx for bad input, 404 for unknown words and ids, 503 for a
store that cannot be read); an unexpected error is a 500 with a one-line JSON body, never a traceback. A
replacement of the store that cannot be opened leaves the last good version served (`/api/info` says
why: `replacement_error`).

The query path: importing this module never imports torch or transformers.
"""

from __future__ import annotations

import contextlib
import logging
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import InputError, NotFound, SensekitError, StoreError
from . import api
from .holder import StoreHolder

__all__ = ["create_app", "host_name", "served_hosts"]

log = logging.getLogger("sensekit.serve")
ANNOTATE_MAX_CHARS = 5000  # /api/annotate: text read per request (the teacher runs on it)

MAX_K = 100
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


PAGE_HEADERS = {**SECURITY_HEADERS, "Cache-Control": "no-store"}


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")
WILDCARD_ADDRESSES = ("0.0.0.0", "::", "")
# A Host header: a name or IPv4 address, or an IPv6 address in brackets, then an optional port; or a bare
# IPv6 address (no port). Nothing else: "[::1]evil.example" or "a b" is malformed.
_HOST = re.compile(
    r"(?P<name>\[[0-9a-f:.]+\]|[a-z0-9_](?:[a-z0-9._-]*[a-z0-9_])?)(?::[0-9]{1,5})?|(?P<bare>[0-9a-f]*:[0-9a-f:.]*)",
    re.IGNORECASE,
)


def host_name(header: str) -> str:
    """The host of a Host header, without its port, lower-cased: '127.0.0.1:8000' -> '127.0.0.1',
    '[::1]:8000' -> '[::1]'. ValueError when the header is no host (empty, stray characters, text after ']')."""
    m = _HOST.fullmatch(header)
    if m is None:
        raise ValueError(f"malformed Host header {header[:60]!r}")
    return (m.group("name") or m.group("bare")).lower()


def served_hosts(host: str, allow: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The Host header names a server bound to `host` answers to: the loopback names, the bound address
    when it is one interface's, and the `allow` names (`--allow-host`). InputError (one line) for a malformed
    name, a pattern, or a `host` beyond loopback with no `allow` name: the Host check is never off."""
    names = set(LOOPBACK_HOSTS)
    for raw in allow:
        name = raw.strip().lower()
        if re.fullmatch(r"[0-9a-f]*:[0-9a-f:.]*", name):  # a bare IPv6 address: the Host header brackets it
            name = f"[{name}]"
        try:
            ok = host_name(name) == name  # no port, no pattern, no stray characters
        except ValueError:
            ok = False
        if not ok:
            raise InputError(
                f"--allow-host {raw[:60]!r} is not a host name or address (no port, no pattern); "
                "give the name clients put in their URLs, e.g. --allow-host myhost.local"
            )
        names.add(name)
    loopback = host in LOOPBACK_HOSTS or host.startswith("127.")
    if not loopback and not allow:
        raise InputError(
            f"--host {host} serves beyond this machine, so every request's Host header is checked: name the "
            "host names clients will use with --allow-host NAME (repeatable), e.g. --allow-host myhost.local"
        )
    if host not in WILDCARD_ADDRESSES:  # the bound address itself is a name clients can use
        names.add(f"[{host}]" if ":" in host else host.lower())
    return sorted(names)


class HostCheck:
    """ASGI middleware: a request whose Host header is missing, malformed, repeated, or names no allowed host
    (a DNS-rebinding page reaching a loopback server) gets a one-line JSON 400, like every other refusal."""

    def __init__(self, app, allowed_hosts: list[str]) -> None:
        self.app = app
        self.allowed = set(allowed_hosts)

    def refusal(self, values: list[str]) -> str | None:
        """Why a request with these Host header values is refused, or None."""
        if not values or values == [""]:
            return "missing Host header: every request must name the host it is for"
        if len(values) > 1:
            return "more than one Host header"
        try:
            host = host_name(values[0])
        except ValueError as exc:
            return str(exc)
        if host not in self.allowed:
            shown = ", ".join(sorted(self.allowed))
            return (
                f"invalid Host header {host[:60]!r}: this server answers only to {shown} "
                "(start it with --allow-host NAME to answer to another name)"
            )
        return None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            problem = self.refusal(Headers(scope=scope).getlist("host"))
            if problem is not None:
                doc = {"error": problem, "status": 400}
                await JSON(doc, status_code=400, headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})(
                    scope, receive, send
                )
                return
        await self.app(scope, receive, send)


def _status_of(exc: BaseException) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, InputError):
        return 400
    if isinstance(exc, HTTPException):
        return exc.status_code
    if isinstance(exc, StoreError):
        return 503
    return 500


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, HTTPException):
        text = exc.detail
    elif isinstance(exc, SensekitError):
        text = str(exc)
    else:
        text = "internal error; see the server's log"
    return " ".join(str(text).split())


def _int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InputError(f"{name} must be a whole number, got {raw[:20]!r}") from None
    if not lo <= value <= hi:
        raise InputError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _view(request: Request, store) -> str:
    """The requested view, or the store's default; InputError for one the store does not hold."""
    views, default = api.views_of(store)
    view = request.query_params.get("view") or default
    if view not in views:
        raise InputError(f"unknown view {view[:30]!r}; this store has: {', '.join(views)}")
    return view


def create_app(
    store: str | Path,
    ef: int | None = None,
    allowed_hosts: list[str] | None = None,
    cache_size: int = 512,
    annotator=None,
) -> Starlette:
    """The ASGI app over the store bundle at `store` (opened now: StoreError when it cannot be).
    `allowed_hosts`: the Host header names accepted (default: the loopback names; see `served_hosts()`).
    `annotator`: lines -> annotate records (`sensekit.annotate.Annotator.annotate`, made by the CLI, which
    loads the teacher): adds /api/annotate and the page's annotate box; None leaves both out."""
    holder = StoreHolder(store, ef=ef, cache_size=cache_size)
    env = Environment(
        loader=PackageLoader("sensekit.serve", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )

    def html(template: str, **ctx) -> str:
        return env.get_template(template).render(
            store_name=holder.path.name, version=holder.version, annotate=annotator is not None, **ctx
        )

    def render(template: str, status: int = 200, **ctx) -> HTMLResponse:
        return HTMLResponse(html(template, **ctx), status_code=status, headers=PAGE_HEADERS)

    def json(doc: dict, version: str, status: int = 200) -> JSON:
        return JSON(
            {**doc, "version": version},
            status_code=status,
            headers={**SECURITY_HEADERS, "X-Sensekit-Version": version, "Cache-Control": "no-store"},
        )

    def error_json(exc: BaseException) -> JSON:
        status = _status_of(exc)
        doc: dict[str, Any] = {"error": _one_line(exc), "status": status}
        if isinstance(exc, api.UnknownWord):
            doc["close"] = exc.close
        headers = {**SECURITY_HEADERS, "Cache-Control": "no-store"}
        if status == 503:
            headers["Retry-After"] = "1"
        return JSON(doc, status_code=status, headers=headers)

    def word_url(word: str, view: str | None = None) -> str:
        params = {"w": word}
        if view:
            params["view"] = view
        return "/?" + urlencode(params)

    env.globals["word_url"] = word_url

    async def answer(key: Any, fn) -> tuple[Any, str]:
        """holder.cached(key, fn): a cached answer from the event loop's thread, a new one from a worker
        thread (DuckDB and hnswlib release the GIL there, so requests for new words run side by side)."""
        return holder.lookup(key) or await run_in_threadpool(holder.cached, key, fn)

    # -- the JSON API -------------------------------------------------------------------------
    async def api_search(request: Request) -> Response:
        q = request.query_params.get("q", "")
        limit = _int_param(request, "limit", 10, 1, 50)

        def go(store):
            return api.search_doc(store, holder.extra("words", api.WordList), q, limit)

        return json(*await answer(("search", q, limit), go))

    async def api_word(request: Request) -> Response:
        word = api.check_word(request.query_params.get("w"))
        k = _int_param(request, "k", 10, 0, MAX_K)
        view = holder.run(lambda s: _view(request, s))
        doc, version = await answer(("word", word, view, k), lambda s: {**api.word_doc(s, word, k, view), "view": view})
        return json(doc, version)

    async def api_neighbors(request: Request) -> Response:
        word = api.check_word(request.query_params.get("w"))
        k = _int_param(request, "k", 10, 1, MAX_K)
        view = holder.run(lambda s: _view(request, s))
        doc, version = await answer(
            ("neighbors", word, view, k), lambda s: {**api.neighbors_doc(s, word, k, view), "view": view}
        )
        return json(doc, version)

    async def api_sense(request: Request) -> Response:
        raw = request.path_params["sense_id"]
        if not raw.isdigit() or len(raw) > 18:
            raise InputError(f"a sense id is a whole number, got {raw[:20]!r}")
        doc, version = await answer(("sense", int(raw)), lambda s: api.sense_doc(s, int(raw)))
        return json(doc, version)

    async def api_plot(request: Request) -> Response:
        word = api.check_word(request.query_params.get("w"))
        view = holder.run(lambda s: _view(request, s))
        doc, version = await answer(("plot", word, view), lambda s: {**api.plot_doc(s, word, view), "view": view})
        return json(doc, version)

    async def api_annotate(request: Request) -> Response:
        """/api/annotate?text=TEXT: each line's words with their senses (only with `sensekit serve --annotate`)."""
        if annotator is None:
            raise HTTPException(404, "annotate is off: start the server with `sensekit serve --annotate`")
        text = request.query_params.get("text", "")
        if not text.strip():
            raise InputError("give the text to annotate: /api/annotate?text=...")
        if len(text) > ANNOTATE_MAX_CHARS:
            raise InputError(f"the text has {len(text)} characters; annotate at most {ANNOTATE_MAX_CHARS} at once")
        lines = await run_in_threadpool(annotator, text.splitlines())
        return json({"lines": lines}, holder.version)

    async def api_info(request: Request) -> Response:
        view = holder.run(lambda s: _view(request, s))
        doc, version = await answer(("info", view), lambda s: {**api.info_doc(s, view), "view": view})
        return json({**doc, "replacement_error": holder.replacement_error}, version)

    # -- pages ------------------------------------------------------------------------------
    async def page_word(request: Request) -> Response:
        views, default = holder.run(api.views_of)
        w = request.query_params.get("w")
        if w is None or not w.strip():
            return render("index.html", views=views, view=default, default_view=default, word="")
        word = api.check_word(w)
        k = _int_param(request, "k", 10, 0, MAX_K)
        view = holder.run(lambda s: _view(request, s))

        # The nearest senses (an HNSW search per sense) come after the cards, from /api/neighbors.
        # The rendered page is cached with the version's answers (its footer names the version).
        def page(s) -> tuple[int, str]:
            try:
                doc = {**api.word_doc(s, word, 0, view), "view": view}
            except api.UnknownWord as exc:
                return 404, html(
                    "index.html",
                    views=views,
                    view=view,
                    default_view=default,
                    word=word,
                    error=str(exc),
                    close=exc.close,
                )
            return 200, html("word.html", views=views, view=view, default_view=default, word=word, doc=doc, k=k)

        (status, body), _ = await answer(("page", word, view, k), page)
        return HTMLResponse(body, status_code=status, headers=PAGE_HEADERS)

    async def page_info(request: Request) -> Response:
        view = holder.run(lambda s: _view(request, s))
        doc, _ = await answer(("info", view), lambda s: {**api.info_doc(s, view), "view": view})
        return render(
            "info.html",
            views=doc["views"],
            view=view,
            default_view=doc["default_view"],
            word="",
            info=doc,
            replacement_error=holder.replacement_error,
        )

    async def on_error(request: Request, exc: Exception) -> Response:
        status = _status_of(exc)
        if status == 500:
            log.error("error answering %s", request.url.path, exc_info=exc)
        if request.url.path.startswith("/api/") or request.url.path.startswith("/static/"):
            return error_json(exc)
        try:
            return render("error.html", status, message=_one_line(exc), views=[], word="")
        except Exception:  # the error page itself failed (store gone): the one-line JSON still goes out
            return error_json(exc)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        holder.close()

    hosts = allowed_hosts or list(LOOPBACK_HOSTS)
    app = Starlette(
        routes=[
            Route("/", page_word),
            Route("/info", page_info),
            Route("/api/search", api_search),
            Route("/api/word", api_word),
            Route("/api/neighbors", api_neighbors),
            Route("/api/sense/{sense_id}", api_sense),
            Route("/api/plot", api_plot),
            Route("/api/info", api_info),
            Route("/api/annotate", api_annotate),
            Mount("/static", StaticFiles(packages=[("sensekit.serve", "static")]), name="static"),
        ],
        middleware=[Middleware(HostCheck, allowed_hosts=hosts)],
        exception_handlers={SensekitError: on_error, HTTPException: on_error, Exception: on_error},
        lifespan=lifespan,
    )
    app.state.holder = holder
    return app
