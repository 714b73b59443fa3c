"""Test pause points: make a process stop at a named stage, so that a test can SIGKILL it exactly there.

Set `SENSEKIT_TEST_PAUSE_AT=<stage>` (one of `PAUSE_STAGES`) in a process's environment and it
sleeps (`SENSEKIT_TEST_PAUSE_S`, default an hour) when it reaches that stage, after writing the
stage name to the file `SENSEKIT_TEST_PAUSE_MARKER` (when set), which tells the test it got there.
Unset (always, outside tests), `pause_point` costs one dictionary lookup.

Stages of `sensekit build`: `harvest` (just after a reservoir checkpoint was saved), `cluster`
(before k-means), `write` (the new bundle half-written, before its commit). Of `sensekit distill`:
`distill-checkpoint` (just after a checkpoint was saved).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["pause_point", "PAUSE_STAGES"]

PAUSE_STAGES = ("harvest", "cluster", "write", "distill-checkpoint")


def pause_point(stage: str) -> None:
    """Sleep here when SENSEKIT_TEST_PAUSE_AT names `stage` (tests only)."""
    if os.environ.get("SENSEKIT_TEST_PAUSE_AT") != stage:
        return
    marker = os.environ.get("SENSEKIT_TEST_PAUSE_MARKER")
    if marker:
        Path(marker).write_text(stage)
    time.sleep(float(os.environ.get("SENSEKIT_TEST_PAUSE_S", "3600")))
