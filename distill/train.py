"""The DSKD trainer (docs/method.md section 2), readable top to bottom.

    L = L_KD + L_CE + lambda * (L_sense_pos + L_sense_neg) + lambda_h * L_hidden

A config and a trainer, as TRL pairs them: `DistillConfig` says what to run, `Trainer(cfg)` holds the run's
state (accelerator, teacher, sense targets, student, windows, batch order, margins, optimizer state, records)
and `Trainer.train()` runs it. `train(cfg)` is the one-call form.

Set-up: the store is checked against the teacher and turned into `SenseTargets`, the student is built, the
windows prepared, then AdamW with a cosine schedule and warm-up runs on `accelerate`: one CPU process here, DDP
on GPUs with `accelerate launch -m distill.cli --store ... --data ...`. lambda = 0 is the KD baseline: the
same data order, seeds and code path, only the sense term is skipped (its sampling has its own generator, so
nothing else changes); lambda_h > 0 adds hidden-state distillation, MSE_d(h_t, g_t), the control that needs
no dictionary. Progress goes to a callback; nothing prints.

The pieces live beside it: the batch order in `distill.batches`, the start-up self-checks in `distill.checks`,
the margin rule in `distill.margins`, one optimizer step in `distill.step`, the loss table in `distill.terms`,
the per-term gradient norms in `distill.grad_shares`, the run folder's records in `distill.run_folder`,
checkpoints in `distill.checkpoint`.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from typing import Any

import torch

from sensekit.errors import InputError
from sensekit.model.families import TeacherLogits
from sensekit.model.layers import build_truncated
from sensekit.model.store_check import check_store_matches
from sensekit.pause_points import pause_point
from sensekit.progress import Progress, no_progress

from .batches import BatchOrder
from .checkpoint import TrainState, load_checkpoint, save_checkpoint
from .checks import startup_checks
from .config import DistillConfig
from .data import Windows, prepare_windows
from .grad_shares import grad_summary
from .margins import Margins, resolve_margins
from .run_folder import RunFolder
from .step import NonFiniteLoss, RunInputs, Stepper, due
from .student import DistillStudent, load_hf_student, save_student
from .targets import SenseTargets
from .terms import TERMS, term_weights

__all__ = ["train", "Trainer", "Stepper", "RunInputs", "BatchOrder", "param_groups", "NonFiniteLoss", "TERMS"]

SENSE_SEED_OFFSET = 0x5E45E


def train(
    cfg: DistillConfig, *, resume: bool = False, callback: Progress | None = None, teacher=None
) -> dict[str, Any]:
    """Run a distillation (`Trainer(cfg, ...).train(resume)`). Returns its summary; raises SensekitError on bad
    input. See `Trainer` for the progress stages."""
    return Trainer(cfg, callback=callback, teacher=teacher).train(resume=resume)


class Trainer:
    """One distillation run and its state.

    Progress goes to `callback(stage, done, total, **info)` (sensekit.progress): "status"/"warning" (message),
    "data" (windows read), "start" (start, total), "step" (step, total, **the metrics row), "eval" (step, total,
    **held-out metrics), "checkpoint" (step, total), "done" (total, total, **summary). `teacher`: an already
    loaded teacher (else cfg.teacher is loaded).
    """

    def __init__(self, cfg: DistillConfig, *, callback: Progress | None = None, teacher=None) -> None:
        self.cfg = cfg
        self.callback = callback
        self.teacher = teacher
        # set by _set_up()
        self.acc: Any = None
        self.emit: Progress = no_progress
        self.folder: RunFolder | None = None  # the run's output folder
        self.inputs: RunInputs | None = None
        self.model: Any = None  # the prepared (possibly DDP-wrapped) student
        self.state: TrainState | None = None
        self.order: BatchOrder | None = None
        self.eval_windows: Windows | None = None
        self.margins: Margins | None = None
        self.total = 0
        self.lr = 0.0
        self.start = 0
        # set by the loop
        self.stepper: Stepper | None = None
        self.last: dict[str, Any] = {}
        self.evals: list[dict[str, Any]] = []

    # -- the run ------------------------------------------------------------------------
    def train(self, resume: bool = False) -> dict[str, Any]:
        """Set up, run the optimizer steps (evaluating and checkpointing on their schedules and at the end),
        save the student and the summary. Returns the summary (steps, last metrics, eval, folders, grad shares)."""
        self._set_up(resume)
        self.stepper = Stepper(self.cfg, self.acc, self.inputs, self.model, self.state, self.margins)
        log = self.folder.open_log(resumed_at=self.start if resume else None)
        self.emit(
            "start",
            self.start,
            self.total,
            windows=len(self.inputs.windows),
            trainable_parameters=self.n_trainable,
            targets=self.inputs.targets.summary() if self.inputs.targets else None,
            device=str(self.acc.device),
        )
        t0 = time.perf_counter()
        try:
            self._loop(log)
        finally:
            log.close()
            if self.inputs.cache is not None:
                self.inputs.cache.flush()
        summary = self._finish(t0)
        self.emit("done", self.total, self.total, **summary)
        return summary

    def _set_up(self, resume: bool) -> None:
        """Everything before the first step: refuse bad input early, load, check, and write run.json."""
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        cfg = self.cfg
        cfg.validate_for_run()
        self.acc = acc = Accelerator(mixed_precision=_mixed_precision(cfg), cpu=cfg.device == "cpu")
        if self.callback is not None and acc.is_main_process:  # one progress display, the main process's
            self.emit = self.callback
        self.folder = RunFolder(cfg.output_dir, acc.is_main_process)
        resume_from = self.folder.resume_point(resume, cfg)  # a changed config is refused here, before any work
        set_seed(cfg.seed)

        # the store must come from this teacher; the student, then the data (it may need the teacher to generate)
        self.teacher, targets = _teacher_and_targets(cfg, self.teacher, acc.device, self.emit)
        model = _student(cfg, self.teacher, acc.device)
        windows, self.eval_windows = _windows(cfg, self.teacher, acc, self.emit)
        self.order = BatchOrder.for_run(cfg, len(windows), acc)
        self.total = cfg.max_steps or max(1, math.ceil(cfg.epochs * self.order.steps_per_epoch))
        cache = _prefix_cache(cfg, self.teacher, model, windows, self.folder) if cfg.cache else None
        self.inputs = RunInputs(self.teacher, TeacherLogits(self.teacher), targets, windows, cache)
        checks = startup_checks(cfg, self.inputs, model, self.order.batches(0)[0], acc, self.emit)
        self.margins = resolve_margins(cfg, self.inputs, self.order, acc)
        if self.margins.record.get("rule"):
            self.emit("status", message=f"margins: {self.margins.record['rule']}")

        self._optimisation(model)
        self.start = load_checkpoint(resume_from, cfg, self.state) if resume_from is not None else 0
        self.folder.write_setup(
            cfg,
            {**self._run_record(), "trainable_parameters": self.n_trainable, "margins": self.margins.record, **checks},
        )

    def _optimisation(self, model: DistillStudent) -> None:
        """AdamW over the trainable parameters (lr x processes, as the paper), warm-up then cosine decay: the
        prepared model, the TrainState a checkpoint restores and the effective lr."""
        from transformers import get_cosine_schedule_with_warmup

        cfg, acc = self.cfg, self.acc
        self.lr = effective_lr(cfg, acc.num_processes)
        optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=self.lr, betas=(0.9, 0.999), eps=1e-8)
        scheduler = get_cosine_schedule_with_warmup(optimizer, round(cfg.warmup_frac * self.total), self.total)
        self.model, optimizer = acc.prepare(model, optimizer)
        inner: DistillStudent = acc.unwrap_model(self.model)
        sense_gen = torch.Generator(device=acc.device)  # its own stream: lambda = 0 changes nothing else
        sense_gen.manual_seed(cfg.seed + SENSE_SEED_OFFSET + acc.process_index)
        self.state = TrainState(inner, optimizer, scheduler, sense_gen)

    @property
    def n_trainable(self) -> int:
        return sum(p.numel() for _, p in self.state.model.trainable_named_parameters())

    def _run_record(self) -> dict[str, Any]:
        """What run.json records about the run's inputs and set-up."""
        cfg, teacher, acc, inputs = self.cfg, self.teacher, self.acc, self.inputs
        return {
            "teacher": teacher.name,
            "teacher_revision": teacher.revision,
            "hidden_size": teacher.hidden_size,
            "vocab_size": teacher.vocab_size,
            "store": str(cfg.store),
            "targets": inputs.targets.summary() if inputs.targets else None,
            "student": cfg.student,
            "student_selection": getattr(self.state.model.lm.config, "sensekit", None),
            "windows": len(inputs.windows),
            "window_prefix_tokens": inputs.windows.n_prefix,
            "target_tokens": inputs.windows.n_targets,
            "eval_windows": len(self.eval_windows) if self.eval_windows is not None else 0,
            "steps": self.total,
            "steps_per_epoch": self.order.steps_per_epoch,
            "processes": acc.num_processes,
            "lr": cfg.lr,
            "effective_lr": self.lr,
            "mixed_precision": acc.mixed_precision,
            "device": str(acc.device),
        }

    def _loop(self, log) -> None:
        """The optimizer steps from self.start; evaluation and checkpoints on their schedules and at the end."""
        cfg, total = self.cfg, self.total
        t0 = time.perf_counter()
        for step in range(self.start, total):
            number, done = step + 1, step + 1 == total
            row = {
                "step": number,
                "epoch": self.order.epoch_at(step),
                **self.stepper.step(self.order.batches(step), number),
                "elapsed_s": round(time.perf_counter() - t0, 3),
            }
            log.step(row)
            self.last = row
            self.emit("step", number, total, **row)
            if self.eval_windows is not None and (due(cfg.eval_every, number) or done):
                self.evals.append(self._evaluate(number))
                log.evaluation(self.evals[-1])
                self.emit("eval", number, total, **self.evals[-1])
            if due(cfg.save_every, number) or done:
                self._checkpoint(number)

    def _checkpoint(self, number: int) -> None:
        if self.inputs.cache is not None:
            self.inputs.cache.flush()
        self.acc.wait_for_everyone()
        if self.acc.is_main_process:
            save_checkpoint(self.folder.checkpoints, number, self.cfg, self.state)
            pause_point("distill-checkpoint")  # tests SIGKILL distill here (sensekit/pause_points.py)
        self.emit("checkpoint", number, self.total)

    def _evaluate(self, step: int) -> dict[str, Any]:
        from .evaluate import evaluate

        cfg, acc, inner = self.cfg, self.acc, self.state.model
        result = evaluate(
            inner,
            self.teacher,
            self.eval_windows,
            cfg.batch_size,
            acc.device,
            tau=cfg.tau,
            max_batches=cfg.eval_batches,
            autocast=acc.autocast,
            teacher_logits=self.inputs.teacher_logits,
        )
        if cfg.truncated:
            inner.eval()
        return {"step": step, **result}

    def _finish(self, t0: float) -> dict[str, Any]:
        """Save the student as a plain Hugging Face model and write the run's summary (which it returns)."""
        cfg, acc, folder, teacher = self.cfg, self.acc, self.folder, self.teacher
        acc.wait_for_everyone()
        if acc.is_main_process:
            info = {
                "made_by": "sensekit distill",
                "teacher": teacher.name,
                "teacher_revision": teacher.revision,
                "store": str(cfg.store),
                "steps": self.total,
                **term_weights(cfg),  # the loss table's weight fields (lambda_sense, lambda_hidden)
                "effective_lr": self.lr,
                "config": cfg.to_dict(),
            }
            save_student(self.state.model, teacher.tokenizer, folder.student, info=info)
        grad_norms, grad_share = grad_summary(folder.read_metrics())  # the whole run's, across resumes
        summary = {
            "steps": self.total,
            "last": self.last,
            "eval": self.evals[-1] if self.evals else None,
            "output_dir": str(folder.path),
            "student_dir": str(folder.student),
            "metrics": str(folder.metrics),
            "elapsed_s": round(time.perf_counter() - t0, 3),
            "cache_hits": self.stepper.cache_hits,
            "loss_weights": term_weights(cfg),
            "grad_norms": grad_norms,
            "grad_share": grad_share,
        }
        folder.write_summary(summary)
        return summary


# -- the set-up steps ---------------------------------------------------------------------
def _teacher_and_targets(cfg: DistillConfig, teacher, device, emit: Progress):
    """Load the teacher (unless given), check the store against it, and turn the store into SenseTargets.

    The store opens first, so a wrong path fails before a teacher loads. The KD baseline (lambda = 0)
    checks the store but holds no dictionary on the device (targets None), unless the hidden term
    needs the sensed positions (--hidden-positions sensed).
    """
    from sensekit.store import open_store

    store = open_store(cfg.store)
    try:
        if teacher is None:
            from sensekit.model.teacher import load_teacher

            emit("status", message=f"loading teacher {cfg.teacher}")
            teacher = load_teacher(cfg.teacher, device=str(device))
        check_store_matches(store, teacher, key_mode="next")
        targets = (
            SenseTargets.from_store(store, teacher.vocab_size, device, dtype=getattr(torch, cfg.sense_dtype))
            if cfg.needs_senses
            else None
        )
    finally:
        store.close()
    if targets is not None and int(targets.has_rel.sum()) == 0:
        emit(
            "warning",
            message=f"store {cfg.store} links no token with senses to a synonym or antonym with "
            "senses: the sense loss will be zero",
        )
    return teacher, targets


def _student(cfg: DistillConfig, teacher, device) -> DistillStudent:
    """The truncated teacher (its top layers trainable) or any HF causal LM, with a projection if its width differs."""
    if cfg.truncated:
        lm = build_truncated(teacher.model, cfg.student_selection, cfg.train_selection)
        lm.config.sensekit["teacher"] = teacher.name  # config.json then says where its layers came from
        model = DistillStudent(
            lm, teacher.hidden_size, teacher.vocab_size, split_at=lm.config.sensekit["trained_layers"][0]
        )
        model.eval()  # dropout off: the frozen modules are the teacher's own and must stay deterministic
        return model
    lm = load_hf_student(cfg.student, teacher, device)
    model = DistillStudent(lm, teacher.hidden_size, teacher.vocab_size).to(device)
    model.train()
    return model


def _windows(cfg: DistillConfig, teacher, acc, emit: Progress) -> tuple[Windows, Windows | None]:
    """Training windows, and the held-out ones: --eval-data, else the last --eval-holdout training windows."""
    with acc.main_process_first():  # the main process prepares and saves them; the others read its copy
        windows = prepare_windows(cfg, teacher, "train", progress=lambda name, n: emit("data", n, None, name=name))
        eval_windows: Windows | None = None
        if cfg.eval_data:
            eval_windows = prepare_windows(cfg, teacher, "eval", paths=cfg.eval_data, mode="corpus")
    if not cfg.eval_data and cfg.eval_holdout:
        if cfg.eval_holdout >= len(windows):
            raise InputError(f"--eval-holdout {cfg.eval_holdout} leaves no training windows (there are {len(windows)})")
        eval_windows = windows.subset(slice(len(windows) - cfg.eval_holdout, None))
        windows = windows.subset(slice(0, len(windows) - cfg.eval_holdout))
    return windows, eval_windows


def _prefix_cache(cfg: DistillConfig, teacher, model: DistillStudent, windows: Windows, folder: RunFolder):
    """The frozen-prefix cache, keyed by the windows and everything that shapes the frozen layers' output."""
    from .cache import PrefixCache

    selection = model.lm.config.sensekit
    shape = [teacher.name, selection["teacher_layers"], selection["trained_layers"], windows.n_prefix]
    fp = hashlib.sha256(windows.ids.tobytes() + json.dumps([*shape, cfg.mixed_precision]).encode()).hexdigest()
    return PrefixCache(folder.cache, len(windows), windows.seq_len, teacher.hidden_size, fp)


# -- small helpers ----------------------------------------------------------------------
def effective_lr(cfg: DistillConfig, processes: int) -> float:
    """--lr x the number of processes (the paper scales by GPUs), or --lr as given with --no-scale-lr."""
    return cfg.lr * (processes if cfg.scale_lr else 1)


def _mixed_precision(cfg: DistillConfig) -> str:
    if cfg.mixed_precision != "auto":
        return cfg.mixed_precision
    if cfg.device != "cpu" and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "no"


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: weight decay on matrices, none on norms and biases (1-d parameters)."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
