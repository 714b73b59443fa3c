"""The start-up self-checks of a distillation run, on its first batch, before any step.

What the run relies on, checked on real tensors: the teacher's logits from g_t equal its own forward's (else
the run uses that forward for them), the student's LM head of its final state equals its own logits, and with
the frozen-prefix cache the split forward equals the full one. A failed check is one clear line, not a
silent wrong run.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sensekit.errors import InputError
from sensekit.model.families import logits_difference, max_difference, tolerance
from sensekit.progress import Progress

from .student import DistillStudent

__all__ = ["startup_checks"]


def startup_checks(cfg, inputs, model: DistillStudent, rows: np.ndarray, acc, emit: Progress) -> dict[str, Any]:
    """On the first batch (window rows [B]): the teacher's logits path, the student's head, and with --cache the
    split. `inputs` holds the teacher, its TeacherLogits and the windows. -> the checks' record for run.json.

    Where the teacher's head of g_t is not its own output (a family step this code does not know), the run uses
    the teacher's own forward for its logits; a student that differs is refused, as is an inexact split.
    """
    teacher, teacher_logits = inputs.teacher, inputs.teacher_logits
    if cfg.truncated and teacher.dtype != torch.float32 and acc.mixed_precision == "no":
        raise InputError(
            f"the teacher is in {str(teacher.dtype).replace('torch.', '')} and the student's trained "
            "layers in float32: they meet only under autocast; pass --mixed-precision bf16 (or fp16)"
        )
    input_ids, attn, _ = inputs.windows.batch(rows, acc.device)  # [B, T] each
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
        split_diff = _split_difference(model, input_ids, attn, exact) if cfg.cache else None
    return {
        "teacher_logits": "own forward" if teacher_logits.own_forward else "lm_head(g)",
        "check_teacher_logits_diff": t_diff,
        "check_student_logits_diff": s_diff,
        "check_split_diff": split_diff,
    }


def _split_difference(model: DistillStudent, input_ids: torch.Tensor, attn: torch.Tensor, exact: bool) -> float:
    """The frozen-prefix cache's split forward against the full one (refused when not exact)."""
    full = model.final_hidden(input_ids, attn)  # [B, T, d]
    prefix = model.prefix(input_ids, attn).float()  # as the cache stores it
    split = model.final_hidden(None, attn, prefix.to(model.trainable_dtype(prefix.dtype)))
    split_diff, scale = max_difference(split, full, attn.bool())
    allowed = tolerance(torch.float32 if exact else torch.bfloat16, scale)
    if not split_diff <= allowed:
        raise InputError(
            f"the frozen-prefix cache is not exact for {type(model.lm).__name__}: the split "
            f"forward differs from the full one by {split_diff:.3g} (> {allowed:.3g}) on the "
            "first batch; drop --cache"
        )
    return split_diff
