"""Checkpoints of a distillation run: OUTPUT/checkpoints/step-NNNNNNNN/state.pt.

A checkpoint holds what a resumed run needs to continue exactly where it stopped: the
trainable weights (the frozen ones are the teacher's own), the optimizer and schedule, and
the random states (sense sampling, torch CPU, CUDA). The data order needs no state: it is a
function of (seed, epoch). Each checkpoint is written beside its final name and renamed into
place, so a crash never leaves a half-written one for --resume to pick.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sensekit.errors import InputError
from sensekit.fs import swap_into_place, temp_sibling
from sensekit.options import flag

from .config import DistillConfig
from .student import DistillStudent

__all__ = [
    "TrainState",
    "checkpoint_folders",
    "save_checkpoint",
    "load_checkpoint",
    "check_same_run",
    "RESUMABLE_CHANGES",
    "STATE_FILE",
]

STATE_FILE = "state.pt"
# Settings a resumed run may change; everything else must equal the checkpoint's config.
RESUMABLE_CHANGES = {"save_every", "eval_every", "eval_batches", "keep_checkpoints", "device", "grad_norm_every"}


@dataclass
class TrainState:
    """What a checkpoint saves and restores besides the config."""

    model: DistillStudent  # unwrapped (not the DDP wrapper); only its trainable parameters are saved
    optimizer: torch.optim.Optimizer
    scheduler: Any  # a torch LR scheduler
    sense_gen: torch.Generator  # the sense sampling's own generator


def checkpoint_folders(root: Path) -> list[Path]:
    """The complete checkpoints under `root` (OUTPUT/checkpoints), oldest first."""
    if not root.is_dir():
        return []
    return sorted((p for p in root.glob("step-*") if (p / STATE_FILE).is_file()), key=lambda p: int(p.name[5:]))


def save_checkpoint(root: Path, step: int, cfg: DistillConfig, state: TrainState) -> Path:
    """Write ROOT/step-NNNNNNNN (main process only), then keep the newest cfg.keep_checkpoints."""
    folder = root / f"step-{step:08d}"
    tmp = temp_sibling(folder)
    shutil.rmtree(tmp, ignore_errors=True)  # a leftover of a crashed process that had the same pid
    tmp.mkdir(parents=True)
    payload = {
        "step": step,
        "config": cfg.to_dict(),
        "trainable": {n: p.detach().cpu().clone() for n, p in state.model.trainable_named_parameters()},
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(),
        "sense_rng": state.sense_gen.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    torch.save(payload, tmp / STATE_FILE)
    swap_into_place(tmp, folder)
    for old in checkpoint_folders(root)[: -cfg.keep_checkpoints]:
        shutil.rmtree(old, ignore_errors=True)
    return folder


def load_checkpoint(folder: Path, cfg: DistillConfig, state: TrainState) -> int:
    """Restore `state` from `folder` after checking that `cfg` is the run's config; returns the step it holds."""
    try:
        saved = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001  (any unreadable file gets the same one-line advice)
        raise InputError(
            f"checkpoint {folder} is unreadable ({type(exc).__name__}); delete it to resume from an older one"
        ) from None
    check_same_run(saved["config"], cfg)
    params = dict(state.model.trainable_named_parameters())
    missing = set(params) ^ set(saved["trainable"])
    if missing:
        raise InputError(
            f"checkpoint {folder} does not fit this student (parameters {sorted(missing)[:3]}); "
            "resume with the run's settings"
        )
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(saved["trainable"][n].to(p.device))
    state.optimizer.load_state_dict(saved["optimizer"])
    state.scheduler.load_state_dict(saved["scheduler"])
    state.sense_gen.set_state(saved["sense_rng"])
    torch.set_rng_state(saved["torch_rng"])
    if saved.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["cuda_rng"])
    return int(saved["step"])


def check_same_run(saved: dict[str, Any], cfg: DistillConfig) -> None:
    """A resumed run may change only RESUMABLE_CHANGES; name the first other setting that differs."""
    now = cfg.to_dict()
    changed = sorted(k for k in now if k not in RESUMABLE_CHANGES and saved.get(k) != now[k])
    if changed:
        k = changed[0]
        raise InputError(
            f"--resume: {flag(k)} is {now[k]!r} but the run in {cfg.output_dir} used "
            f"{saved.get(k)!r}; resume with the run's settings (see its config.toml)"
        )
