"""Frozen-prefix cache for the truncated-teacher student on a fixed set of windows.

For window i it keeps, per token, the output of the frozen layers below the lowest trainable
one (the exact input of that layer: see sensekit.model.families) and the teacher's final post-norm
state g_t, in two memory-mapped float32 files in the run folder:

    OUTPUT/cache/prefix.f32   [N, T, d]
    OUTPUT/cache/final.f32    [N, T, d]
    OUTPUT/cache/filled.u8    [N]       1 once window i is stored (written after its rows)
    OUTPUT/cache/meta.json    shape, dtype and what the cache was built from

The first pass over the data fills it; later steps run only the layers from the lowest
trainable one up (frozen layers above a trainable one included), and the two LM-head products
(teacher logits = the teacher's head and logits step applied to the cached g_t). Values
are stored in float32, so the cached path reproduces the uncached losses (1e-5 relative).
Processes of a multi-process run write disjoint windows of the same files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from sensekit.errors import InputError

__all__ = ["PrefixCache"]


class PrefixCache:
    def __init__(self, folder: str | Path, n_windows: int, seq_len: int, dim: int, fingerprint: str) -> None:
        self.folder = Path(folder)
        self.shape = (n_windows, seq_len, dim)
        meta = {"shape": list(self.shape), "dtype": "float32", "fingerprint": fingerprint}
        meta_path = self.folder / "meta.json"
        fresh = True
        if meta_path.is_file():
            try:
                fresh = json.loads(meta_path.read_text()) != meta
            except ValueError:
                fresh = True
        self.folder.mkdir(parents=True, exist_ok=True)
        need = 2 * n_windows * seq_len * dim * 4
        free = _free_bytes(self.folder)
        if fresh and free is not None and need > free:
            raise InputError(
                f"the frozen-prefix cache needs {need / 2**30:.1f} GiB in {self.folder} but only "
                f"{free / 2**30:.1f} GiB are free; free space, cut --max-windows or drop --cache"
            )
        mode = "w+" if fresh else "r+"
        self.prefix = np.memmap(self.folder / "prefix.f32", np.float32, mode, shape=self.shape)
        self.final = np.memmap(self.folder / "final.f32", np.float32, mode, shape=self.shape)
        self.filled = np.memmap(self.folder / "filled.u8", np.uint8, mode, shape=(n_windows,))
        if fresh:
            meta_path.write_text(json.dumps(meta))

    @property
    def nbytes(self) -> int:
        return 2 * int(np.prod(self.shape)) * 4

    def has(self, idx: np.ndarray) -> bool:
        return bool(self.filled[idx].all())

    def get(self, idx: np.ndarray, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (prefix [B, T, d], final [B, T, d]) float32 on device."""
        order = np.asarray(idx)
        p = torch.from_numpy(np.ascontiguousarray(self.prefix[order]))
        f = torch.from_numpy(np.ascontiguousarray(self.final[order]))
        return p.to(device, non_blocking=True), f.to(device, non_blocking=True)

    def put(self, idx: np.ndarray, prefix: torch.Tensor, final: torch.Tensor) -> None:
        idx = np.asarray(idx)
        self.prefix[idx] = prefix.detach().float().cpu().numpy()
        self.final[idx] = final.detach().float().cpu().numpy()
        self.filled[idx] = 1

    def flush(self) -> None:
        self.prefix.flush()
        self.final.flush()
        self.filled.flush()


def _free_bytes(folder: Path) -> int | None:
    import shutil

    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None
