"""`sensekit distill compare`: KD against DSKD (and any other arms), tuned with equal budgets on dev, with the
dictionary's size as the variable, on a test split of many articles, resumably (docs/kd-vs-dskd.md).

    config.py    experiment.toml -> Experiment, arms, grids, RunSpec and its cache key
    data.py      split by article, held-out relation lemmas, windows per article, leak checks, store overlap
    runner.py    stores, runs (cached under their key, resumed), dev choice, the plan and its time estimate
    measure.py   per-window test NLL, KL, top-1 agreement; WiC and held-out syn/ant probes
    stats.py     bootstrap over windows, paired t over seeds, verdicts, the flattening check
    report.py    the dev grid, the table, the comparisons, the gap-versus-size figure
    (the command, `sensekit distill compare`, is in sensekit/cli/distill.py)
"""

from __future__ import annotations

from .config import Experiment, load_experiment
from .runner import Runner, run_experiment

__all__ = ["Experiment", "load_experiment", "Runner", "run_experiment"]
