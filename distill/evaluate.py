"""Held-out evaluation of a student against its teacher: perplexity, CE and the KD term."""

from __future__ import annotations

import math

import numpy as np
import torch

from .data import Windows
from .losses import ce_per_position, kl_per_position

__all__ = ["evaluate"]


@torch.no_grad()
def evaluate(
    student,
    teacher,
    windows: Windows,
    batch_size: int,
    device,
    tau: float = 2.0,
    max_batches: int = 0,
    autocast=None,
    teacher_logits=None,
) -> dict[str, float]:
    """-> {"ppl", "ce", "kl", "teacher_ppl", "tokens"}: token-weighted over the windows (in order).

    `student` is a DistillStudent (its full, uncached path); `kl` is KL(T || S) at temperature tau.
    `teacher_logits` (a sensekit.model.families.TeacherLogits, checked at start-up) gives the teacher's logits;
    by default its LM head and family logits step applied to g_t.
    """
    from sensekit.model.families import TeacherLogits

    teacher_logits = teacher_logits or TeacherLogits(teacher)
    was_training = student.training
    student.eval()
    ce_sum = kl_sum = t_ce_sum = 0.0
    n_tok = 0
    n = len(windows)
    batches = range(0, n, batch_size)
    if max_batches:
        batches = list(batches)[:max_batches]
    for s in batches:
        idx = np.arange(s, min(s + batch_size, n))
        input_ids, attn, labels = windows.batch(idx, device)
        mask = labels >= 0
        g = teacher.final_hidden(input_ids, attn).clone()
        t_logits = teacher_logits(g, input_ids, attn)
        ctx = autocast() if autocast is not None else torch.autocast("cpu", enabled=False)
        with ctx:
            logits, _ = student(input_ids, attn)
        ce_sum += float(ce_per_position(logits, labels)[mask].sum())
        t_ce_sum += float(ce_per_position(t_logits, labels)[mask].sum())
        kl_sum += float(kl_per_position(logits, t_logits, tau)[mask].sum())
        n_tok += int(mask.sum())
    if was_training:
        student.train()
    n_tok = max(n_tok, 1)
    return {
        "ppl": math.exp(min(ce_sum / n_tok, 50.0)),
        "ce": ce_sum / n_tok,
        "kl": kl_sum / n_tok,
        "teacher_ppl": math.exp(min(t_ce_sum / n_tok, 50.0)),
        "tokens": n_tok,
    }
