"""Statistics of the comparison: per-run bootstrap over test windows, paired t-intervals over seeds, the paired
window bootstrap (per seed, and over the seeds' mean), verdicts (an interval or nothing), Holm's correction over
the headline comparisons, and the flattening check (one that can fail, and calls a rising curve moving)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "window_bootstrap",
    "paired_window_bootstrap",
    "paired_window_bootstrap_mean",
    "paired_t",
    "verdict",
    "holm",
    "flattening",
    "describe",
]


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


def paired_window_bootstrap_mean(
    nll_a: list[np.ndarray], nll_b: list[np.ndarray], tokens: np.ndarray, n: int, seed: int = 0
) -> dict[str, Any]:
    """95% bootstrap interval of the mean over seeds of ppl(a) - ppl(b), resampling the test windows (the same
    windows in every run: one draw of windows serves every seed). nll_a, nll_b: per seed, [W] each.
    -> {mean, ci95, seeds}. The seeds are not resampled: this interval is about the test windows only."""
    a = np.asarray(nll_a, np.float64)  # [S, W]
    b = np.asarray(nll_b, np.float64)
    t = np.asarray(tokens, np.float64)  # [W]
    mean = float(np.mean(np.exp(a.sum(1) / t.sum()) - np.exp(b.sum(1) / t.sum())))
    idx = np.random.default_rng(seed).integers(0, a.shape[1], size=(n, a.shape[1]))  # [n, W]
    tok = t[idx].sum(1)  # [n]
    d = np.exp(a[:, idx].sum(2) / tok) - np.exp(b[:, idx].sum(2) / tok)  # [S, n]
    lo, hi = np.percentile(d.mean(0), [2.5, 97.5])
    return {"mean": mean, "ci95": [float(lo), float(hi)], "seeds": int(a.shape[0])}


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
    """An interval or nothing: 'better' / 'worse' when the 95% t-interval excludes 0, 'no detectable difference'
    when it holds 0, and no verdict when there is no interval (one seed, or a difference equal in every seed,
    which says nothing about the spread a new seed would show)."""
    ci, n = comp.get("t_ci95"), comp.get("n", 0)
    if ci is None and n >= 2 and comp.get("sd") == 0:
        return f"no verdict (the same difference in all {n} seeds: no interval)"
    if ci is None:
        return f"no verdict ({n} paired seed(s): an interval needs 2 or more)"
    if ci[0] > 0 or ci[1] < 0:
        return "better" if (ci[0] > 0) == higher_is_better else "worse"
    return "no detectable difference"


def holm(p_values: dict[str, float | None], alpha: float = 0.05) -> dict[str, dict[str, Any]]:
    """Holm's step-down correction over a family of tests: name -> {p, p_holm, rejected}. The smallest p is
    multiplied by m, the next by m - 1, ... (kept monotone, capped at 1); a test is rejected while every
    smaller p was. Tests with no p (no interval) are outside the family: p_holm None, not rejected."""
    named = sorted(((p, k) for k, p in p_values.items() if p is not None and math.isfinite(p)), key=lambda x: x[0])
    m = len(named)
    out: dict[str, dict[str, Any]] = {k: {"p": p, "p_holm": None, "rejected": False} for k, p in p_values.items()}
    running, still = 0.0, True
    for i, (p, k) in enumerate(named):
        running = max(running, min(1.0, (m - i) * p))
        still = still and running <= alpha
        out[k] = {"p": p, "p_holm": running, "rejected": still}
    return out


def flattening(curve: list[dict[str, Any]], steps: int, tail: float, gain: float) -> dict[str, Any]:
    """Did dev CE stop moving? Over the last `tail` of the steps (from the last curve point at or before
    (1 - tail) x steps), dev CE must fall by less than `gain` of what the steps before gained, and not rise: a
    tail that still falls that much is "still falling", one that rises at all is "still moving (rising)"
    (over-fitting or instability, not convergence). It compares changes of dev CE, not the learning rate, so the
    schedule's own decay cannot make it pass. curve: [{step, ce}] including step 0 (before training)."""
    if len(curve) < 3:
        return {"flattened": None, "status": "unknown", "why": "fewer than 3 curve points"}
    start = (1 - tail) * steps
    before = [p for p in curve if p["step"] <= start]
    at = before[-1] if before else curve[0]
    first_gain = curve[0]["ce"] - at["ce"]
    tail_gain = at["ce"] - curve[-1]["ce"]  # > 0: still falling; < 0: rising
    ratio = tail_gain / first_gain if first_gain > 0 else float("inf")
    if first_gain <= 0:
        status = "still moving (no gain before the tail)"
    elif ratio >= gain:
        status = "still falling"
    elif tail_gain < 0:
        status = "still moving (rising)"
    else:
        status = "flattened"
    return {
        "tail_from_step": at["step"],
        "tail_fraction": round(1 - at["step"] / steps, 4) if steps else None,
        "first_gain_ce": first_gain,
        "tail_gain_ce": tail_gain,
        "tail_over_first": ratio,
        "bound": gain,
        "status": status,
        "flattened": status == "flattened",
    }
