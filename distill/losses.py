"""The DSKD loss terms as pure functions of tensors (docs/method.md section 2).

Divergences return per-item values; `masked_mean` does the reduction, so masking and
reduction stay separate from the maths. Shapes: N positions, V vocabulary, P selected
positions, C candidates per position (padded), K kept candidates, d hidden width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "masked_mean",
    "kl_per_position",
    "kd_loss",
    "ce_per_position",
    "ce_loss",
    "mse_d",
    "mse_to_candidates",
    "select_top_kappa",
    "top_kappa_from_distances",
    "hinge_mse_terms",
    "sense_loss",
    "hidden_mse_loss",
    "candidate_distances",
    "margin_quantile",
]


def _up(x: torch.Tensor) -> torch.Tensor:
    """Half precision -> float32; float32/float64 stay as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """values [...], mask [...] bool (or None) -> scalar: the mean over the masked-in entries (0 if none)."""
    if mask is None:
        return values.mean()
    m = mask.to(values.dtype)
    return (values * m).sum() / m.sum().clamp(min=1.0)


def kl_per_position(student_logits: torch.Tensor, teacher_logits: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """Forward KL(softmax(o^T/tau) || softmax(o^S/tau)) per position.

    student_logits, teacher_logits [N, V] (any leading dims) -> [N]. Half precision is computed in float32.
    """
    s = F.log_softmax(_up(student_logits) / tau, dim=-1)
    t = F.log_softmax(_up(teacher_logits).to(s.dtype) / tau, dim=-1)
    return (t.exp() * (t - s)).sum(-1)


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    mask: torch.Tensor | None = None,
    tau: float = 2.0,
    alpha: float = 0.7,
) -> torch.Tensor:
    """L_KD = alpha * tau^2 * mean_t KL(T || S). logits [..., V], mask [...] -> scalar."""
    return alpha * tau * tau * masked_mean(kl_per_position(student_logits, teacher_logits, tau), mask)


def ce_per_position(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """-log p(y_t) per position: logits [..., V], labels [...] long -> [...] (0 where ignored)."""
    flat = F.cross_entropy(
        _up(logits).reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=ignore_index, reduction="none"
    )
    return flat.reshape(labels.shape)


def ce_loss(
    logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None, ignore_index: int = -100
) -> torch.Tensor:
    """L_CE = mean over masked-in positions of -log p(y_t). mask defaults to labels != ignore_index."""
    if mask is None:
        mask = labels != ignore_index
    return masked_mean(ce_per_position(logits, labels, ignore_index), mask)


def mse_d(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """MSE_d(a, b) = ||a - b||^2 / d over the last dim (broadcasting). No normalisation of the vectors."""
    return (a - b).pow(2).mean(-1)


def mse_to_candidates(h: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """MSE_d(h_i, c_ij) for h [P, d], candidates [P, K, d] -> [P, K].

    Expanded as (||h||^2 - 2 h.c + ||c||^2) / d, so autograd keeps h and the (constant) candidates
    instead of a [P, K, d] difference per pool; clamped at 0 against rounding.
    """
    d = h.shape[-1]
    hc = torch.bmm(candidates, h.unsqueeze(-1)).squeeze(-1)  # [P, K]
    with torch.no_grad():
        c_sq = candidates.pow(2).sum(-1)
    return ((h.pow(2).sum(-1, keepdim=True) - 2.0 * hc + c_sq) / d).clamp(min=0.0)


@torch.no_grad()
def select_top_kappa(
    anchor: torch.Tensor, candidates: torch.Tensor, mask: torch.Tensor, kappa: int, cand_sq: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-guided selection: per position, the kappa candidates nearest (L2) to the anchor.

    anchor [P, d] (the teacher state g_t), candidates [P, C, d], mask [P, C] bool (real candidates),
    optional cand_sq [P, C] = ||candidate||^2 (precomputed) -> index [P, K] long into C
    (K = min(kappa, C); padded slots point at 0), keep [P, K] bool. Ordered nearest first.
    """
    P, C = mask.shape
    k = min(int(kappa), C)
    if k == 0 or P == 0:
        return mask.new_zeros((P, k), dtype=torch.long), mask.new_zeros((P, k))
    a = _up(anchor)
    c = _up(candidates).to(a.dtype)
    # ||c - a||^2 = ||c||^2 - 2 c.a + ||a||^2, without a [P, C, d] difference tensor
    c_sq = c.pow(2).sum(-1) if cand_sq is None else cand_sq.to(a.dtype)
    dist = c_sq - 2.0 * torch.bmm(c, a.unsqueeze(-1)).squeeze(-1) + a.pow(2).sum(-1, keepdim=True)
    return top_kappa_from_distances(dist, mask, k)


@torch.no_grad()
def top_kappa_from_distances(dist: torch.Tensor, mask: torch.Tensor, kappa: int) -> tuple[torch.Tensor, torch.Tensor]:
    """dist [P, C] (squared L2 to the anchor), mask [P, C] -> (index [P, K], keep [P, K]), K = min(kappa, C)."""
    k = min(int(kappa), dist.shape[1])
    dist = dist.masked_fill(~mask, float("inf"))
    d_sorted, index = torch.topk(dist, k, dim=1, largest=False, sorted=True)
    keep = torch.isfinite(d_sorted)
    return index.masked_fill(~keep, 0), keep


def hinge_mse_terms(
    h: torch.Tensor,
    positives: torch.Tensor,
    pos_mask: torch.Tensor,
    negatives: torch.Tensor,
    neg_mask: torch.Tensor,
    beta_p: float = 0.0,
    beta_n: float | torch.Tensor = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-position hinge-MSE terms.

    h [P, d] student states; positives [P, Kp, d] with pos_mask [P, Kp]; negatives [P, Kn, d] with
    neg_mask [P, Kn] -> (pos [P], neg [P]):
      pos_t = mean_{p in P_t} max(0, MSE_d(h_t, p) - beta_p)   (0 when P_t is empty)
      neg_t = mean_{q in N_t} max(0, beta_n - MSE_d(h_t, q))   (0 when N_t is empty)
    beta_n is one number, or one margin per candidate [P, Kn] (a constant: no gradient flows into it).
    """
    hf = _up(h)
    pos = torch.relu(mse_to_candidates(hf, positives.to(hf.dtype)) - beta_p)
    if isinstance(beta_n, torch.Tensor):
        beta_n = beta_n.detach().to(hf.dtype)
    neg = torch.relu(beta_n - mse_to_candidates(hf, negatives.to(hf.dtype)))
    pm, nm = pos_mask.to(pos.dtype), neg_mask.to(neg.dtype)
    pos_t = (pos * pm).sum(1) / pm.sum(1).clamp(min=1.0)
    neg_t = (neg * nm).sum(1) / nm.sum(1).clamp(min=1.0)
    return pos_t, neg_t


def sense_loss(
    h: torch.Tensor,
    positives: torch.Tensor,
    pos_mask: torch.Tensor,
    negatives: torch.Tensor,
    neg_mask: torch.Tensor,
    active: torch.Tensor,
    beta_p: float = 0.0,
    beta_n: float | torch.Tensor = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_pos, L_neg): hinge terms averaged over the active positions (those whose token has senses).

    active [P] bool; beta_n a number or [P, Kn] (see hinge_mse_terms). L_sense = L_pos + L_neg. Both are 0
    (with a graph to h) when nothing is active.
    """
    pos_t, neg_t = hinge_mse_terms(h, positives, pos_mask, negatives, neg_mask, beta_p, beta_n)
    return masked_mean(pos_t, active), masked_mean(neg_t, active)


def hidden_mse_loss(h: torch.Tensor, g: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Hidden-state (feature) distillation: L_hidden = mean over masked-in positions of MSE_d(h_t, g_t).

    h [..., d] student states (projected to the teacher's width), g [..., d] teacher post-norm states (a
    constant), mask [...] bool -> scalar. The control for the sense loss: it pulls h_t toward the teacher's
    own state, with no dictionary. Half precision is computed in float32.
    """
    hf = _up(h)
    return masked_mean(mse_d(hf, _up(g).to(hf.dtype).detach()), mask)


@torch.no_grad()
def candidate_distances(anchor: torch.Tensor, candidates: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MSE_d(anchor_i, c_ij) of the real candidates: anchor [P, d], candidates [P, K, d], mask [P, K] -> [n] float32."""
    a = _up(anchor).float()
    return mse_to_candidates(a, _up(candidates).to(a.dtype))[mask].float()


def margin_quantile(distances: torch.Tensor, q: float) -> float | None:
    """The q-quantile of observed distances [n] (an 'auto' margin); None when nothing was observed."""
    if distances.numel() == 0:
        return None
    return float(torch.quantile(distances.double().cpu(), q))
