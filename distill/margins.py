"""The margins of the sense loss in force for a run: a number as given, or the 'auto' rule.

    pos_t = mean_p max(0, MSE_d(h_t, p) - beta_p)      neg_t = mean_q max(0, beta_n(q) - MSE_d(h_t, q))

- A number stays as given (the paper: beta_p = 0, beta_n = 1).
- 'auto' beta_p: the --beta-p-quantile of MSE_d(g_t, kept synonym candidate), observed over the first
  --margin-batches micro-batches at start-up.
- 'auto' beta_n: per candidate, the teacher's own distance, beta_n(q) = MSE_d(g_t, q). The push then acts on an
  antonym sense exactly when the student sits nearer to it than the teacher does, and never pushes a student
  that sits where the teacher sits. (A single number cannot say this: the 90th percentile of the teacher's
  distances, as a single beta_n, pushes the student away from the teacher's own state.)

The start-up sampling draws positions and candidates as the sense term does, from a generator of its own, so
the run's data order and sense sampling are the same with and without it. Its distance quantiles go into
run.json under "margins".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .losses import candidate_distances, margin_quantile, mse_to_candidates

__all__ = ["Margins", "resolve_margins", "MARGIN_SEED_OFFSET"]

MARGIN_SEED_OFFSET = 0x3A5617  # the start-up sampling of 'auto' margins has its own stream
QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


@dataclass(frozen=True)
class Margins:
    """The margins in force. `beta_n_from_teacher`: each antonym candidate's margin is MSE_d(g_t, q)."""

    beta_p: float = 0.0
    beta_n: float = 1.0
    beta_n_from_teacher: bool = False
    record: dict[str, Any] = field(default_factory=dict, compare=False)  # what run.json says about them

    @classmethod
    def given(cls, cfg) -> "Margins":
        """The config's numbers ('auto' ones as their placeholders: 0, and the teacher rule for beta_n)."""
        return cls(cfg.margin("beta_p") or 0.0, cfg.margin("beta_n") or 0.0, cfg.margin("beta_n") is None)

    def negative(self, anchor: torch.Tensor, negatives: torch.Tensor) -> float | torch.Tensor:
        """beta_n for the kept antonym candidates: a number, or [P, Kn] teacher distances.

        anchor [P, d] the teacher states g_t at the sensed positions, negatives [P, Kn, d]."""
        if not self.beta_n_from_teacher:
            return self.beta_n
        with torch.no_grad():
            a = anchor.float()
            return mse_to_candidates(a, negatives.to(a.dtype))  # [P, Kn]


@torch.no_grad()
def resolve_margins(cfg, inputs, order, acc) -> Margins:
    """The margins of a run (see the module docstring), with their record for run.json.

    `inputs` holds the teacher, the SenseTargets (None for a run without senses) and the windows; `order` is
    the run's BatchOrder; the start-up distances are averaged over processes."""
    given = Margins.given(cfg)
    record: dict[str, Any] = {
        "auto": list(cfg.auto_margins),
        "setting": {"beta_p": cfg.beta_p, "beta_n": cfg.beta_n},
        "beta_p": cfg.margin("beta_p"),
        "beta_n": cfg.margin("beta_n"),
    }
    if not cfg.auto_margins:
        return Margins(given.beta_p, given.beta_n, False, record)
    rules = []
    if "beta_p" in cfg.auto_margins:
        rules.append(f"beta_p: quantile {cfg.beta_p_quantile} of MSE_d(g_t, kept synonym candidate)")
    if "beta_n" in cfg.auto_margins:
        rules.append("beta_n: per antonym candidate q, the teacher's own MSE_d(g_t, q)")
    record["rule"] = "; ".join(rules) + f" (distances over the first {cfg.margin_batches} micro-batches)"
    found = _startup_distances(cfg, inputs, order, acc)
    beta_p, beta_n = given.beta_p, given.beta_n
    for name, dist in found.items():
        record[f"{name}_candidates_seen"] = int(dist.numel())
        if dist.numel():
            record[f"{name}_distance_quantiles"] = {str(p): margin_quantile(dist, p) for p in QUANTILES}
    if "beta_p" in cfg.auto_margins:
        beta_p = _mean_over_processes(margin_quantile(found["beta_p"], cfg.beta_p_quantile) or 0.0, acc)
        record["beta_p"] = beta_p
    if "beta_n" in cfg.auto_margins:
        # the loss uses each candidate's own margin; the record gives their median, for the reports' tables
        record["beta_n"] = _mean_over_processes(margin_quantile(found["beta_n"], 0.5) or 0.0, acc)
        record["beta_n_per_candidate"] = True
    return Margins(beta_p, beta_n, "beta_n" in cfg.auto_margins, record)


def _startup_distances(cfg, inputs, order, acc) -> dict[str, torch.Tensor]:
    """MSE_d(g_t, kept candidate) over the first --margin-batches micro-batches: synonyms, antonyms -> [n] each."""
    found: dict[str, list[torch.Tensor]] = {"beta_p": [], "beta_n": []}
    if inputs.targets is not None:
        gen = torch.Generator(device=acc.device)
        gen.manual_seed(cfg.seed + MARGIN_SEED_OFFSET + acc.process_index)
        for micro in range(cfg.margin_batches):
            input_ids, attn, labels = inputs.windows.batch(order.micro_batch(micro), acc.device)  # [B, T] each
            g = inputs.teacher.final_hidden(input_ids, attn)  # [B, T, d]
            s = inputs.targets.gather_for(cfg, labels, g, gen)
            anchor, act = g[s.b, s.t], s.active.unsqueeze(1)  # [P, d], [P, 1]
            found["beta_p"].append(candidate_distances(anchor, s.positives, s.pos_mask & act))
            found["beta_n"].append(candidate_distances(anchor, s.negatives, s.neg_mask & act))
    return {k: torch.cat(v) if v else torch.zeros(0) for k, v in found.items()}


def _mean_over_processes(value: float, acc) -> float:
    t = torch.tensor(value, device=acc.device, dtype=torch.float64)
    if acc.num_processes > 1:
        t = acc.reduce(t, reduction="mean")
    return float(t)
