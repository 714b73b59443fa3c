"""One optimizer step of DSKD (KD when lambda_sense == 0): micro-batches, backward, clipping, AdamW, schedule.

`Stepper` holds what a step reads: the run's inputs (`RunInputs`: teacher, its logits path, the sense targets,
the windows, the frozen-prefix cache), the prepared model, the `TrainState` a checkpoint restores, and the
margins in force. The trainer (distill.train) drives it; the overhead benchmark times it directly.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sensekit.errors import SensekitError
from sensekit.model.families import TeacherLogits

from .checkpoint import TrainState
from .data import Windows
from .grad_shares import TermGradients
from .margins import Margins
from .student import DistillStudent
from .targets import SenseTargets
from .terms import TERMS, StepTensors, add_groups, compute_terms

__all__ = ["RunInputs", "Stepper", "NonFiniteLoss", "due"]

COUNTS = ("_positions", "_tokens", "_negatives")  # per micro-step counts a row also carries


class NonFiniteLoss(SensekitError):
    """A loss term became NaN or inf."""


@dataclass
class RunInputs:
    """What every step reads and nothing trains: the teacher and the data."""

    teacher: Any  # sensekit.model.teacher.Teacher
    teacher_logits: TeacherLogits  # the teacher's logits path (lm_head(g), or its own forward)
    targets: SenseTargets | None  # None: no senses sampled (the KD baseline)
    windows: Windows
    cache: Any = None  # distill.cache.PrefixCache, or None


def due(every: int, step: int) -> bool:
    """Whether a periodic action (every N steps; 0 = never) is due after optimizer step `step` (1-based)."""
    return bool(every) and step % every == 0


class Stepper:
    """One optimizer step over the micro-batches of a step (see the module docstring)."""

    def __init__(self, cfg, acc, inputs: RunInputs, model, state: TrainState, margins: Margins | None = None) -> None:
        self.cfg, self.acc, self.inputs, self.model, self.state = cfg, acc, inputs, model, state
        self.inner: DistillStudent = acc.unwrap_model(model)
        self.trainable = [p for _, p in self.inner.trainable_named_parameters()]
        self.device = acc.device
        self.margins = margins if margins is not None else Margins.given(cfg)
        self.cache_hits = 0

    def micro_step(self, rows: np.ndarray) -> dict[str, torch.Tensor]:
        """Forward one micro-batch (windows `rows`) and return every loss term (scalars with graphs)."""
        cfg, device, inner, cache, inputs = self.cfg, self.device, self.inner, self.inputs.cache, self.inputs
        input_ids, attn, labels = inputs.windows.batch(rows, device)  # [B, T] each
        prefix = None
        if cache is not None and cache.has(rows):
            prefix, g = cache.get(rows, device)  # [B, T, d] x2
            self.cache_hits += 1
        else:
            g = inputs.teacher.final_hidden(input_ids, attn).clone()  # [B, T, d], g_t post-norm
            if cache is not None:
                prefix = inner.prefix(input_ids, attn).float()
                cache.put(rows, prefix, g)
        with torch.no_grad():
            t_logits = inputs.teacher_logits(g, input_ids, attn)  # [B, T, V]
            sense = None
            if cfg.needs_senses:
                sense = inputs.targets.gather_for(cfg, labels, g, self.state.sense_gen)
        if prefix is not None:
            prefix = prefix.to(inner.trainable_dtype(prefix.dtype))
        with self.acc.autocast():
            logits, h = self.model(input_ids, attn, prefix=prefix)  # [B, T, V], [B, T, d]
        mask = labels >= 0  # [B, T] target positions
        tensors = StepTensors(cfg, logits, h, g, t_logits, labels, mask, sense, self.margins)
        terms = compute_terms(tensors)  # every row of distill.terms.LOSS_TERMS, and the weighted total
        n_active = int(sense.active.sum()) if sense is not None else 0
        terms["_positions"] = torch.tensor(float(n_active), device=device)
        terms["_tokens"] = mask.sum().float()
        n_neg = int((sense.neg_mask & sense.active.unsqueeze(1)).sum()) if sense is not None else 0
        terms["_negatives"] = torch.tensor(float(n_neg), device=device)  # kept antonym candidates
        return terms

    def step(self, batches: list[np.ndarray], number: int) -> dict[str, Any]:
        """One optimizer step over the micro-batches `batches` -> lr, the averaged terms, grad norm, and the step's
        sense positions and target tokens (over all micro-batches and processes); on a --grad-norm-every step
        also each term's gradient norm (`grad_norms`, distill.grad_shares)."""
        acc, cfg = self.acc, self.cfg
        A = len(batches)
        lr = self.state.scheduler.get_last_lr()[0]
        per_term = TermGradients(self.trainable) if due(cfg.grad_norm_every, number) else None
        sums = {k: 0.0 for k in (*TERMS, *COUNTS)}
        for micro, rows in enumerate(batches):
            ctx = acc.no_sync(self.model) if micro < A - 1 and acc.num_processes > 1 else nullcontext()
            with ctx:
                terms = self.micro_step(rows)
                # one device sync for all terms (not one per term): stack, then read back once
                values = torch.stack([terms[k].detach().float() for k in sums]).tolist()
                self._check_finite(terms, values, number)
                if per_term is not None:
                    per_term.add(terms, cfg, 1.0 / A)
                acc.backward(terms["total"] / A)
            for k, v in zip(sums, values):
                sums[k] += v
        grad_norm = self._clip()
        if not math.isfinite(grad_norm):
            raise NonFiniteLoss(
                f"step {number}: the gradient norm is {grad_norm}; lower --lr or use --mixed-precision no"
            )
        self.state.optimizer.step()
        self.state.scheduler.step()
        self.state.optimizer.zero_grad(set_to_none=True)
        row = self._row(lr, sums, A)
        row["grad_norm"] = grad_norm
        row.update(sense_positions=row.pop("_positions"), tokens=row.pop("_tokens"))
        row["sense_negatives"] = row.pop("_negatives")
        if per_term is not None:
            row["grad_norms"] = per_term.norms(acc)
        return row

    def _check_finite(self, terms: dict[str, torch.Tensor], values: list[float], number: int) -> None:
        for k, v in zip(TERMS, values[: len(TERMS)]):
            if not math.isfinite(v):
                raise NonFiniteLoss(
                    f"step {number}: the {k} loss is {terms[k].item()}; lower --lr, check "
                    f"the store's vectors, or use --mixed-precision no"
                )

    def _clip(self) -> float:
        """Clip the gradient to --max-grad-norm (0: no clipping) -> its norm before clipping."""
        if self.cfg.max_grad_norm > 0:
            return float(self.acc.clip_grad_norm_(self.trainable, self.cfg.max_grad_norm))
        grads = [p.grad.norm() for p in self.trainable if p.grad is not None]
        return float(torch.linalg.vector_norm(torch.stack(grads))) if grads else 0.0

    def _row(self, lr: float, sums: dict[str, float], micro_steps: int) -> dict[str, Any]:
        """The step's metrics row: the terms averaged over micro-steps and processes, the counts summed."""
        acc = self.acc
        values = torch.tensor([sums[k] / micro_steps for k in TERMS], device=self.device)
        counts = torch.tensor([sums[k] for k in COUNTS], device=self.device)
        if acc.num_processes > 1:
            values = acc.reduce(values, reduction="mean")  # loss terms: the mean over processes
            counts = acc.reduce(counts, reduction="sum")  # sense positions and target tokens: all processes
        row = add_groups({"lr": lr, **dict(zip(TERMS, values.tolist()))})  # + sense = sense_pos + sense_neg
        return {**row, **dict(zip(COUNTS, counts.tolist()))}
