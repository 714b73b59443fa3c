"""distill.losses, tested by their maths on small tensors."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from sensekit.distill.losses import (  # noqa: E402,E501
    ce_loss,
    hidden_mse_loss,
    hinge_mse_terms,
    kd_loss,
    kl_per_position,
    masked_mean,
    mse_d,
    mse_to_candidates,
    select_top_kappa,
    sense_loss,
)


def test_kd_is_zero_for_identical_logits():
    x = torch.randn(2, 3, 5)
    assert kd_loss(x, x.clone(), tau=2.0, alpha=0.7).abs().item() < 1e-7
    assert kd_loss(x, x + 3.0).abs().item() < 1e-6  # a shift of all logits changes no probability


def test_kd_matches_f_kl_div_with_alpha_tau_scaling():
    s, t = torch.randn(2, 3, 5), torch.randn(2, 3, 5)
    tau, alpha = 2.0, 0.7
    ref = F.kl_div(
        F.log_softmax(s / tau, -1).reshape(-1, 5),
        F.log_softmax(t / tau, -1).reshape(-1, 5),
        log_target=True,
        reduction="batchmean",
    )
    assert kd_loss(s, t, tau=tau, alpha=alpha).item() == pytest.approx(alpha * tau * tau * ref.item(), rel=1e-5)
    mask = torch.tensor([[True, False, True], [False, False, True]])
    per = kl_per_position(s, t, tau)
    want = alpha * tau * tau * per[mask].mean().item()
    assert kd_loss(s, t, mask, tau, alpha).item() == pytest.approx(want, rel=1e-6)


def test_kd_temperature_limits():
    s, t = torch.randn(4, 7, dtype=torch.float64), torch.randn(4, 7, dtype=torch.float64)
    # tau -> inf: tau^2 KL -> Var_uniform(z_t - z_s) / 2 (logit matching)
    d = t - s
    want = 0.5 * ((d - d.mean(-1, keepdim=True)) ** 2).mean(-1)
    got = 1e6 * kl_per_position(s.double(), t.double(), 1e3).double()
    torch.testing.assert_close(got, want.float().double(), rtol=2e-3, atol=1e-4)
    # tau -> 0: the teacher becomes one-hot at a = argmax t; tau KL -> max s - s[a] (0 when argmaxes agree)
    tau = 1e-3
    a = t.argmax(-1)
    want0 = s.max(-1).values - s.gather(-1, a[:, None]).squeeze(-1)
    torch.testing.assert_close(tau * kl_per_position(s, t, tau).double(), want0, rtol=1e-3, atol=1e-3)


def test_ce_masks_like_ignore_index():
    logits, labels = torch.randn(2, 3, 5), torch.tensor([[1, -100, 4], [0, 2, -100]])
    ref = F.cross_entropy(logits.reshape(-1, 5), labels.reshape(-1), ignore_index=-100)
    assert ce_loss(logits, labels).item() == pytest.approx(ref.item(), rel=1e-6)


def test_masked_mean_of_nothing_is_zero():
    v = torch.randn(3, requires_grad=True)
    out = masked_mean(v, torch.zeros(3, dtype=torch.bool))
    assert out.item() == 0.0
    out.backward()
    assert torch.isfinite(v.grad).all()


def test_hinge_terms_zero_past_margins_and_exact_inside():
    d = 4
    h = torch.zeros(1, d)
    near = torch.full((1, 1, d), 0.1)  # MSE 0.01
    far = torch.full((1, 1, d), 2.0)  # MSE 4
    one = torch.ones(1, 1, dtype=torch.bool)
    pos, neg = hinge_mse_terms(h, near, one, far, one, beta_p=0.05, beta_n=1.0)
    assert pos.item() == 0.0 and neg.item() == 0.0  # positive inside beta_p, negative beyond beta_n
    pos, neg = hinge_mse_terms(h, far, one, near, one, beta_p=0.5, beta_n=1.0)
    assert pos.item() == pytest.approx(4.0 - 0.5) and neg.item() == pytest.approx(1.0 - 0.01)
    assert mse_d(torch.zeros(d), torch.full((d,), 3.0)).item() == pytest.approx(9.0)  # ||a-b||^2 / d
    x, c = torch.randn(5, d, dtype=torch.float64), torch.randn(5, 3, d, dtype=torch.float64)
    torch.testing.assert_close(mse_to_candidates(x, c), mse_d(x.unsqueeze(1), c))
    # no negatives: the negative term is 0, not nan
    pos, neg = hinge_mse_terms(h, far, one, near, torch.zeros(1, 1, dtype=torch.bool))
    assert neg.item() == 0.0 and pos.item() == pytest.approx(4.0)


def test_select_top_kappa_orders_by_l2_and_respects_mask():
    anchor = torch.zeros(2, 3)
    cands = torch.tensor(
        [[[3.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0], [0.5, 0, 0]], [[1.0, 0, 0], [0.1, 0, 0], [9.0, 0, 0], [9.0, 0, 0]]]
    )
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    idx, keep = select_top_kappa(anchor, cands, mask, 2)
    assert idx.tolist() == [[1, 2], [0, 0]] and keep.tolist() == [[True, True], [True, False]]


def _slow_sense(h, g, pools_pos, pools_neg, active, kappa, beta_p, beta_n):
    """Per-position loop: candidates as Python lists, sorted by L2 to g, kappa kept, hinge per docs/method.md."""
    d = h.shape[1]
    terms_p, terms_n = [], []
    for i in range(h.shape[0]):
        if not active[i]:
            continue

        def pick(pool, anchor=g[i]):
            return sorted(pool, key=lambda c: float(((c - anchor) ** 2).sum()))[:kappa]

        P, N = pick(pools_pos[i]), pick(pools_neg[i])
        lp = sum(max(0.0, float(((h[i] - p) ** 2).sum()) / d - beta_p) for p in P) / len(P) if P else 0.0
        ln = sum(max(0.0, beta_n - float(((h[i] - q) ** 2).sum()) / d) for q in N) / len(N) if N else 0.0
        terms_p.append(lp)
        terms_n.append(ln)
    n = max(len(terms_p), 1)
    return sum(terms_p) / n, sum(terms_n) / n


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_sense_loss_equals_slow_loop_on_uneven_pools(seed):
    gen = torch.Generator().manual_seed(seed)
    P, d, kappa = 9, 6, 3
    h = torch.randn(P, d, generator=gen, dtype=torch.float64)
    g = torch.randn(P, d, generator=gen, dtype=torch.float64)
    sizes_p = torch.randint(0, 8, (P,), generator=gen).tolist()
    sizes_n = torch.randint(0, 6, (P,), generator=gen).tolist()
    pools_p = [torch.randn(n, d, generator=gen, dtype=torch.float64) * 0.8 for n in sizes_p]
    pools_n = [torch.randn(n, d, generator=gen, dtype=torch.float64) * 0.6 for n in sizes_n]
    active = [n > 0 and i % 4 != 3 for i, n in enumerate(sizes_p)]

    def pad(pools, width):
        out, mask = torch.zeros(P, width, d, dtype=torch.float64), torch.zeros(P, width, dtype=torch.bool)
        for i, pool in enumerate(pools):
            out[i, : len(pool)], mask[i, : len(pool)] = pool, True
        return out, mask

    cp, mp = pad(pools_p, max(sizes_p))
    cn, mn = pad(pools_n, max(sizes_n))
    ip, kp = select_top_kappa(g, cp, mp, kappa)
    in_, kn = select_top_kappa(g, cn, mn, kappa)
    pos = cp.gather(1, ip[..., None].expand(-1, -1, d))
    neg = cn.gather(1, in_[..., None].expand(-1, -1, d))
    lp, ln = sense_loss(h, pos, kp, neg, kn, torch.tensor(active), beta_p=0.1, beta_n=1.0)
    rp, rn = _slow_sense(h, g, pools_p, pools_n, active, kappa, 0.1, 1.0)
    assert lp.item() == pytest.approx(rp, rel=1e-6, abs=1e-9)
    assert ln.item() == pytest.approx(rn, rel=1e-6, abs=1e-9)


def test_gradients_are_finite_everywhere():
    s = torch.randn(2, 3, 5, requires_grad=True)
    t = torch.randn(2, 3, 5)
    h = torch.zeros(4, 6, requires_grad=True)  # h equal to a positive: the MSE kink at 0
    pos = torch.zeros(4, 2, 6)
    neg = torch.randn(4, 2, 6)
    mask = torch.tensor([[True, False], [False, False], [True, True], [True, False]])
    active = torch.tensor([True, False, True, True])
    lp, ln = sense_loss(h, pos, mask, neg, mask, active)
    total = kd_loss(s, t) + ce_loss(s, torch.tensor([[1, 2, -100], [0, 4, 3]])) + lp + ln
    total.backward()
    assert torch.isfinite(s.grad).all() and torch.isfinite(h.grad).all()
    assert h.grad[1].abs().sum().item() == 0.0  # an inactive position gets no gradient
    assert math.isfinite(total.item())


def test_hidden_mse_is_zero_on_identical_states_and_equals_a_slow_loop():
    h, g = torch.randn(2, 3, 5, dtype=torch.float64), torch.randn(2, 3, 5, dtype=torch.float64)
    assert hidden_mse_loss(g.clone(), g).item() == 0.0
    mask = torch.tensor([[True, False, True], [False, True, True]])
    slow, n = 0.0, 0
    for b in range(2):
        for t in range(3):
            if mask[b, t]:
                slow += sum((h[b, t, i] - g[b, t, i]).item() ** 2 for i in range(5)) / 5  # ||h - g||^2 / d
                n += 1
    assert hidden_mse_loss(h, g, mask).item() == pytest.approx(slow / n, rel=1e-12)
    assert hidden_mse_loss(h, g).item() == pytest.approx(((h - g) ** 2).mean().item(), rel=1e-12)
    assert hidden_mse_loss(h, g, torch.zeros(2, 3, dtype=torch.bool)).item() == 0.0  # no positions: 0


def test_hidden_mse_gradient_reaches_only_the_student():
    h = torch.randn(2, 3, 4, requires_grad=True)
    g = torch.randn(2, 3, 4, requires_grad=True)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    hidden_mse_loss(h.bfloat16(), g, mask).backward()
    assert torch.isfinite(h.grad).all() and g.grad is None
    assert h.grad[~mask].abs().sum() == 0  # masked-out positions get no gradient
    # d/dh mean_t ||h_t - g_t||^2 / d = 2 (h_t - g_t) / (d * n)
    want = 2 * (h.detach().bfloat16().float() - g.detach()) / (4 * 3)
    torch.testing.assert_close(h.grad[mask], want[mask], rtol=2e-2, atol=1e-3)
