"""`sensekit serve`: a local, read-only web app over a store (JSON API + page). See app.py for the routes.

`create_app(path)` gives the ASGI app; `serve(path, host, port)` runs it with uvicorn. Imports stay
light: Starlette, Jinja2 and numpy, never torch or transformers.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["create_app", "serve"]

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def create_app(*args, **kwargs):
    from .app import create_app as make

    return make(*args, **kwargs)


def serve(store: str | Path, host: str = "127.0.0.1", port: int = 8000, ef: int | None = None, log_level: str = "info"):
    """Open the store (StoreError now when it cannot be) and serve it until interrupted."""
    import uvicorn

    from .app import create_app as make

    # Host header check: loopback names, plus the bound address; any host when bound to every interface.
    hosts = ["*"] if host in ("0.0.0.0", "::", "") else sorted({*LOOPBACK, "[::1]", host})
    app = make(store, ef=ef, allowed_hosts=hosts)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False, server_header=False)
