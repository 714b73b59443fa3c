"""Pin the per-step losses of short distill runs on a tiny model, to show a refactor keeps them bit-identical.

    python benchmarks/distill_loss_pin.py OUT.json             # write the per-step rows
    python benchmarks/distill_loss_pin.py OUT.json --against OLD.json   # and compare them, bit for bit

benchmarks/results/distill_loss_pin.json is the pin of the trainer before and after it became `Trainer`
(bit-identical; torch on CPU). Floating-point results depend on the torch build and the machine, so compare
pins made on one machine: make the old pin from a checkout of the old code, then the new one.

Five runs of 4 steps on the tests' tiny Llama teacher and store (tests/helpers.py): DSKD with the paper's
margins, the KD baseline, 'auto' beta_p with grad accumulation 2, the frozen-prefix cache with the hidden
term on the sensed positions, and a held-out evaluation. Each loss term of each step is written as
float.hex, so "identical" means bit-identical. The rows' timing fields and the per-term gradient norms
(--grad-norm-every 1 logs them on every step, to show that logging them changes no loss) are dropped.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

RUNS = {
    "dskd_paper": {},
    "kd_baseline": {"lambda_sense": 0.0},
    "auto_beta_p_accum2": {"beta_p": "auto", "grad_accum": 2, "batch_size": 2},
    "cache_hidden_sensed": {
        "cache": True,
        "lambda_hidden": 1.0,
        "hidden_positions": "sensed",
        "epochs": 3.0,
        "max_steps": 0,
    },
    "eval_holdout": {"eval_holdout": 4, "eval_every": 2},
}
DROP = {"elapsed_s"}


def _hex(value):
    if isinstance(value, float):
        return value.hex()
    if isinstance(value, dict):
        return {k: _hex(v) for k, v in value.items()}
    return value


def pin(folder: Path, extra: dict) -> dict:
    from helpers import distill_config, make_store, make_teacher_dir, write_corpus

    from sensekit.distill.train import train
    from sensekit.model.teacher import load_teacher

    teacher_dir = make_teacher_dir(folder / "teacher")
    store = make_store(folder / "tiny.sensekit", teacher_dir)
    corpus = write_corpus(folder / "train.txt")
    teacher = load_teacher(str(teacher_dir), device="cpu")
    out = {}
    for name, overrides in RUNS.items():
        cfg = distill_config(store, corpus, teacher_dir, folder / name, **overrides, **extra)
        train(cfg, teacher=teacher)
        rows = [json.loads(x) for x in (folder / name / "metrics.jsonl").read_text().splitlines()]
        evals = folder / name / "eval.jsonl"
        out[name] = {
            "steps": [{k: _hex(v) for k, v in r.items() if k not in DROP and k != "grad_norms"} for r in rows],
            "eval": [_hex(json.loads(x)) for x in evals.read_text().splitlines()] if evals.is_file() else [],
        }
        for row in out[name]["eval"]:
            row.pop("elapsed_s", None)
            row.pop("tokens_per_s", None)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--against", type=Path, help="a pin written before the change: compare bit for bit")
    ap.add_argument("--grad-norm-every", type=int, help="log the per-term gradient norms every N steps")
    args = ap.parse_args()
    extra = {} if args.grad_norm_every is None else {"grad_norm_every": args.grad_norm_every}
    with tempfile.TemporaryDirectory() as tmp:
        result = pin(Path(tmp), extra)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    if args.against is None:
        return 0
    old = json.loads(args.against.read_text(encoding="utf-8"))
    diffs = []
    for name, run in old.items():
        for which in ("steps", "eval"):
            for a, b in zip(run[which], result[name][which]):
                for k, v in a.items():
                    if b.get(k) != v:
                        diffs.append(f"{name} {which} step {a.get('step')} {k}: {v} -> {b.get(k)}")
            if len(run[which]) != len(result[name][which]):
                diffs.append(f"{name} {which}: {len(run[which])} rows -> {len(result[name][which])}")
    print("\n".join(diffs) if diffs else f"bit-identical: {len(old)} runs, every step's losses and evals")
    return 1 if diffs else 0


if __name__ == "__main__":
    raise SystemExit(main())
