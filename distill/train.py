"""The DSKD training loop (docs/method.md section 2), readable top to bottom.

    L = L_KD + L_CE + lambda * (L_sense_pos + L_sense_neg) + lambda_h * L_hidden

`train(cfg)` loads the store and the teacher (refusing a mismatch), turns the store into
`SenseTargets`, builds the student, prepares the windows, then runs AdamW with a cosine
schedule and warm-up on `accelerate`: one CPU process here, DDP on GPUs with
`accelerate launch -m distill.cli --store ... --data ...`. lambda = 0 is the KD baseline:
the same data order, seeds and code path, only the sense term is skipped (its sampling has
its own generator, so nothing else changes); lambda_h > 0 adds hidden-state distillation,
MSE_d(h_t, g_t), the control that needs no dictionary. Progress goes to a callback; nothing
prints.

Before the first step, on the first batch, the run checks what it relies on: the teacher's
logits from g_t equal its own forward's (else it runs that forward for them), the student's
head equals its own forward, and with the cache the split forward equals the full one.

The run folder's layout and records live in `distill.run_folder`, checkpoints in
`distill.checkpoint`; `Stepper` below is one optimizer step.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sensekit.errors import InputError, SensekitError
from sensekit.hooks import pause_point
from sensekit.model.families import TeacherLogits, logits_difference, max_difference, tolerance
from sensekit.model.layers import build_truncated
from sensekit.model.store_check import check_store_matches
from sensekit.progress import Progress, no_progress

from .checkpoint import TrainState, load_checkpoint, save_checkpoint
from .config import DistillConfig
from .data import Windows, prepare_windows
from .losses import candidate_distances, margin_quantile
from .run_folder import RunFolder
from .student import DistillStudent, load_hf_student, save_student
from .targets import SenseTargets
from .terms import TERMS, StepTensors, add_groups, compute_terms, term_weights

__all__ = [
    "train",
    "Stepper",
    "BatchOrder",
    "param_groups",
    "NonFiniteLoss",
    "TERMS",
]

SENSE_SEED_OFFSET = 0x5E45E
MARGIN_SEED_OFFSET = 0x3A5617  # the start-up sampling of 'auto' margins has its own stream


class NonFiniteLoss(SensekitError):
    """A loss term became NaN or inf."""


# -- the run ----------------------------------------------------------------------------
def train(
    cfg: DistillConfig, *, resume: bool = False, callback: Progress | None = None, teacher=None
) -> dict[str, Any]:
    """Run a distillation. Returns a summary (steps, last metrics, eval, folders). Raises SensekitError on bad input.

    Progress goes to `callback(stage, done, total, **info)` (sensekit.progress): "status"/"warning" (message),
    "data" (windows read), "start" (start, total), "step" (step, total, **the metrics row), "eval" (step, total,
    **held-out metrics), "checkpoint" (step, total), "done" (total, total, **summary).
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    cfg.validate_for_run()
    acc = Accelerator(mixed_precision=_mixed_precision(cfg), cpu=cfg.device == "cpu")
    device, main = acc.device, acc.is_main_process
    emit = callback if (callback is not None and main) else no_progress  # one progress display, the main process's
    run = RunFolder(cfg.output_dir, main)
    resume_from = run.resume_point(resume, cfg)  # a changed config is refused here, before any work
    set_seed(cfg.seed)

    # the store must come from this teacher; the student, then the data (it may need the teacher to generate)
    teacher, targets = _teacher_and_targets(cfg, teacher, device, emit)
    model = _student(cfg, teacher, device)
    windows, eval_windows = _windows(cfg, teacher, acc, emit)
    order = BatchOrder(cfg.seed, len(windows), cfg.batch_size, cfg.grad_accum, acc.num_processes, acc.process_index)
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * order.steps_per_epoch))
    cache = _prefix_cache(cfg, teacher, model, windows, run.cache) if cfg.cache else None
    teacher_logits = TeacherLogits(teacher)
    checks = startup_checks(cfg, teacher, model, windows, order.batches(0)[0], acc, teacher_logits, emit)
    margins = resolve_margins(cfg, teacher, targets, windows, order, acc)
    if margins["auto"]:
        emit("status", message=f"margins: beta_p {margins['beta_p']}, beta_n {margins['beta_n']} ({margins['rule']})")

    model, state, lr = _optimisation(cfg, model, acc, total)
    start = load_checkpoint(resume_from, cfg, state) if resume_from is not None else 0
    inner = state.model
    n_trainable = sum(p.numel() for _, p in inner.trainable_named_parameters())
    run.write_setup(
        cfg,
        {
            **_run_record(cfg, teacher, targets, inner, windows, eval_windows, total, order, acc, lr),
            "trainable_parameters": n_trainable,
            "margins": margins,
            **checks,
        },
    )
    log = run.open_log(resumed_at=start if resume else None)
    emit(
        "start",
        start,
        total,
        windows=len(windows),
        trainable_parameters=n_trainable,
        targets=targets.summary() if targets else None,
        device=str(device),
    )

    # the loop: one optimizer step per iteration; evaluate and checkpoint on their schedules and at the end
    stepper = Stepper(
        cfg,
        acc,
        teacher,
        model,
        state.optimizer,
        state.scheduler,
        targets,
        windows,
        cache,
        state.sense_gen,
        teacher_logits=teacher_logits,
    )
    stepper.beta_p, stepper.beta_n = margins["beta_p"], margins["beta_n"]
    t0 = time.perf_counter()
    try:
        last, evals = _loop(
            cfg,
            acc,
            run,
            log,
            stepper,
            state,
            order,
            range(start, total),
            eval_windows,
            cache,
            teacher,
            teacher_logits,
            emit,
        )
    finally:
        log.close()
        if cache is not None:
            cache.flush()

    summary = _finish(cfg, acc, run, inner, teacher, total, lr, last, evals, stepper.cache_hits, t0)
    emit("done", total, total, **summary)
    return summary


def _finish(cfg, acc, run, inner, teacher, total, lr, last, evals, cache_hits, t0) -> dict[str, Any]:
    """Save the student as a plain Hugging Face model and write the run's summary (which it returns)."""
    acc.wait_for_everyone()
    if acc.is_main_process:
        info = {
            "made_by": "sensekit distill",
            "teacher": teacher.name,
            "teacher_revision": teacher.revision,
            "store": str(cfg.store),
            "steps": total,
            **term_weights(cfg),  # the loss table's weight fields (lambda_sense, lambda_hidden)
            "effective_lr": lr,
            "config": cfg.to_dict(),
        }
        save_student(inner, teacher.tokenizer, run.student, info=info)
    summary = {
        "steps": total,
        "last": last,
        "eval": evals[-1] if evals else None,
        "output_dir": str(run.path),
        "student_dir": str(run.student),
        "metrics": str(run.metrics),
        "elapsed_s": round(time.perf_counter() - t0, 3),
        "cache_hits": cache_hits,
        "loss_weights": term_weights(cfg),
    }
    run.write_summary(summary)
    return summary


def _optimisation(cfg: DistillConfig, model, acc, total: int):
    """AdamW over the trainable parameters (lr x processes, as the paper), warm-up then cosine decay.
    Returns (the prepared model, the TrainState a checkpoint restores, the effective lr)."""
    from transformers import get_cosine_schedule_with_warmup

    lr = effective_lr(cfg, acc.num_processes)
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=lr, betas=(0.9, 0.999), eps=1e-8)
    scheduler = get_cosine_schedule_with_warmup(optimizer, round(cfg.warmup_frac * total), total)
    model, optimizer = acc.prepare(model, optimizer)
    inner: DistillStudent = acc.unwrap_model(model)
    sense_gen = torch.Generator(device=acc.device)  # its own stream: lambda = 0 changes nothing else
    sense_gen.manual_seed(cfg.seed + SENSE_SEED_OFFSET + acc.process_index)
    return model, TrainState(inner, optimizer, scheduler, sense_gen), lr


def _run_record(cfg, teacher, targets, inner, windows, eval_windows, total, order, acc, lr) -> dict[str, Any]:
    """What run.json records about the run's inputs and set-up."""
    return {
        "teacher": teacher.name,
        "teacher_revision": teacher.revision,
        "hidden_size": teacher.hidden_size,
        "vocab_size": teacher.vocab_size,
        "store": str(cfg.store),
        "targets": targets.summary() if targets else None,
        "student": cfg.student,
        "student_selection": getattr(inner.lm.config, "sensekit", None),
        "windows": len(windows),
        "window_prefix_tokens": windows.n_prefix,
        "target_tokens": windows.n_targets,
        "eval_windows": len(eval_windows) if eval_windows is not None else 0,
        "steps": total,
        "steps_per_epoch": order.steps_per_epoch,
        "processes": acc.num_processes,
        "lr": cfg.lr,
        "effective_lr": lr,
        "mixed_precision": acc.mixed_precision,
        "device": str(acc.device),
    }


def _loop(
    cfg, acc, run, log, stepper, state, order, steps: range, eval_windows, cache, teacher, teacher_logits, emit
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The optimizer steps; evaluation and checkpoints on their schedules and at the end. Returns (last row, evals)."""
    t0 = time.perf_counter()
    last: dict[str, Any] = {}
    evals: list[dict[str, Any]] = []
    total = steps.stop
    for step in steps:
        number, done = step + 1, step + 1 == total
        row = {
            "step": number,
            "epoch": order.epoch_at(step),
            **stepper.step(order.batches(step), number),
            "elapsed_s": round(time.perf_counter() - t0, 3),
        }
        log.step(row)
        last = row
        emit("step", number, total, **row)
        if eval_windows is not None and (_due(cfg.eval_every, number) or done):
            evals.append(_evaluate(cfg, state.model, teacher, eval_windows, acc.device, acc, number, teacher_logits))
            log.evaluation(evals[-1])
            emit("eval", number, total, **evals[-1])
        if _due(cfg.save_every, number) or done:
            if cache is not None:
                cache.flush()
            acc.wait_for_everyone()
            if acc.is_main_process:
                save_checkpoint(run.checkpoints, number, cfg, state)
                pause_point("distill-checkpoint")  # tests SIGKILL distill here (sensekit/hooks.py)
            emit("checkpoint", number, total)
    return last, evals


# -- the set-up steps of train() ------------------------------------------------------------
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
        check_store_matches(store, teacher, key="next")
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


def _prefix_cache(cfg: DistillConfig, teacher, model: DistillStudent, windows: Windows, folder: Path):
    """The frozen-prefix cache, keyed by the windows and everything that shapes the frozen layers' output."""
    from .cache import PrefixCache

    selection = model.lm.config.sensekit
    fp = hashlib.sha256(
        windows.ids.tobytes()
        + json.dumps(
            [
                teacher.name,
                selection["teacher_layers"],
                selection["trained_layers"],
                windows.n_prefix,
                cfg.mixed_precision,
            ]
        ).encode()
    ).hexdigest()
    return PrefixCache(folder, len(windows), windows.seq_len, teacher.hidden_size, fp)


def effective_lr(cfg: DistillConfig, processes: int) -> float:
    """--lr x the number of processes (the paper scales by GPUs), or --lr as given with --no-scale-lr."""
    return cfg.lr * (processes if cfg.scale_lr else 1)


def startup_checks(
    cfg: DistillConfig,
    teacher,
    model: DistillStudent,
    windows: Windows,
    rows: np.ndarray,
    acc,
    teacher_logits: TeacherLogits,
    emit: Progress,
) -> dict[str, Any]:
    """On the first batch (rows [B]): the teacher's logits path, the student's head, and with --cache the split.

    Where the teacher's head of g_t is not its own output (a family step this code does not know), the run uses
    the teacher's own forward for its logits; a student that differs is refused, as is an inexact split.
    """
    if cfg.truncated and teacher.dtype != torch.float32 and acc.mixed_precision == "no":
        raise InputError(
            f"the teacher is in {str(teacher.dtype).replace('torch.', '')} and the student's trained "
            "layers in float32: they meet only under autocast; pass --mixed-precision bf16 (or fp16)"
        )
    input_ids, attn, _ = windows.batch(rows, acc.device)  # [B, T] each
    t_diff = teacher_logits.check(input_ids, attn)
    if teacher_logits.own_forward:
        emit(
            "warning",
            message=f"teacher {teacher.name}: its LM head of g_t differs from its own logits by "
            f"{t_diff:.3g}; using its own forward for the teacher's logits (slower)",
        )
    exact = acc.mixed_precision == "no" and teacher.dtype == torch.float32
    with torch.no_grad(), acc.autocast():
        s_diff, allowed = logits_difference(model.lm, input_ids, attn)
        if not s_diff <= allowed:
            raise InputError(
                f"student {cfg.student}: its LM head of its final hidden state differs from its own "
                f"logits by {s_diff:.3g} (> {allowed:.3g}); this architecture cannot be a student here"
            )
        split_diff = None
        if cfg.cache:
            full = model.final_hidden(input_ids, attn)  # [B, T, d]
            prefix = model.prefix(input_ids, attn).float()  # as the cache stores it
            split = model.final_hidden(None, attn, prefix.to(_trainable_dtype(model, prefix.dtype)))
            split_diff, scale = max_difference(split, full, attn.bool())
            allowed = tolerance(torch.float32 if exact else torch.bfloat16, scale)
            if not split_diff <= allowed:
                raise InputError(
                    f"the frozen-prefix cache is not exact for {type(model.lm).__name__}: the split "
                    f"forward differs from the full one by {split_diff:.3g} (> {allowed:.3g}) on the "
                    "first batch; drop --cache"
                )
    return {
        "teacher_logits": "own forward" if teacher_logits.own_forward else "lm_head(g)",
        "check_teacher_logits_diff": t_diff,
        "check_student_logits_diff": s_diff,
        "check_split_diff": split_diff,
    }


@torch.no_grad()
def resolve_margins(cfg: DistillConfig, teacher, targets: SenseTargets | None, windows: Windows, order, acc) -> dict:
    """beta_p and beta_n in force, for run.json. A number stays as given; 'auto' is the stated quantile of
    MSE_d(g_t, kept candidate) over the first --margin-batches micro-batches (the synonym candidates for beta_p,
    the antonym candidates for beta_n), sampled as the sense term samples them but from their own stream (so the
    run's data order and sense sampling are unchanged), averaged over processes. No candidate observed -> 0."""
    out: dict[str, Any] = {
        "auto": list(cfg.auto_margins),
        "setting": {"beta_p": cfg.beta_p, "beta_n": cfg.beta_n},
        "beta_p": cfg.margin("beta_p"),
        "beta_n": cfg.margin("beta_n"),
    }
    if not cfg.auto_margins:
        return out
    out["rule"] = (
        f"quantile {cfg.beta_p_quantile} (beta_p) / {cfg.beta_n_quantile} (beta_n) of MSE_d(g_t, kept candidate) "
        f"over the first {cfg.margin_batches} micro-batches"
    )
    found = {"beta_p": [], "beta_n": []}
    if targets is not None:
        gen = torch.Generator(device=acc.device)
        gen.manual_seed(cfg.seed + MARGIN_SEED_OFFSET + acc.process_index)
        for micro in range(cfg.margin_batches):
            rows = order.batches(micro // cfg.grad_accum)[micro % cfg.grad_accum]
            input_ids, attn, labels = windows.batch(rows, acc.device)
            g = teacher.final_hidden(input_ids, attn)  # [B, T, d]
            s = targets.gather_for(cfg, labels, g, gen)
            anchor, act = g[s.b, s.t], s.active.unsqueeze(1)  # [P, d], [P, 1]
            found["beta_p"].append(candidate_distances(anchor, s.positives, s.pos_mask & act))
            found["beta_n"].append(candidate_distances(anchor, s.negatives, s.neg_mask & act))
    for name, q in (("beta_p", cfg.beta_p_quantile), ("beta_n", cfg.beta_n_quantile)):
        dist = torch.cat(found[name]) if found[name] else torch.zeros(0)
        out[f"{name}_candidates_seen"] = int(dist.numel())
        if dist.numel():
            out[f"{name}_distance_quantiles"] = {
                str(p): margin_quantile(dist, p) for p in (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
            }
        if name in cfg.auto_margins:
            value = torch.tensor(margin_quantile(dist, q) or 0.0, device=acc.device, dtype=torch.float64)
            if acc.num_processes > 1:
                value = acc.reduce(value, reduction="mean")
            out[name] = float(value)
    return out


def _trainable_dtype(model: DistillStudent, default: torch.dtype) -> torch.dtype:
    params = [p for _, p in model.trainable_named_parameters()]
    return params[0].dtype if params else default


class BatchOrder:
    """Which windows each process reads at each micro-step: a fresh permutation per epoch, a function of (seed, epoch).

    A global micro-step reads B * processes consecutive rows of its epoch's permutation; this process takes its
    own B of them. An optimizer step is `grad_accum` consecutive micro-steps (it may straddle two epochs).
    """

    def __init__(
        self, seed: int, n_windows: int, batch_size: int, grad_accum: int, processes: int, process_index: int
    ) -> None:
        self.seed, self.n_windows, self.batch_size, self.grad_accum = seed, n_windows, batch_size, grad_accum
        self.processes, self.process_index = processes, process_index
        self.micro_per_epoch = n_windows // (batch_size * processes)
        self.steps_per_epoch = self.micro_per_epoch // grad_accum
        if self.steps_per_epoch == 0:
            raise InputError(
                f"{n_windows} training windows are fewer than one optimizer step needs "
                f"({batch_size * processes * grad_accum} = batch size x processes x grad accumulation); "
                "give more data or lower them"
            )
        self._epoch, self._perm = -1, np.empty(0, np.int64)  # the current epoch's permutation, drawn once

    def epoch_at(self, step: int) -> float:
        """Epochs done when optimizer step `step` (0-based) begins."""
        return round(step * self.grad_accum / self.micro_per_epoch, 4)

    def batches(self, step: int) -> list[np.ndarray]:
        """This process's window rows [B] for each micro-step of optimizer step `step` (0-based)."""
        return [self._rows(step * self.grad_accum + micro) for micro in range(self.grad_accum)]

    def _rows(self, micro_step: int) -> np.ndarray:
        epoch, within = divmod(micro_step, self.micro_per_epoch)
        if epoch != self._epoch:
            self._epoch, self._perm = epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n_windows)
        span = self.batch_size * self.processes
        rows = self._perm[within * span : (within + 1) * span]
        return rows[self.process_index * self.batch_size : (self.process_index + 1) * self.batch_size]


# -- small helpers ----------------------------------------------------------------------
def _due(every: int, step: int) -> bool:
    """Whether a periodic action (every N steps; 0 = never) is due after optimizer step `step` (1-based)."""
    return bool(every) and step % every == 0


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


class Stepper:
    """One optimizer step of DSKD (KD when lambda_sense == 0): micro-batches, backward, clipping, AdamW, schedule.

    `train()` drives it; the overhead benchmark times it directly.
    """

    def __init__(
        self,
        cfg: DistillConfig,
        acc,
        teacher,
        model,
        optimizer,
        scheduler,
        targets: SenseTargets | None,
        windows: Windows,
        cache=None,
        sense_gen: torch.Generator | None = None,
        teacher_logits: TeacherLogits | None = None,
    ) -> None:
        self.cfg, self.acc, self.teacher, self.model = cfg, acc, teacher, model
        self.optimizer, self.scheduler, self.targets = optimizer, scheduler, targets
        self.windows, self.cache = windows, cache
        self.inner: DistillStudent = acc.unwrap_model(model)
        self.trainable = [p for _, p in self.inner.trainable_named_parameters()]
        self.teacher_logits = teacher_logits or TeacherLogits(teacher)
        self.device = acc.device
        self.sense_gen = sense_gen
        self.cache_hits = 0
        # the margins in force: the config's numbers; train() sets the 'auto' ones (resolve_margins)
        self.beta_p, self.beta_n = cfg.margin("beta_p") or 0.0, cfg.margin("beta_n") or 0.0

    def micro_step(self, rows: np.ndarray) -> dict[str, torch.Tensor]:
        """Forward one micro-batch (windows `rows`) and return every loss term (scalars with graphs)."""
        cfg, device, inner, cache = self.cfg, self.device, self.inner, self.cache
        input_ids, attn, labels = self.windows.batch(rows, device)  # [B, T] each
        prefix = None
        if cache is not None and cache.has(rows):
            prefix, g = cache.get(rows, device)  # [B, T, d] x2
            self.cache_hits += 1
        else:
            g = self.teacher.final_hidden(input_ids, attn).clone()  # [B, T, d], g_t post-norm
            if cache is not None:
                prefix = inner.prefix(input_ids, attn).float()
                cache.put(rows, prefix, g)
        with torch.no_grad():
            t_logits = self.teacher_logits(g, input_ids, attn)  # [B, T, V]
            sense = None
            if cfg.needs_senses:
                sense = self.targets.gather_for(cfg, labels, g, self.sense_gen)
        if prefix is not None:
            prefix = prefix.to(self.trainable[0].dtype if self.trainable else prefix.dtype)
        with self.acc.autocast():
            logits, h = self.model(input_ids, attn, prefix=prefix)  # [B, T, V], [B, T, d]
        mask = labels >= 0  # [B, T] target positions
        tensors = StepTensors(cfg, logits, h, g, t_logits, labels, mask, sense, self.beta_p, self.beta_n)
        terms = compute_terms(tensors)  # every row of distill.terms.LOSS_TERMS, and the weighted total
        n_active = int(sense.active.sum()) if sense is not None else 0
        terms["_positions"] = torch.tensor(float(n_active), device=device)
        terms["_tokens"] = mask.sum().float()
        n_neg = int((sense.neg_mask & sense.active.unsqueeze(1)).sum()) if sense is not None else 0
        terms["_negatives"] = torch.tensor(float(n_neg), device=device)  # kept antonym candidates
        return terms

    def step(self, batches: list[np.ndarray], number: int) -> dict[str, float]:
        """One optimizer step over the micro-batches `batches` -> lr, the averaged terms, grad norm, and the step's
        sense positions and target tokens (over all micro-batches and processes)."""
        acc, cfg = self.acc, self.cfg
        A = len(batches)
        lr = self.scheduler.get_last_lr()[0]
        sums = {k: 0.0 for k in (*TERMS, "_positions", "_tokens", "_negatives")}
        for micro, rows in enumerate(batches):
            ctx = acc.no_sync(self.model) if micro < A - 1 and acc.num_processes > 1 else _null()
            with ctx:
                terms = self.micro_step(rows)
                # one device sync for all terms (not one per term): stack, then read back once
                values = torch.stack([terms[k].detach().float() for k in sums]).tolist()
                for k, v in zip(sums, values[: len(TERMS)]):
                    if not math.isfinite(v):
                        raise NonFiniteLoss(
                            f"step {number}: the {k} loss is {terms[k].item()}; lower --lr, check "
                            f"the store's vectors, or use --mixed-precision no"
                        )
                acc.backward(terms["total"] / A)
            for k, v in zip(sums, values):
                sums[k] += v
        if cfg.max_grad_norm > 0:
            grad_norm = float(acc.clip_grad_norm_(self.trainable, cfg.max_grad_norm))
        else:
            grads = [p.grad.norm() for p in self.trainable if p.grad is not None]
            grad_norm = float(torch.linalg.vector_norm(torch.stack(grads))) if grads else 0.0
        if not math.isfinite(grad_norm):
            raise NonFiniteLoss(
                f"step {number}: the gradient norm is {grad_norm}; lower --lr or use --mixed-precision no"
            )
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        values = torch.tensor([sums[k] / A for k in TERMS], device=self.device)
        counts = torch.tensor([sums["_positions"], sums["_tokens"], sums["_negatives"]], device=self.device)
        if acc.num_processes > 1:
            values = acc.reduce(values, reduction="mean")  # loss terms: the mean over processes
            counts = acc.reduce(counts, reduction="sum")  # sense positions and target tokens: all processes
        v = values.tolist() + counts.tolist()
        row = add_groups({"lr": lr, **dict(zip(TERMS, v[: len(TERMS)]))})  # + sense = sense_pos + sense_neg
        n = len(TERMS)
        row.update(grad_norm=grad_norm, sense_positions=v[n], tokens=v[n + 1], sense_negatives=v[n + 2])
        return row


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _evaluate(cfg, inner, teacher, windows, device, acc, step, teacher_logits=None) -> dict[str, Any]:
    from .evaluate import evaluate

    result = evaluate(
        inner,
        teacher,
        windows,
        cfg.batch_size,
        device,
        tau=cfg.tau,
        max_batches=cfg.eval_batches,
        autocast=acc.autocast,
        teacher_logits=teacher_logits,
    )
    if cfg.truncated:
        inner.eval()
    return {"step": step, **result}
