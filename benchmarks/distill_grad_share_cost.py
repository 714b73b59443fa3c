"""What logging each loss term's gradient norm costs: a logged DSKD step against a plain one, timed.

    python benchmarks/distill_grad_share_cost.py [--quick] [--repeats N] [--device cpu|cuda] [--threads N]

The setup is distill_overhead.py's (the bundled SmolLM2-135M teacher with a 15-layer student, top 2 trained,
and a synthetic store shaped like a real one; `--quick`: a small random Llama). One stepper runs optimizer
steps numbered 10 (a --grad-norm-every 10 step: one torch.autograd.grad per term) and 11 (not logged),
interleaved ABAB with the order flipped every round. The last line is a JSON object:
- logged_over_plain_step_ratio: median logged step time / median plain step time;
- mean_overhead_at_every_10: (ratio - 1) / 10, the run's average extra time per step at the default.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import numpy as np
from distill_overhead import make_stepper, make_targets, make_teacher, make_windows, parse, resolve, shapes, sync


def timed_step(stepper, rows, number: int, device) -> float:
    sync(device)
    t = time.perf_counter()
    stepper.step([rows], number)
    sync(device)
    return time.perf_counter() - t


def main() -> None:
    args = parse()
    import torch

    torch.set_num_threads(args.threads)
    device = resolve(args.device)
    sh = shapes(args.quick)
    repeats = args.repeats or (8 if args.quick else 6)
    teacher, weights = make_teacher(sh, device)
    windows, data = make_windows(sh, teacher, 4 * sh["batch"])
    targets = make_targets(windows, sh, device, args.store)
    batches = [np.arange(i * sh["batch"], (i + 1) * sh["batch"]) for i in range(len(windows) // sh["batch"])]
    stepper = make_stepper(sh, teacher, windows, targets, 1.0)
    assert stepper.cfg.grad_norm_every == 10
    timed_step(stepper, batches[0], 10, device)  # warm-up, both kinds
    timed_step(stepper, batches[0], 11, device)
    logged, plain = [], []
    for r in range(repeats):
        rows = batches[r % len(batches)]
        for number in (10, 11) if r % 2 == 0 else (11, 10):
            (logged if number == 10 else plain).append(timed_step(stepper, rows, number, device))
    ratio = statistics.median(logged) / statistics.median(plain)
    print(f"setup: {weights}, data {data}, {sh}", file=sys.stderr)
    print(
        f"logged step median {statistics.median(logged):.3f}s, plain {statistics.median(plain):.3f}s", file=sys.stderr
    )
    result = {
        "device": str(device),
        "teacher": weights,
        "repeats": repeats,
        "logged_over_plain_step_ratio": round(ratio, 4),
        "mean_overhead_at_every_10": round((ratio - 1) / 10, 4),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
