"""Checkpoints of an interrupted build: each rank's reservoirs and corpus position.

They live beside the store, in `.<store>.ckpt/rank-<r>/`, and carry a fingerprint of every
setting that changes the result (config, corpus, teacher, world size), so `--resume` refuses
a checkpoint made otherwise. A save writes a new folder and swaps it into place: a build
killed mid-save resumes from the previous checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from .._fs import swap_into_place, temp_sibling
from ..errors import InputError

__all__ = ["Checkpoint", "build_fingerprint"]

_STATE_FILE = "state.json"
# settings that do not change what a build computes: a resumed build may change them
_NOT_FINGERPRINTED = ("resume", "checkpoint_every", "relations", "store", "device")


def build_fingerprint(config: Any, corpus_fingerprint: str, teacher: Any, world: int) -> str:
    """A short hash of what the harvest depends on: config (less `_NOT_FINGERPRINTED`), corpus, teacher, world."""
    keep = {k: v for k, v in config.to_dict().items() if k not in _NOT_FINGERPRINTED}
    blob = json.dumps([keep, corpus_fingerprint, teacher.name, teacher.revision, world], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Checkpoint:
    """One rank's checkpoint folder and the fingerprint its contents must carry."""

    folder: Path
    fingerprint: str

    @classmethod
    def for_rank(cls, store: Path, rank: int, fingerprint: str) -> "Checkpoint":
        return cls(store.parent / f".{store.name}.ckpt" / f"rank-{rank}", fingerprint)

    def load(self) -> Optional[tuple[Any, dict]]:
        """(Reservoir, stream state) saved by an earlier run, or None when there is none."""
        from .reservoir import Reservoir

        state_file = self.folder / _STATE_FILE
        if not state_file.is_file():
            return None
        saved = json.loads(state_file.read_text())
        if saved["fingerprint"] != self.fingerprint:
            raise InputError(f"the checkpoint in {self.folder.parent} was made with other settings, corpus or teacher; "
                             "rerun with the same ones, or without --resume to start over")
        return Reservoir.load(self.folder), saved["state"]

    def save(self, reservoir: Any, state: dict) -> None:
        """Write the reservoir and the stream state after the last batch; replaces the previous checkpoint."""
        tmp = temp_sibling(self.folder)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        reservoir.save(tmp)
        (tmp / _STATE_FILE).write_text(json.dumps({"fingerprint": self.fingerprint, "state": state}))
        swap_into_place(tmp, self.folder)

    def remove(self, *, with_parent: bool = False) -> None:
        """Delete this rank's checkpoint (a finished build); `with_parent`: the shared folder too, once empty."""
        shutil.rmtree(self.folder, ignore_errors=True)
        if with_parent:
            try:
                self.folder.parent.rmdir()
            except OSError:  # other ranks' folders, or a stale temporary: leave them
                pass
