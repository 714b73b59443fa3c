"""The output folder of a distillation run: its layout, and the run's records in it.

    OUTPUT/config.toml        the resolved DistillConfig
    OUTPUT/run.json           what the run was set up with (teacher, store, targets, windows, steps, devices)
    OUTPUT/metrics.jsonl      one line per optimizer step: every loss term, lr, grad norm (and every
                              --grad-norm-every steps each term's gradient norm, "grad_norms")
    OUTPUT/eval.jsonl         one line per evaluation
    OUTPUT/tensorboard/       the same scalars, when tensorboard is installed
    OUTPUT/checkpoints/       see distill.checkpoint
    OUTPUT/student/           the final student (save_pretrained + tokenizer)
    OUTPUT/summary.json       what train() returned (with grad_norms and grad_share, distill.grad_shares)
    OUTPUT/data/, cache/      prepared windows (distill.data) and the frozen-prefix cache (distill.cache)

Only the main process writes; on the others the writing methods do nothing, so the loop
needs no `if main` around its records.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sensekit.errors import InputError
from sensekit.fs import write_atomic

from .checkpoint import check_same_run, checkpoint_folders
from .config import CONFIG_FILE, DistillConfig

__all__ = ["RunFolder", "RunLog", "METRICS_FILE", "EVAL_FILE"]

METRICS_FILE = "metrics.jsonl"
EVAL_FILE = "eval.jsonl"


class RunFolder:
    def __init__(self, path: str | Path, main: bool) -> None:
        self.path = Path(path)
        self.main = main
        self.checkpoints = self.path / "checkpoints"
        self.student = self.path / "student"
        self.cache = self.path / "cache"
        self.metrics = self.path / METRICS_FILE
        if main:
            self.path.mkdir(parents=True, exist_ok=True)

    def resume_point(self, resume: bool, cfg: DistillConfig | None = None) -> Path | None:
        """The checkpoint to resume from (None for a new run); refuse a new run over an old one, and vice versa.
        With `cfg`, a resume whose settings differ from the run's config.toml is refused here, before any work
        (the checkpoint itself is checked again when it loads)."""
        found = checkpoint_folders(self.checkpoints)
        if not resume and found:
            raise InputError(
                f"{self.path} already holds checkpoints of a run; pass --resume to continue it "
                "or choose another --output-dir"
            )
        if resume and not found:
            raise InputError(
                f"--resume: no checkpoint in {self.checkpoints}; start a run there first (without --resume)"
            )
        if resume and cfg is not None and (self.path / CONFIG_FILE).is_file():
            check_same_run(DistillConfig.from_toml(self.path / CONFIG_FILE).to_dict(), cfg)
        return found[-1] if resume else None

    def write_setup(self, cfg: DistillConfig, info: dict[str, Any]) -> None:
        """config.toml (the resolved config) and run.json (`info`)."""
        if self.main:
            cfg.save(self.path)
            write_atomic(self.path / "run.json", json.dumps(info, indent=2))

    def open_log(self, resumed_at: int | None) -> "RunLog":
        """The step and eval logs: a resumed run drops the lines after its checkpoint, a new run starts them empty."""
        if self.main:
            for name in (METRICS_FILE, EVAL_FILE):
                if resumed_at is None:
                    (self.path / name).unlink(missing_ok=True)
                else:
                    _truncate_jsonl(self.path / name, resumed_at)
        return RunLog(self.path, self.main)

    def read_metrics(self) -> list[dict[str, Any]]:
        """The rows of metrics.jsonl (main process; [] elsewhere or before the first step)."""
        if not self.main or not self.metrics.is_file():
            return []
        lines = self.metrics.read_text(encoding="utf-8").splitlines()
        return [json.loads(ln) for ln in lines if ln.strip()]

    def write_summary(self, summary: dict[str, Any]) -> None:
        if self.main:
            write_atomic(self.path / "summary.json", json.dumps(summary, indent=2))


class RunLog:
    """metrics.jsonl / eval.jsonl, plus TensorBoard when it is installed (main process only)."""

    def __init__(self, out: Path, enabled: bool) -> None:
        self.enabled = enabled
        self.out = out
        self.tb = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tensorboard"))
            except Exception:  # noqa: BLE001  (tensorboard absent or broken: the JSONL logs suffice)
                self.tb = None

    def step(self, row: dict[str, Any]) -> None:
        self._write(METRICS_FILE, "train/", row)

    def evaluation(self, row: dict[str, Any]) -> None:
        self._write(EVAL_FILE, "eval/", row)

    def _write(self, name: str, prefix: str, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.out / name, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
        if self.tb is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.tb.add_scalar(prefix + k, v, row["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _truncate_jsonl(path: Path, last_step: int) -> None:
    """Keep the lines of steps <= last_step (those a resumed run does not write again). A line cut short by
    a killed run (no JSON) is dropped with the rest after the checkpoint."""
    if not path.is_file():
        return
    keep = []
    for ln in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            if ln.strip() and json.loads(ln)["step"] <= last_step:
                keep.append(ln)
        except (ValueError, KeyError, TypeError):
            continue
    write_atomic(path, "".join(ln + "\n" for ln in keep))
