"""`sensekit serve`: a local, read-only web app over a store (JSON API + page). See app.py for the routes.

`create_app(path)` gives the ASGI app; `serve(path, host, port)` runs it with uvicorn. Imports stay
light: Starlette, Jinja2 and numpy, never torch or transformers.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["create_app", "serve", "served_hosts"]


def create_app(*args, **kwargs):
    from .app import create_app as make

    return make(*args, **kwargs)


def served_hosts(host: str, allow=()) -> list[str]:
    """The Host header names a server bound to `host` answers to (InputError for a `host` beyond loopback
    without `allow` names); see app.served_hosts."""
    from .app import served_hosts as hosts

    return hosts(host, allow)


def serve(
    store: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    ef: int | None = None,
    log_level: str = "info",
    allow_hosts=(),
    annotator=None,
):
    """Open the store (StoreError now when it cannot be) and serve it until interrupted. The Host header of
    every request must be a loopback name, the bound address, or one of `allow_hosts` (`--allow-host`);
    binding beyond loopback needs at least one (InputError). `annotator`: see `create_app`."""
    import uvicorn

    from .app import create_app as make

    hosts = served_hosts(host, allow_hosts)
    app = make(store, ef=ef, allowed_hosts=hosts, annotator=annotator)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False, server_header=False)
