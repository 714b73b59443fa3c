"""The report: the dev grid, the test table, the comparisons with their intervals, the verdicts, and the
gap-versus-dictionary-size figure."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .stats import (
    describe,
    flattening,
    holm,
    paired_t,
    paired_window_bootstrap,
    paired_window_bootstrap_mean,
    verdict,
    window_bootstrap,
)

__all__ = ["aggregate", "plot_gap", "markdown", "METRICS"]

METRICS = {  # key -> (label, higher is better)
    "ppl": ("test perplexity", False),
    "ce": ("test cross-entropy (nats)", False),
    "kl": ("KL(teacher || student), tau 2", False),
    "top1_agreement": ("top-1 agreement with the teacher", True),
    "wic_accuracy": ("WiC accuracy (student states)", True),
    "synant_gap": ("held-out syn/ant: mean cos syn - ant", True),
    "synant_auc": ("held-out syn/ant: ROC AUC", True),
    "simlex_spearman": ("SimLex-999 Spearman (carrier states)", True),
    "nearest_sense_retrieval": ("nearest sense is y_t's (largest dictionary)", True),
    "nearest_sense_agreement": ("nearest own sense = the teacher's", True),
}
PROBES = (
    "wic_accuracy",
    "synant_gap",
    "synant_auc",
    "simlex_spearman",
    "nearest_sense_retrieval",
    "nearest_sense_agreement",
)


def _flat(run: dict[str, Any], n_boot: int) -> dict[str, Any]:
    t = run["test"]
    out = window_bootstrap(np.asarray(t["nll"]), np.asarray(t["tokens"]), n_boot, seed=run["seed"])
    out.update(kl=t["kl"], top1_agreement=t["top1_agreement"])
    probes = (t.get("probes") or {}).get("student") or {}
    out.update({k: probes.get(k) for k in PROBES})
    return out


def aggregate(exp, tuning: list[dict], tests: list[dict], chosen: dict, reference: dict) -> dict[str, Any]:
    """-> {dev_grid, chosen, runs, table, comparisons, gap_by_size, flattening}."""
    steps = {r["key"]: r["steps"] for r in tuning + tests}
    grid = [
        {
            "arm": r["arm"],
            "setting": r["setting"],
            "dev_ce": r["dev_ce"],
            "dev_ppl": r["dev_ppl"],
            "steps": r["steps"],
            "push_active_steps": r.get("push_active_steps"),
            "margins": {k: (r.get("margins") or {}).get(k) for k in ("beta_p", "beta_n")},
            "chosen": chosen.get(r["arm"], {}).get("index") == r["index"],
            "flattening": flattening(r["curve"], steps[r["key"]], exp.flat_tail, exp.flat_gain),
        }
        for r in tuning
    ]
    runs = []
    for r in tests:
        runs.append(
            {
                k: r[k]
                for k in ("arm", "setting", "seed", "store_size", "steps", "wall_s", "dev_ce", "push_active_steps")
            }
            | {
                "metrics": _flat(r, exp.bootstrap),
                "margins": r.get("margins"),
                "grad_share": (r.get("grad_share") or {}).get("mean"),
                "flattening": flattening(r["curve"], r["steps"], exp.flat_tail, exp.flat_gain),
            }
        )
    # cells: (arm, store size) -> {seed: run}
    cells: dict[tuple[str, int], dict[int, dict]] = {}
    for r, raw in zip(runs, tests):
        cells.setdefault((r["arm"], r["store_size"]), {})[r["seed"]] = r | {"_raw": raw}
    table = {
        f"{arm}@{size}": {k: describe([c[s]["metrics"][k] for s in sorted(c)]) for k in METRICS} | {"seeds": sorted(c)}
        for (arm, size), c in sorted(cells.items())
    }
    comparisons: dict[str, Any] = {}
    gap_by_size: dict[str, list] = {}
    for name, (a_key, b_key) in _pairs(exp, cells).items():
        comp = _compare(exp, cells[a_key], cells[b_key])
        comp["arms"] = [f"{a_key[0]}@{a_key[1]}", f"{b_key[0]}@{b_key[1]}"]
        comparisons[name] = comp
        if b_key[0] == exp.baseline:
            gap_by_size.setdefault(a_key[0], []).append(
                {"store_size": a_key[1], **{k: comp["ppl"][k] for k in ("mean", "t_ci95", "diffs", "n")}}
            )
    family = _holm(exp, comparisons)
    for r in runs:
        r.pop("_raw", None)
    return {
        "run_lengths": sorted({r["steps"] for r in tuning + tests}),
        "dev_grid": grid,
        "chosen": chosen,
        "runs": runs,
        "table": table,
        "comparisons": comparisons,
        "multiple_comparisons": family,
        "gap_by_size": gap_by_size,
        "grad_share": _grad_shares(tests or tuning),
        "flattening_summary": {"dev_grid": _flat_summary(grid), "test_runs": _flat_summary(runs)},
        "reference": {
            "probes": reference.get("probes"),
            "teacher_test_ppl": math.exp(
                sum(reference["teacher_test"]["nll"]) / sum(reference["teacher_test"]["tokens"])
            ),
            "untrained_test_ppl": math.exp(
                sum(reference["untrained_test"]["nll"]) / sum(reference["untrained_test"]["tokens"])
            ),
            "untrained_dev_ce": reference["untrained_dev_ce"],
        },
    }


def _pairs(exp, cells: dict) -> dict[str, tuple[tuple[str, int], tuple[str, int]]]:
    """The comparisons: every arm (at each of its sizes) minus the baseline, and every treatment minus every
    control (at the same dictionary size when the control ran at it, else at the control's largest)."""

    def sizes(arm: str) -> list[int]:
        return sorted(sz for a, sz in cells if a == arm)

    out: dict[str, tuple[tuple[str, int], tuple[str, int]]] = {}
    base = sizes(exp.baseline)
    for arm, size in sorted(cells):
        if arm != exp.baseline and base:
            out[f"{arm}@{size} - {exp.baseline}"] = ((arm, size), (exp.baseline, base[-1]))
    for arm in exp.trial_arms():
        for control in exp.controls:
            have = sizes(control)
            for size in sizes(arm) if have else []:
                c_size = size if size in have else have[-1]
                out[f"{arm}@{size} - {control}@{c_size}"] = ((arm, size), (control, c_size))
    return out


def _compare(exp, a: dict[int, dict], b: dict[int, dict]) -> dict[str, Any]:
    """a - b paired by seed for every metric (t-interval, verdict), and for perplexity the paired window
    bootstrap: per seed, and of the seeds' mean difference."""
    seeds = [s for s in sorted(a) if s in b]
    comp: dict[str, Any] = {"seeds": seeds}
    for k, (_, higher) in METRICS.items():
        p = paired_t([a[s]["metrics"][k] for s in seeds], [b[s]["metrics"][k] for s in seeds])
        p["verdict"] = verdict(p, higher)
        comp[k] = p
    raw = lambda c, s: c[s]["_raw"]["test"]  # noqa: E731
    comp["ppl"]["window_bootstrap_ci95_by_seed"] = {
        str(s): paired_window_bootstrap(raw(a, s)["nll"], raw(b, s)["nll"], raw(b, s)["tokens"], exp.bootstrap, s)
        for s in seeds
    }
    if seeds:
        comp["ppl"]["window_bootstrap_mean"] = paired_window_bootstrap_mean(
            [raw(a, s)["nll"] for s in seeds],
            [raw(b, s)["nll"] for s in seeds],
            raw(b, seeds[0])["tokens"],
            exp.bootstrap,
        )
    return comp


def _holm(exp, comparisons: dict[str, Any]) -> dict[str, Any]:
    """Holm's correction over the headline family: every comparison whose first arm is a treatment, on each
    headline metric (its paired t-test's p). Each member gets p_holm and verdict_holm."""
    treat = set(exp.trial_arms())
    members = {
        (name, k): comp[k].get("p_value")
        for name, comp in comparisons.items()
        for k in exp.headline_metrics
        if k in comp and name.partition("@")[0] in treat
    }
    adjusted = holm({f"{n} | {k}": p for (n, k), p in members.items()}, exp.family_alpha)
    for (name, k), _p in members.items():
        h = adjusted[f"{name} | {k}"]
        c = comparisons[name][k]
        c["p_holm"] = h["p_holm"]
        if c.get("t_ci95") is None:
            c["verdict_holm"] = c["verdict"]  # no interval, no verdict
        elif h["rejected"]:
            c["verdict_holm"] = c["verdict"]
        else:
            c["verdict_holm"] = "no detectable difference"
    return {
        "method": f"Holm step-down over {len(members)} tests at family-wise alpha {exp.family_alpha}: the comparisons of "
        f"the treatments {sorted(treat)} with the baseline and the controls, on {list(exp.headline_metrics)} "
        "(paired t-test over seeds); a verdict survives when its Holm-adjusted p <= alpha",
        "tests": len(members),
        "alpha": exp.family_alpha,
        "adjusted": adjusted,
    }


def _grad_shares(runs: list[dict]) -> dict[str, Any]:
    """Each arm's mean share of the total gradient per loss term, over its runs that logged one."""
    by_arm: dict[str, list[dict]] = {}
    for r in runs:
        g = (r.get("grad_share") or {}).get("mean")
        if isinstance(g, dict):
            by_arm.setdefault(r["arm"], []).append(g)
    out = {}
    for arm, shares in by_arm.items():
        terms = sorted({k for g in shares for k in g})
        out[arm] = {
            "runs": len(shares),
            "mean": {
                k: float(np.nanmean([g[k] for g in shares if isinstance(g.get(k), (int, float))] or [np.nan]))
                for k in terms
            },
        }
    return out


def _flat_summary(grid: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in grid:
        st = (row.get("flattening") or {}).get("status", "unknown")
        out[st] = out.get(st, 0) + 1
    return out


def plot_gap(report: dict[str, Any], exp, path: Path) -> None:
    """Arm - baseline test perplexity against the dictionary size (log x): mean over seeds with the paired
    t-interval, and every seed's difference as a dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colors = ["#2ca02c", "#ff7f0e", "#d62728", "#9467bd", "#8c564b"]
    for i, (arm, points) in enumerate(sorted(report["gap_by_size"].items())):
        pts = sorted(points, key=lambda p: p["store_size"])
        xs = np.asarray([p["store_size"] for p in pts], float) * (1 + 0.04 * i)
        ys = [p["mean"] for p in pts]
        lo = [p["mean"] - p["t_ci95"][0] if p["t_ci95"] else 0 for p in pts]
        hi = [p["t_ci95"][1] - p["mean"] if p["t_ci95"] else 0 for p in pts]
        label = next((a.label for a in exp.arms if a.name == arm), arm)
        base = next((a.label for a in exp.arms if a.name == exp.baseline), exp.baseline)
        ax.errorbar(
            xs,
            ys,
            yerr=[lo, hi],
            color=colors[i % len(colors)],
            marker="o",
            capsize=4,
            label=f"{label} - {base}",
        )
        for x, p in zip(xs, pts):
            ax.scatter([x] * len(p["diffs"]), p["diffs"], color=colors[i % len(colors)], s=10, alpha=0.5)
    ax.axhline(0, color="k", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("dictionary size (store tokens, log scale)")
    ax.set_ylabel(f"test perplexity gap vs {exp.baseline} (lower = better)")
    ax.set_title("gap vs dictionary size: mean over seeds, 95% paired t-interval; dots = seeds", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _setting(setting: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(setting.items()))


def _label(exp, key: str) -> str:
    """'dskd@3000' -> 'DSKD @ 3,000' (the arm's label)."""
    name, _, size = key.partition("@")
    label = next((a.label or a.name for a in exp.arms if a.name == name), name)
    return f"{label} @ {int(size):,}" if size else label


def _ci(c: dict | None, key: str = "t_ci95", fmt: str = "{:+.3f}") -> str:
    iv = (c or {}).get(key)
    return f" [{fmt.format(iv[0])}, {fmt.format(iv[1])}]" if iv else ""


def _num(x: Any, fmt: str = "{:.3f}") -> str:
    return fmt.format(x) if isinstance(x, (int, float)) and math.isfinite(x) else "–"


def markdown(report: dict[str, Any], exp) -> str:
    """The report's tables as Markdown (written beside the JSON): references and probes of the teacher, the
    dictionaries, the dev grid, the test table, the differences (t-interval and window bootstrap, Holm), the
    gradient shares."""
    ref = report.get("reference") or {}
    labels = {a.name: a.label or a.name for a in exp.arms}
    lines = [
        f"Run lengths: {', '.join(map(str, report.get('run_lengths') or [])) or '–'} optimizer steps. "
        f"Teacher test perplexity {ref.get('teacher_test_ppl', float('nan')):.2f}; the untrained student "
        f"{ref.get('untrained_test_ppl', float('nan')):.1f}.",
    ]
    probes = ref.get("probes") or {}
    if probes.get("teacher"):
        lines += ["", "**Probes of the references** (the teacher is every student's target):", ""]
        lines += ["| model | " + " | ".join(METRICS[k][0] for k in PROBES) + " |", "|---|" + "---|" * len(PROBES)]
        for who in ("teacher", "untrained_student"):
            row = probes.get(who) or {}
            lines.append(f"| {who.replace('_', ' ')} | " + " | ".join(_num(row.get(k)) for k in PROBES) + " |")
    stores = (report.get("setup") or {}).get("stores") or {}
    if stores:
        lines += [
            "",
            "**Dictionaries** (k-means senses; raw = a sense that is one sample, not a centroid):",
            "",
            "| store tokens | articles | tokens with senses | senses | raw-sample senses |",
            "|---|---|---|---|---|",
        ]
        arts = (report.get("setup") or {}).get("store_articles") or {}
        for size, st in sorted(stores.items(), key=lambda x: int(x[0])):
            raw = st.get("senses_from_one_sample")
            lines.append(
                f"| {int(size):,} | {arts.get(size, '–')} | {st.get('tokens', '–')} | {st.get('senses', '–')} | "
                f"{_num(raw * 100 if raw is not None else None, '{:.0f}%')} |"
            )
    lines += [
        "",
        "**Dev grid** (tuning seed, largest store; lowest final dev CE chosen, marked *):",
        "",
        "| arm | setting | dev CE | dev ppl | steps | push active (steps) | beta_p / beta_n | dev curve, last "
        f"{exp.flat_tail:.0%} (tail/first gain) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in report.get("dev_grid", []):
        sense = float(row["setting"].get("lambda_sense", 1.0)) > 0  # the sense loss runs: margins and push
        m, f = row.get("margins") or {}, row.get("flattening") or {}
        margins = (
            f"{m.get('beta_p', 0):.2f} / {m.get('beta_n', 0):.2f}" if sense and m.get("beta_n") is not None else "–"
        )
        flat = f"{f.get('status', '–')} ({f.get('tail_over_first', float('nan')):.2f})" if f else "–"
        lines.append(
            f"| {labels.get(row['arm'], row['arm'])}{' *' if row.get('chosen') else ''} | {_setting(row['setting'])} | "
            f"{row['dev_ce']:.3f} | {row['dev_ppl']:.1f} | {row['steps']} | "
            f"{row['push_active_steps'] if sense else '–'} | {margins} | {flat} |"
        )
    keys = list(METRICS)
    heads = " | ".join(METRICS[k][0].replace("|", "\\|") for k in keys)  # "KL(teacher || student)"

    def metric_table(title: str, first: str) -> list[str]:
        return ["", title, "", f"| {first} | seeds | {heads} |", "|---|---|" + "---|" * len(keys)]

    lines += metric_table("**Test** (mean ± sd over seeds):", "arm @ store tokens")
    for key, row in (report.get("table") or {}).items():
        cells = [
            f"{row[k]['mean']:.3f} ± {row[k]['sd'] or 0:.3f}" if (row.get(k) or {}).get("mean") is not None else "–"
            for k in keys
        ]
        n = next((row[k]["n"] for k in keys if row.get(k)), 0)
        lines.append(f"| {_label(exp, key)} | {n} | " + " | ".join(cells) + " |")
    mc = report.get("multiple_comparisons") or {}
    lines += [
        "",
        "**Test perplexity differences** (a - b paired over seeds; the 95% t-interval over seeds; the 95% paired "
        "bootstrap over test windows of the seeds' mean difference, and per seed; the Holm-adjusted p over the "
        f"headline family of {mc.get('tests', 0)} tests and the verdict that survives it):",
        "",
        "| comparison | seeds | mean | t-interval (seeds) | window bootstrap (mean) | window bootstrap per seed | "
        "p | p (Holm) | verdict | verdict after Holm |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, row in (report.get("comparisons") or {}).items():
        c = row.get("ppl") or {}
        per_seed = "; ".join(
            f"{s}: [{iv[0]:+.2f}, {iv[1]:+.2f}]" for s, iv in (c.get("window_bootstrap_ci95_by_seed") or {}).items()
        )
        lines.append(
            f"| {_pair_label(exp, row, key)} | {len(row.get('seeds', []))} | {_num(c.get('mean'), '{:+.2f}')} | "
            f"{_ci(c, fmt='{:+.2f}').strip() or '–'} | {_ci(c.get('window_bootstrap_mean'), 'ci95', '{:+.2f}').strip() or '–'} | "
            f"{per_seed or '–'} | {_num(c.get('p_value'), '{:.3g}')} | {_num(c.get('p_holm'), '{:.3g}')} | "
            f"{c.get('verdict', '–')} | {c.get('verdict_holm', '(not in the family)')} |"
        )
    lines += metric_table(
        "**Differences on every metric** (paired over seeds, mean [95% t-interval], verdict; no interval, no verdict):",
        "comparison",
    )
    for key, row in (report.get("comparisons") or {}).items():
        cells = []
        for k in keys:
            c = row.get(k) or {}
            cells.append(f"{c['mean']:+.3f}{_ci(c)}, {c.get('verdict')}" if c.get("mean") is not None else "–")
        lines.append(f"| {_pair_label(exp, row, key)} | {len(row.get('seeds', []))} | " + " | ".join(cells) + " |")
    shares = report.get("grad_share") or {}
    if shares:
        terms = sorted({t for v in shares.values() for t in v["mean"]})
        lines += [
            "",
            "**Gradient shares** (each term's share of the total gradient norm on the trained parameters, mean over "
            "the logged steps and the arm's test runs):",
            "",
            "| arm | runs | " + " | ".join(terms) + " |",
            "|---|---|" + "---|" * len(terms),
        ]
        for arm, v in shares.items():
            lines.append(
                f"| {labels.get(arm, arm)} | {v['runs']} | " + " | ".join(_num(v["mean"].get(t)) for t in terms) + " |"
            )
    return "\n".join(lines) + "\n"


def _pair_label(exp, row: dict, key: str) -> str:
    a, b = row.get("arms") or key.split(" - ")
    return f"{_label(exp, a)} - {_label(exp, b)}"
