"""Each loss term's gradient on the trained parameters: how much of the step each term drives.

On a logged step (every --grad-norm-every optimizer steps) each weighted term's gradient,
d(weight * term) / d(trainable parameters), is taken on its own with `torch.autograd.grad`, summed over the
step's micro-batches as the real gradient is, and its L2 norm recorded. Other steps pay nothing.

    share_i = ||grad_i|| / sum_j ||grad_j||        (the terms' shares sum to 1 on a logged step)

The norms of the terms do not add up to the norm of the total gradient (terms can pull against each other);
the share says how hard each term pulls, not where the step goes. A term that is off (weight 0) or has no path
to the trained parameters this step has norm 0. On several processes a norm is the mean of the processes'
own norms (each process's gradient before DDP averages them).
"""

from __future__ import annotations

from typing import Any

import torch

from .terms import LOSS_TERMS

__all__ = ["TermGradients", "grad_summary", "TERM_NAMES"]

TERM_NAMES: tuple[str, ...] = tuple(t.name for t in LOSS_TERMS)


class TermGradients:
    """The per-term gradients of one optimizer step, accumulated over its micro-batches."""

    def __init__(self, params: list[torch.nn.Parameter]) -> None:
        self.params = params
        self.sums: dict[str, list[torch.Tensor]] = {}

    def add(self, terms: dict[str, torch.Tensor], cfg: Any, scale: float) -> None:
        """Add d(weight * term * scale)/d(params) of every term of this micro-batch (its graph is kept for the
        step's own backward)."""
        for term in LOSS_TERMS:
            value = terms[term.name]
            weight = term.weight_of(cfg)
            if weight == 0 or not value.requires_grad or not self.params:
                continue
            grads = torch.autograd.grad(value * (weight * scale), self.params, retain_graph=True, allow_unused=True)
            dense = [torch.zeros_like(p) if g is None else g.detach() for g, p in zip(grads, self.params)]
            if term.name in self.sums:
                self.sums[term.name] = [a + b for a, b in zip(self.sums[term.name], dense)]
            else:
                self.sums[term.name] = dense

    def norms(self, acc=None) -> dict[str, float]:
        """{term: ||its gradient||} for every term of the table (0 for a term with no gradient)."""
        device = self.params[0].device if self.params else torch.device("cpu")
        values = torch.zeros(len(TERM_NAMES), dtype=torch.float64, device=device)
        for i, name in enumerate(TERM_NAMES):
            if name in self.sums:
                values[i] = torch.linalg.vector_norm(torch.stack([g.float().norm() for g in self.sums[name]]))
        if acc is not None and acc.num_processes > 1:
            values = acc.reduce(values, reduction="mean")
        return dict(zip(TERM_NAMES, values.tolist()))


def grad_summary(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Metrics rows -> (grad_norms, grad_share) for the run's summary.

    grad_norms: one entry per logged step, {"step": n, term: norm, ...}. grad_share: per term, the mean over
    the logged steps of its share of the step's summed norms (steps where every norm is 0 are skipped);
    empty when no step was logged."""
    logged = [(r["step"], r["grad_norms"]) for r in rows if isinstance(r.get("grad_norms"), dict)]
    grad_norms = [{"step": step, **norms} for step, norms in logged]
    shares: dict[str, list[float]] = {name: [] for name in TERM_NAMES}
    for _, norms in logged:
        total = sum(norms.get(name, 0.0) for name in TERM_NAMES)
        if total > 0:
            for name in TERM_NAMES:
                shares[name].append(norms.get(name, 0.0) / total)
    grad_share = {name: sum(v) / len(v) for name, v in shares.items() if v}
    return grad_norms, grad_share
