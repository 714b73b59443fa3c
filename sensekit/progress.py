"""The one progress protocol of build, eval and distill.

Library code never draws: it calls `progress(stage, done, total, **info)` and the CLI decides what
to show. `stage` names the step ("harvest", "cluster", a metric's name, "step", ...); `done` and
`total` count its work when it has a size (None when it has not); `info` carries the rest (a
training step's losses, a status message). The arguments before `**info` are positional-only, so
`info` may hold any key, "stage" included.
"""

from __future__ import annotations

from typing import Any, Optional, Protocol

__all__ = ["Progress", "no_progress"]


class Progress(Protocol):
    def __call__(self, stage: str, done: Optional[int] = None, total: Optional[int] = None, /, **info: Any) -> None: ...


def no_progress(stage: str, done: Optional[int] = None, total: Optional[int] = None, /, **info: Any) -> None:
    """The progress callback of callers that show nothing."""
    return None
