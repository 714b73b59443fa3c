"""The report: the dev grid, the test table, the comparisons with their intervals, the verdicts, and the
gap-versus-dictionary-size figure."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .stats import describe, flattening, paired_t, paired_window_bootstrap, verdict, window_bootstrap

__all__ = ["aggregate", "plot_gap", "markdown", "METRICS"]

METRICS = {  # key -> (label, higher is better)
    "ppl": ("test perplexity", False),
    "ce": ("test cross-entropy (nats)", False),
    "kl": ("KL(teacher || student), tau 2", False),
    "top1_agreement": ("top-1 agreement with the teacher", True),
    "wic_accuracy": ("WiC accuracy (student states)", True),
    "synant_gap": ("held-out syn/ant: mean cos syn - ant", True),
    "synant_auc": ("held-out syn/ant: ROC AUC", True),
}


def _flat(run: dict[str, Any], n_boot: int) -> dict[str, Any]:
    t = run["test"]
    out = window_bootstrap(np.asarray(t["nll"]), np.asarray(t["tokens"]), n_boot, seed=run["seed"])
    out.update(kl=t["kl"], top1_agreement=t["top1_agreement"])
    probes = (t.get("probes") or {}).get("student") or {}
    out.update({k: probes.get(k) for k in ("wic_accuracy", "synant_gap", "synant_auc")})
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
            | {"metrics": _flat(r, exp.bootstrap), "margins": r.get("margins")}
        )
    # cells: (arm, store size) -> {seed: run}
    cells: dict[tuple[str, int], dict[int, dict]] = {}
    for r, raw in zip(runs, tests):
        cells.setdefault((r["arm"], r["store_size"]), {})[r["seed"]] = r | {"_raw": raw}
    table = {
        f"{arm}@{size}": {k: describe([c[s]["metrics"][k] for s in sorted(c)]) for k in METRICS} | {"seeds": sorted(c)}
        for (arm, size), c in sorted(cells.items())
    }
    base = [c for (a, _), c in cells.items() if a == exp.baseline]
    comparisons: dict[str, Any] = {}
    gap_by_size: dict[str, list] = {}
    if base:
        kd = base[0]
        for (arm, size), c in sorted(cells.items()):
            if arm == exp.baseline:
                continue
            seeds = [s for s in sorted(c) if s in kd]
            comp: dict[str, Any] = {"seeds": seeds}
            for k, (_, higher) in METRICS.items():
                p = paired_t([c[s]["metrics"][k] for s in seeds], [kd[s]["metrics"][k] for s in seeds])
                p["verdict"] = verdict(p, higher)
                comp[k] = p
            comp["ppl_window_bootstrap_ci95_by_seed"] = {
                str(s): paired_window_bootstrap(
                    c[s]["_raw"]["test"]["nll"],
                    kd[s]["_raw"]["test"]["nll"],
                    kd[s]["_raw"]["test"]["tokens"],
                    exp.bootstrap,
                    s,
                )
                for s in seeds
            }
            comparisons[f"{arm}@{size} - {exp.baseline}"] = comp
            gap_by_size.setdefault(arm, []).append(
                {"store_size": size, **{k: comp["ppl"][k] for k in ("mean", "t_ci95", "diffs", "n")}}
            )
    for r in runs:
        r.pop("_raw", None)
    return {
        "dev_grid": grid,
        "chosen": chosen,
        "runs": runs,
        "table": table,
        "comparisons": comparisons,
        "gap_by_size": gap_by_size,
        "reference": {
            "teacher_test_ppl": math.exp(
                sum(reference["teacher_test"]["nll"]) / sum(reference["teacher_test"]["tokens"])
            ),
            "untrained_test_ppl": math.exp(
                sum(reference["untrained_test"]["nll"]) / sum(reference["untrained_test"]["tokens"])
            ),
            "untrained_dev_ce": reference["untrained_dev_ce"],
        },
    }


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


def markdown(report: dict[str, Any], exp) -> str:
    """The report's dev grid, test table and comparisons as Markdown tables (written beside the JSON)."""
    ref = report.get("reference") or {}
    lines = [
        f"Teacher test perplexity {ref.get('teacher_test_ppl', float('nan')):.2f}; the untrained student "
        f"{ref.get('untrained_test_ppl', float('nan')):.1f}.",
        "",
        "**Dev grid** (tuning seed, largest store; lowest final dev CE chosen, marked *):",
        "",
        "| arm | setting | dev CE | dev ppl | steps | push active (steps) | beta_p / beta_n | flattened (tail/first gain) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    labels = {a.name: a.label or a.name for a in exp.arms}
    for row in report.get("dev_grid", []):
        sense = float(row["setting"].get("lambda_sense", 1.0)) > 0  # the sense loss runs: margins and push
        m, f = row.get("margins") or {}, row.get("flattening") or {}
        margins = f"{m.get('beta_p', 0):.2f} / {m.get('beta_n', 0):.2f}" if sense and m else "–"
        flat = f"{'yes' if f.get('flattened') else 'no'} ({f.get('tail_over_first', float('nan')):.2f})" if f else "–"
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
    lines += metric_table("**Differences** (paired over seeds, mean [95% t-interval], verdict):", "comparison")
    for key, row in (report.get("comparisons") or {}).items():
        a, _, b = key.partition(" - ")
        cells = []
        for k in keys:
            c = row.get(k) or {}
            interval = " [{:+.3f}, {:+.3f}]".format(*c["t_ci95"]) if c.get("t_ci95") else ""
            cells.append(f"{c['mean']:+.3f}{interval}, {c.get('verdict')}" if c.get("mean") is not None else "–")
        lines.append(
            f"| {_label(exp, a)} - {_label(exp, b)} | {len(row.get('seeds', []))} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines) + "\n"
