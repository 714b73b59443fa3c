"""Multi-process builds (torchrun / accelerate launch: WORLD_SIZE > 1).

Every rank harvests its shard of the documents (ordinal % world == rank); the reservoirs
meet at rank 0 in a pairwise tree (log2(world) rounds) through the weighted reservoir merge,
over a gloo group (CPU tensors, whatever backend the model runs on). A single process gets
`Ranks(0, 1, None)` and every collective here is a no-op. Torch loads inside the functions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

__all__ = ["Ranks", "init_ranks", "teacher_device", "merge_tree"]


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def teacher_device(device: Optional[str]) -> Optional[str]:
    """The device for this rank's teacher: one GPU per rank (LOCAL_RANK) when several processes share CUDA."""
    import torch

    if _world_size() > 1 and device in (None, "", "auto", "cuda") and torch.cuda.is_available():
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(torch.device(device))
    return device


@dataclass(frozen=True)
class Ranks:
    """This process's place in the build: rank, world size and the gloo group (None when single-process)."""

    rank: int
    world: int
    group: Any

    def token_cap(self, max_tokens: Optional[int]) -> Optional[int]:
        """This rank's share of --max-tokens (the first ranks take the remainder)."""
        if max_tokens is None:
            return None
        return max_tokens // self.world + (1 if self.rank < max_tokens % self.world else 0)

    def total(self, *values: int) -> tuple[int, ...]:
        """The sums over all ranks of these integers."""
        import torch

        totals = torch.tensor(values, dtype=torch.int64)
        if self.world > 1:
            import torch.distributed as dist

            dist.all_reduce(totals, group=self.group)
        return tuple(int(v) for v in totals)

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier(group=self.group)


def init_ranks(device) -> Ranks:
    """Ranks from the torchrun/accelerate environment, joining the process group if needed."""
    world = _world_size()
    if world <= 1:
        return Ranks(0, 1, None)
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if device is not None and str(device).startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend)
    group = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else dist.group.WORLD
    return Ranks(dist.get_rank(), dist.get_world_size(), group)


# -- reservoir samples over the wire ------------------------------------------------------
def _send_samples(s, dst: int, group) -> None:
    """A header (keys R, samples S, dim d), then each non-empty array of the SampleSet."""
    import torch
    import torch.distributed as dist

    dim = s.vectors.shape[1] if s.vectors.ndim == 2 else 0
    lexical_dim = 0 if s.lexical is None else s.lexical.shape[1]
    vectors = s.vectors if s.lexical is None else np.concatenate([s.vectors, s.lexical], 1)  # both views, one send
    arrays = [s.keys, s.counts, s.indptr, s.meta, vectors]
    header = torch.tensor([len(s.keys), len(s.vectors), dim, lexical_dim], dtype=torch.int64)
    dist.send(header, dst, group=group)
    for a in arrays:
        if a.size:
            dist.send(torch.from_numpy(np.ascontiguousarray(a)), dst, group=group)


def _recv_samples(src: int, group):
    import torch
    import torch.distributed as dist

    from .reservoir import SampleSet

    header = torch.zeros(4, dtype=torch.int64)
    dist.recv(header, src, group=group)
    R, S, d, dl = (int(x) for x in header)
    # keys [R], counts [R], indptr [R+1], meta [S, 3], vectors [S, d] fp16: the order _send_samples sends
    shapes = [
        ((R,), torch.int64),
        ((R,), torch.int64),
        ((R + 1,), torch.int64),
        ((S, 3), torch.int64),
        ((S, d + dl), torch.float16),
    ]
    out = []
    for shape, dt in shapes:
        t = torch.zeros(shape, dtype=dt)
        if t.numel():
            dist.recv(t, src, group=group)
        out.append(t.numpy())
    vectors, lexical = (out[4][:, :d], out[4][:, d:]) if dl else (out[4], None)
    return SampleSet(out[0], out[1], out[2], vectors, out[3], lexical)


def merge_tree(samples, ranks: Ranks, cap: int, seed: int):
    """Pairwise tree merge to rank 0 (log2(world) rounds); other ranks end with None."""
    from .reservoir import merge_samples

    rank, world = ranks.rank, ranks.world
    step = 1
    while step < world:
        if rank % (2 * step) == step:
            _send_samples(samples, rank - step, ranks.group)
            return None
        if rank % (2 * step) == 0 and rank + step < world:
            other = _recv_samples(rank + step, ranks.group)
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 1 << 20, step, rank])))
            samples = merge_samples(samples, other, cap, rng)
        step *= 2
    return samples
