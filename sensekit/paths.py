"""Where sensekit finds things: its cache home, the shared data folder, packaged schemas."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def sensekit_home() -> Path:
    """Cache directory (converted teachers, default corpora). `SENSEKIT_HOME` overrides."""
    env = os.environ.get("SENSEKIT_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("sensekit"))


def shared_dir() -> Path:
    """The project's read-only shared data (`SENSEKIT_SHARED`, default `../shared` of the repo)."""
    return Path(os.environ.get("SENSEKIT_SHARED", REPO_ROOT.parent / "shared"))


def schema_text(name: str) -> str:
    """Text of a file in the `schemas` package, from a wheel or a checkout alike."""
    return resources.files("sensekit.schemas").joinpath(name).read_text(encoding="utf-8")
