"""Checkpoints of an interrupted build: each rank's reservoirs and corpus position.

They live beside the store, in `.<store>.ckpt/rank-<r>/`, and carry a fingerprint of every
setting that changes the result (config, corpus, teacher, world size), so `--resume` refuses
a checkpoint made otherwise, naming the first setting that differs and both its values. A save
writes a new folder and swaps it into place: a build killed mid-save resumes from the previous
checkpoint. A full disk while saving is a one-line StoreError.
"""

from __future__ import annotations

import errno
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..errors import InputError, StoreError
from ..fs import swap_into_place, temp_sibling

__all__ = ["Checkpoint", "build_fingerprint", "build_settings"]

_STATE_FILE = "state.json"
# settings that do not change what a build computes: a resumed build may change them
_NOT_FINGERPRINTED = ("resume", "checkpoint_every", "relations", "store", "device")
_DERIVED = ("corpus_fingerprint", "teacher_name", "teacher_revision", "world_size", "batching")  # not flags


def build_settings(config: Any, corpus_fingerprint: str, teacher: Any, world: int) -> dict[str, Any]:
    """What the harvest depends on: config (less `_NOT_FINGERPRINTED`), corpus, teacher, world size."""
    keep = {k: v for k, v in config.to_dict().items() if k not in _NOT_FINGERPRINTED}
    return json.loads(
        json.dumps(
            {
                **keep,
                "corpus_fingerprint": corpus_fingerprint,
                "teacher_name": teacher.name,
                "teacher_revision": teacher.revision,
                "world_size": world,
                # a checkpoint counts batches: a build that batches otherwise cannot resume it
                "batching": _batching(),
            },
            default=str,
        )
    )


def _batching() -> str:
    from .harvest import MAX_ROWS_FACTOR, MIN_BATCH_TOKENS, PAD_SLACK

    return f"longest first, rows <= {MAX_ROWS_FACTOR} x batch size, slack {PAD_SLACK} past {MIN_BATCH_TOKENS} tokens"


def build_fingerprint(config: Any, corpus_fingerprint: str, teacher: Any, world: int) -> str:
    """A short hash of `build_settings`."""
    settings = build_settings(config, corpus_fingerprint, teacher, world)
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:24]


def _first_difference(saved: dict[str, Any], now: dict[str, Any]) -> str:
    """'--seed is 9 but the checkpoint's build used 0' for the first setting that differs."""
    for key in sorted(set(saved) | set(now)):
        if saved.get(key) != now.get(key):
            name = "--" + key.replace("_", "-") if key in now and key not in _DERIVED else key.replace("_", " ")
            return f"{name} is {now.get(key)!r} but the checkpoint's build used {saved.get(key)!r}"
    return "its settings differ"


@dataclass(frozen=True)
class Checkpoint:
    """One rank's checkpoint folder and the fingerprint its contents must carry."""

    folder: Path
    fingerprint: str
    settings: Optional[dict] = None  # build_settings(...): lets a refusal name what changed

    @classmethod
    def for_rank(cls, store: Path, rank: int, fingerprint: str, settings: Optional[dict] = None) -> "Checkpoint":
        return cls(store.parent / f".{store.name}.ckpt" / f"rank-{rank}", fingerprint, settings)

    def load(self) -> Optional[tuple[Any, dict]]:
        """(Reservoir, stream state) saved by an earlier run, or None when there is none."""
        from .reservoir import Reservoir

        state_file = self.folder / _STATE_FILE
        if not state_file.is_file():
            return None
        saved = json.loads(state_file.read_text())
        if saved["fingerprint"] != self.fingerprint:
            what = (
                _first_difference(saved.get("settings") or {}, self.settings or {})
                if saved.get("settings") and self.settings
                else "its settings, corpus or teacher differ"
            )
            raise InputError(
                f"--resume: the checkpoint in {self.folder.parent} was made with other settings: {what}; "
                "rerun with the same ones, or without --resume to start over"
            )
        return Reservoir.load(self.folder), saved["state"]

    def save(self, reservoir: Any, state: dict) -> None:
        """Write the reservoir and the stream state after the last batch; replaces the previous checkpoint."""
        tmp = temp_sibling(self.folder)
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir(parents=True)
            reservoir.save(tmp)
            (tmp / _STATE_FILE).write_text(
                json.dumps({"fingerprint": self.fingerprint, "settings": self.settings, "state": state})
            )
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)  # the previous checkpoint stays as it was
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise
            raise StoreError(
                f"no space left to checkpoint the build in {self.folder.parent} ({exc.strerror}); "
                "free space, or pass --checkpoint-every 0"
            ) from None
        swap_into_place(tmp, self.folder)

    def remove(self, *, with_parent: bool = False) -> None:
        """Delete this rank's checkpoint (a finished build); `with_parent`: the shared folder too, once empty."""
        shutil.rmtree(self.folder, ignore_errors=True)
        for half in self.folder.parent.glob(f".{self.folder.name}.tmp-*"):  # a save killed midway left it
            shutil.rmtree(half, ignore_errors=True)
        if with_parent:
            try:
                self.folder.parent.rmdir()
            except OSError:  # other ranks' folders, or a stale temporary: leave them
                pass
