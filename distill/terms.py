"""Distill's loss terms: ONE table of (name, function, weight field).

    L = sum over LOSS_TERMS of weight(cfg) * term(step)      (weight 1 where a term names no field)

Everything else follows from `LOSS_TERMS`: `TERMS` (the names a metrics row carries), the
micro-step's losses and total (`compute_terms`), the groups a row also sums (`sense` =
`sense_pos` + `sense_neg`), the CLI's progress line and the weights the summary records.
Adding a loss term is one row here (and, if it has a weight, one DistillConfig field); the
maths stays in the pure functions of `distill.losses`.

A term whose weight is 0 is not computed: it is a zero with no graph and adds nothing to the
total, so lambda = 0 runs the same code path as the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from .losses import ce_loss, hidden_mse_loss, kd_loss, sense_loss
from .margins import Margins

__all__ = ["Term", "StepTensors", "LOSS_TERMS", "TERMS", "GROUPS", "compute_terms", "add_groups", "term_weights"]


@dataclass
class StepTensors:
    """What a loss term may read in one micro-step (B windows of T tokens, d the teacher's width)."""

    cfg: Any  # DistillConfig
    logits: torch.Tensor  # [B, T, V] student
    h: torch.Tensor  # [B, T, d] student final states (projected to the teacher's width)
    g: torch.Tensor  # [B, T, d] teacher post-norm states g_t
    t_logits: torch.Tensor  # [B, T, V] teacher
    labels: torch.Tensor  # [B, T] long (-100 = not a target)
    mask: torch.Tensor  # [B, T] bool target positions
    sense: Any = None  # SenseBatch or None (no senses sampled this step)
    margins: Margins = field(default_factory=Margins)  # the margins in force (distill.margins)
    _sense_pair: Optional[tuple[torch.Tensor, torch.Tensor]] = field(default=None, repr=False)

    def sense_terms(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(L_pos, L_neg), computed once per micro-step for both rows that read them."""
        if self._sense_pair is None:
            s = self.sense
            beta_n = self.margins.negative(self.g[s.b, s.t], s.negatives)  # a number, or [P, Kn]
            self._sense_pair = sense_loss(
                self.h[s.b, s.t],  # [P, d]
                s.positives,
                s.pos_mask,
                s.negatives,
                s.neg_mask,
                s.active,
                self.margins.beta_p,
                beta_n,
            )
        return self._sense_pair


def _hidden(x: StepTensors) -> torch.Tensor:
    """MSE_d(h_t, g_t) on every target position, or (--hidden-positions sensed) on the sense term's positions."""
    if getattr(x.cfg, "hidden_positions", "all") == "sensed":
        s = x.sense
        return hidden_mse_loss(x.h[s.b, s.t], x.g[s.b, s.t], s.active)
    return hidden_mse_loss(x.h, x.g, x.mask)


@dataclass(frozen=True)
class Term:
    """One loss term: its name in the logs, its function of the step's tensors, and the config field weighting it."""

    name: str
    compute: Callable[[StepTensors], torch.Tensor]
    weight: Optional[str] = None  # a DistillConfig field; None = weight 1, always computed
    group: Optional[str] = None  # rows also carry each group's sum (e.g. "sense")

    def weight_of(self, cfg: Any) -> float:
        return 1.0 if self.weight is None else float(getattr(cfg, self.weight))


LOSS_TERMS: tuple[Term, ...] = (
    Term("kd", lambda x: kd_loss(x.logits, x.t_logits, x.mask, x.cfg.tau, x.cfg.alpha)),
    Term("ce", lambda x: ce_loss(x.logits, x.labels, x.mask)),
    Term("sense_pos", lambda x: x.sense_terms()[0], "lambda_sense", "sense"),
    Term("sense_neg", lambda x: x.sense_terms()[1], "lambda_sense", "sense"),
    Term("hidden", _hidden, "lambda_hidden"),
)
TERMS: tuple[str, ...] = (*(t.name for t in LOSS_TERMS), "total")
GROUPS: dict[str, tuple[str, ...]] = {}
for _t in LOSS_TERMS:
    if _t.group:
        GROUPS[_t.group] = (*GROUPS.get(_t.group, ()), _t.name)
del _t


def compute_terms(x: StepTensors) -> dict[str, torch.Tensor]:
    """Every term of LOSS_TERMS (0 without a graph where its weight is 0) and their weighted sum, 'total'."""
    zero = torch.zeros((), device=x.logits.device)
    out: dict[str, torch.Tensor] = {}
    total: Optional[torch.Tensor] = None
    for term in LOSS_TERMS:
        w = term.weight_of(x.cfg)
        if w == 0:
            out[term.name] = zero
            continue
        value = term.compute(x)
        out[term.name] = value
        part = value if term.weight is None else w * value
        total = part if total is None else total + part
    out["total"] = total if total is not None else zero
    return out


def add_groups(row: dict[str, Any]) -> dict[str, Any]:
    """A metrics row with each group's sum added after its terms (e.g. sense = sense_pos + sense_neg)."""
    for name, members in GROUPS.items():
        row[name] = sum(row[m] for m in members)
    return row


def term_weights(cfg: Any) -> dict[str, float]:
    """The weight fields of the table and their values in `cfg` (e.g. lambda_sense, lambda_hidden)."""
    return {t.weight: float(getattr(cfg, t.weight)) for t in LOSS_TERMS if t.weight is not None}
