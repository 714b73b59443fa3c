"""Statistics of the comparison: per-run bootstrap over test windows, paired t-intervals over seeds, verdicts,
and the flattening check (one that can fail)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["window_bootstrap", "paired_t", "verdict", "flattening", "describe"]


def window_bootstrap(nll: np.ndarray, tokens: np.ndarray, n: int, seed: int = 0) -> dict[str, Any]:
    """Perplexity of a run with a 95% percentile bootstrap over test windows.

    nll [W] summed NLL per window, tokens [W] targets per window -> {ppl, ce, ci95 (ppl), windows}.
    """
    nll, tokens = np.asarray(nll, np.float64), np.asarray(tokens, np.float64)
    ce = float(nll.sum() / tokens.sum())
    idx = np.random.default_rng(seed).integers(0, len(nll), size=(n, len(nll)))
    boot = nll[idx].sum(1) / tokens[idx].sum(1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {"ppl": math.exp(ce), "ce": ce, "ppl_ci95": [math.exp(lo), math.exp(hi)], "windows": int(len(nll))}


def paired_window_bootstrap(
    nll_a: np.ndarray, nll_b: np.ndarray, tokens: np.ndarray, n: int, seed: int = 0
) -> list[float]:
    """95% bootstrap interval over the same test windows of ppl(a) - ppl(b)."""
    a, b, t = (np.asarray(x, np.float64) for x in (nll_a, nll_b, tokens))
    idx = np.random.default_rng(seed).integers(0, len(a), size=(n, len(a)))
    d = np.exp(a[idx].sum(1) / t[idx].sum(1)) - np.exp(b[idx].sum(1) / t[idx].sum(1))
    return [float(x) for x in np.percentile(d, [2.5, 97.5])]


def describe(values: list[float | None]) -> dict[str, Any]:
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return {
        "mean": float(np.mean(xs)) if xs else None,
        "sd": float(np.std(xs, ddof=1)) if len(xs) >= 2 else None,
        "n": len(xs),
        "values": values,
    }


def paired_t(a: list[float | None], b: list[float | None]) -> dict[str, Any]:
    """a - b paired by seed: mean, sd, 95% t-interval, p (two-sided), n."""
    d = np.asarray([x - y for x, y in zip(a, b) if x is not None and y is not None], np.float64)
    out: dict[str, Any] = {"n": int(len(d)), "diffs": d.tolist(), "mean": float(d.mean()) if len(d) else None}
    out.update(sd=None, t_ci95=None, p_value=None)
    if len(d) < 2:
        return out
    from scipy import stats

    sd = float(d.std(ddof=1))
    out["sd"] = sd
    if sd > 0:
        half = float(stats.t.ppf(0.975, len(d) - 1)) * sd / math.sqrt(len(d))
        out["t_ci95"] = [float(d.mean()) - half, float(d.mean()) + half]
        out["p_value"] = float(stats.ttest_1samp(d, 0.0).pvalue)
    return out


def verdict(comp: dict[str, Any], higher_is_better: bool) -> str:
    """'better' / 'worse' when the t-interval excludes 0; 'no detectable difference'; or why there is none."""
    ci, n = comp.get("t_ci95"), comp.get("n", 0)
    if ci is None and n >= 2 and comp.get("sd") == 0:  # every seed gave the same difference (a coarse metric)
        if comp["mean"] == 0:
            return f"no difference (the same in all {n} seeds)"
        side = "better" if (comp["mean"] > 0) == higher_is_better else "worse"
        return f"{side} (the same difference in all {n} seeds: no interval)"
    if ci is None:
        return f"n/a ({n} paired seed(s); an interval needs 2 or more)"
    if ci[0] > 0 or ci[1] < 0:
        return "better" if (ci[0] > 0) == higher_is_better else "worse"
    return "no detectable difference"


def flattening(curve: list[dict[str, Any]], steps: int, tail: float, gain: float) -> dict[str, Any]:
    """Did dev CE stop improving? Fails (flattened False) when the last `tail` of the steps still improved dev CE
    by `gain` or more of what the steps before it gained. The learning rate's own decay cannot make it pass: it
    compares the improvement, not the step size. curve: [{step, ce}] including step 0 (before training)."""
    if len(curve) < 3:
        return {"flattened": None, "why": "fewer than 3 curve points"}
    start = (1 - tail) * steps
    before = [p for p in curve if p["step"] <= start]
    at = before[-1] if before else curve[0]
    first_gain = curve[0]["ce"] - at["ce"]
    tail_gain = at["ce"] - curve[-1]["ce"]
    ratio = tail_gain / first_gain if first_gain > 0 else float("inf")
    return {
        "tail_from_step": at["step"],
        "first_gain_ce": first_gain,
        "tail_gain_ce": tail_gain,
        "tail_over_first": ratio,
        "bound": gain,
        "flattened": bool(ratio < gain),
    }
