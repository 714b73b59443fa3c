"""What DSKD's sense loss and the frozen-prefix cache cost: one optimizer step, timed.

    python benchmarks/distill_overhead.py [--quick] [--repeats N] [--device cpu|cuda]

Prints a few lines, the last one a JSON object:
- dskd_over_kd_step_ratio: median DSKD step time / median KD step time. The same student
  (two copies with the same init), batch and data; the runs are interleaved (ABAB..., the
  order flipped every round) so that load from other processes hits both alike.
- dskd_over_kd_peak_mem_ratio: peak memory of DSKD / KD training, each in a fresh process
  (same setup, a warm-up step, then 3 steps). On CUDA: torch.cuda.max_memory_allocated. On
  CPU (torch keeps no CPU allocator statistics): the peak resident set size sampled by a
  thread every 0.2 ms, with glibc's mmap threshold fixed at 128 KiB so that freed tensors
  leave the RSS. The peak includes weights, optimizer state and, for DSKD, the dense sense
  targets; `dskd_over_kd_step_mem_ratio` compares only the rise above the pre-step level.
- dskd_over_kd_step_ratio_isolated: 1 + (gather/selection + sense loss forward/backward,
  timed alone) / KD step time; steadier than the end-to-end ratio on a loaded machine.
- cached_over_uncached_speedup: truncated student (15 of the teacher's layers, top 2
  trainable) with the frozen-prefix cache filled / without it, DSKD, interleaved, median.
- steps_per_s: DSKD optimizer steps per second (uncached).

The full run uses the bundled SmolLM2-135M teacher (30 layers, d=576, vocab 49,152) on
windows of the shared Wikipedia sample when both are present (else a random model of the
same shape on Zipf-distributed tokens). `--quick` uses a small random Llama (16 layers,
d=128, vocab 8192) on Zipf tokens so that it finishes in well under a minute on 2 CPU cores.
The sense store is synthetic but shaped like a real one: every token in the windows has
k=10 senses, 30% of them have synonyms (1 + geometric, mean 5) and antonyms (mean 1), and
5% of the units are span clouds (10 rows each), reachable as related words.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import shared_corpus


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small random model; under 60 s on a laptop CPU")
    ap.add_argument("--repeats", type=int, default=None, help="timed rounds per comparison")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--store", default=None, help="a real sense store of the teacher instead of the synthetic one")
    ap.add_argument("--mem-child", choices=["kd", "dskd"], help=argparse.SUPPRESS)
    ap.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (default 1: steadier timings on a shared machine)"
    )
    return ap.parse_args()


# -- the setup ------------------------------------------------------------------------------
def shapes(quick: bool) -> dict:
    if quick:
        return dict(
            kind="random-llama",
            layers=16,
            hidden=128,
            heads=4,
            kv=2,
            inter=256,
            vocab=8192,
            seq_len=128,
            batch=4,
            student_layers=15,
            train_top=2,
        )
    return dict(
        kind="smollm2-135m",
        layers=30,
        hidden=576,
        heads=9,
        kv=3,
        inter=1536,
        vocab=49152,
        seq_len=256,
        batch=4,
        student_layers=15,
        train_top=2,
    )


def make_teacher(sh: dict, device):
    import torch

    from sensekit.model.teacher import Teacher

    if sh["kind"] == "smollm2-135m":
        try:
            from sensekit.model.teacher import load_teacher

            t = load_teacher("smollm2-135m", device=str(device), dtype="float32")
            return t, "bundled SmolLM2-135M-Instruct (real weights)"
        except Exception as exc:  # noqa: BLE001  (benchmark: fall back to the same shape, random weights)
            print(
                f"bundled teacher unavailable ({type(exc).__name__}); using random weights of its shape",
                file=sys.stderr,
            )
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=sh["vocab"],
        hidden_size=sh["hidden"],
        intermediate_size=sh["inter"],
        num_hidden_layers=sh["layers"],
        num_attention_heads=sh["heads"],
        num_key_value_heads=sh["kv"],
        max_position_embeddings=2048,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(device).eval().requires_grad_(False)
    return Teacher(
        model=model,
        tokenizer=None,
        name="random-llama",
        revision="random",
        hidden_size=sh["hidden"],
        device=torch.device(device),
        dtype=torch.float32,
        tokenizer_json=None,
    ), "random Llama weights"


def make_windows(sh: dict, teacher, n: int):
    from sensekit.distill.data import Windows, pack_documents

    corpus = shared_corpus()
    if teacher.tokenizer is not None and corpus.is_file():
        from sensekit.distill.data import iter_documents

        return pack_documents(iter_documents([str(corpus)]), teacher.tokenizer, sh["seq_len"], n), "enwiki sample"
    rng = np.random.default_rng(0)
    ids = np.minimum(rng.zipf(1.2, size=(n, sh["seq_len"] + 1)), sh["vocab"] - 1).astype(np.int32)
    return Windows(ids, np.full(n, sh["seq_len"] + 1, np.int32)), "Zipf(1.2) token ids"


def make_targets(windows, sh: dict, device, store: str | None = None):
    """A synthetic store shaped like a real one (see the module docstring), straight into SenseTargets;
    or, with `store`, a real store built with the same teacher."""
    import torch

    from sensekit.distill.targets import SenseTargets

    if store:
        from sensekit.store import open_store

        with open_store(store) as s:
            return SenseTargets.from_store(s, sh["vocab"], device)

    rng = np.random.default_rng(1)
    V, d, k = sh["vocab"], sh["hidden"], 10
    toks = np.unique(windows.ids)
    n_span = max(1, len(toks) // 20)
    n_units = len(toks) + n_span
    emb = rng.standard_normal((n_units * k, d)).astype(np.float32)
    unit_rows = np.arange(n_units * k).reshape(n_units, k)
    token_unit = np.full(V, -1)
    token_unit[toks] = np.arange(len(toks))
    heads = rng.choice(toks, size=int(0.3 * len(toks)), replace=False)

    def csr(mean_extra: float, min_deg: int):
        deg = np.zeros(V, np.int64)
        deg[heads] = np.minimum(min_deg + rng.geometric(1.0 / (1.0 + mean_extra), len(heads)) - 1, 60)
        ptr = np.concatenate([[0], np.cumsum(deg)])
        vals = rng.integers(0, n_units, int(ptr[-1]))
        return torch.from_numpy(ptr).to(device), torch.from_numpy(vals).to(device)

    syn_ptr, syn_unit = csr(4.0, 1)
    ant_ptr, ant_unit = csr(1.0, 0)
    return SenseTargets(
        torch.from_numpy(emb).to(device),
        torch.from_numpy(unit_rows).to(device),
        torch.from_numpy(token_unit).to(device),
        syn_ptr,
        syn_unit,
        ant_ptr,
        ant_unit,
        n_span,
    )


def make_stepper(sh, teacher, windows, targets, lambda_sense: float, cache_dir: Path | None = None):
    import torch
    from accelerate import Accelerator
    from transformers import get_cosine_schedule_with_warmup

    from sensekit.distill.cache import PrefixCache
    from sensekit.distill.checkpoint import TrainState
    from sensekit.distill.config import DistillConfig
    from sensekit.distill.student import DistillStudent
    from sensekit.distill.train import RunInputs, Stepper, param_groups
    from sensekit.model.families import TeacherLogits
    from sensekit.model.layers import build_truncated

    cfg = DistillConfig(
        store="synthetic",
        data=("synthetic",),
        student_layers=sh["student_layers"],
        train_layers=f"top{sh['train_top']}",
        seq_len=sh["seq_len"],
        batch_size=sh["batch"],
        lambda_sense=lambda_sense,
        cache=cache_dir is not None,
        warmup_frac=0.0,
        lr=1e-5,
        max_steps=10**6,
    )
    acc = Accelerator(cpu=teacher.device.type == "cpu")
    torch.manual_seed(0)
    lm = build_truncated(teacher.model, cfg.student_selection, cfg.train_selection)
    model = DistillStudent(lm, teacher.hidden_size, teacher.model.config.vocab_size, n_trainable_top=sh["train_top"])
    model.eval()
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr)
    sched = get_cosine_schedule_with_warmup(opt, 0, 10**6)
    model, opt = acc.prepare(model, opt)
    cache = None
    if cache_dir is not None:
        cache = PrefixCache(cache_dir, len(windows), windows.seq_len, teacher.hidden_size, "bench")
    gen = torch.Generator(device=acc.device).manual_seed(0)
    inputs = RunInputs(teacher, TeacherLogits(teacher), targets, windows, cache)
    return Stepper(cfg, acc, inputs, model, TrainState(acc.unwrap_model(model), opt, sched, gen))


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(stepper, rows, device) -> float:
    sync(device)
    t = time.perf_counter()
    stepper.step([rows], 1)
    sync(device)
    return time.perf_counter() - t


def interleave(a, b, batches, device, repeats: int) -> tuple[list[float], list[float]]:
    ta, tb = [], []
    for r in range(repeats):
        rows = batches[r % len(batches)]
        first, second = (a, b) if r % 2 == 0 else (b, a)
        t1 = timed(first, rows, device)
        t2 = timed(second, rows, device)
        (ta, tb)[first is b].append(t1)
        (ta, tb)[second is b].append(t2)
    return ta, tb


def isolated_sense_cost(stepper, batches, device, repeats: int) -> float:
    """Median seconds of what DSKD adds to a KD step: the gather/selection and the sense loss forward + backward."""
    import torch

    from sensekit.distill.losses import sense_loss

    cfg, out, inputs = stepper.cfg, [], stepper.inputs
    d = inputs.teacher.hidden_size
    for r in range(repeats):
        rows = batches[r % len(batches)]
        input_ids, attn, labels = inputs.windows.batch(rows, device)
        g = inputs.teacher.final_hidden(input_ids, attn).clone()
        hidden = torch.randn(*labels.shape, d, device=device, requires_grad=True)
        sync(device)
        t = time.perf_counter()
        sb = inputs.targets.gather_for(cfg, labels, g, stepper.state.sense_gen)
        lp, ln = sense_loss(hidden[sb.b, sb.t], sb.positives, sb.pos_mask, sb.negatives, sb.neg_mask, sb.active)
        (lp + ln).backward()
        sync(device)
        out.append(time.perf_counter() - t)
    return statistics.median(out)


# -- memory ----------------------------------------------------------------------------------
def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# glibc: serve every allocation >= 128 KiB with its own mmap and give it back on free (a fixed
# threshold turns off glibc's adaptive one), so the resident set follows torch's live tensors.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072", "MALLOC_TOP_PAD_": "0"}


def mem_child(args) -> None:
    """Child process: build the setup, warm up, run 3 steps with lambda 1 (dskd) or 0 (kd); print peak memory.

    CUDA: torch.cuda.max_memory_allocated. CPU: the resident set size, sampled every 0.2 ms by a
    thread while stepping (see MALLOC_ENV). `base` is the memory just before the timed steps.
    """
    import threading

    import torch

    device = resolve(args.device)
    sh = shapes(args.quick)
    teacher, _ = make_teacher(sh, device)
    windows, _ = make_windows(sh, teacher, 4 * sh["batch"])
    dskd = args.mem_child == "dskd"
    targets = make_targets(windows, sh, device, args.store) if dskd else None  # KD holds no dictionary
    stepper = make_stepper(sh, teacher, windows, targets, 1.0 if dskd else 0.0)
    batches = [np.arange(i * sh["batch"], (i + 1) * sh["batch"]) for i in range(4)]
    stepper.step([batches[0]], 1)  # warm-up: optimizer state exists from here on
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss()
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.0002)

    sampler = threading.Thread(target=sample, daemon=True)
    if device.type != "cuda":
        sampler.start()
    for i, rows in enumerate(batches[1:]):
        stepper.step([rows], i + 2)
    stop.set()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak[0] = torch.cuda.max_memory_allocated()
    else:
        sampler.join()
    print(json.dumps({"peak_bytes": int(peak[0]), "base_bytes": int(base)}))


def child_memory(args, which: str) -> dict:
    cmd = [sys.executable, __file__, "--mem-child", which, "--device", args.device, "--threads", str(args.threads)]
    cmd += ["--quick"] if args.quick else []
    cmd += ["--store", args.store] if args.store else []
    res = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, **MALLOC_ENV, "PYTHONWARNINGS": "ignore"}
    )
    if res.returncode != 0:
        raise RuntimeError(f"memory child {which} failed: {res.stderr[-1500:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def resolve(device: str):
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def main() -> None:
    args = parse()
    import torch

    torch.set_num_threads(args.threads)
    if args.mem_child:
        mem_child(args)
        return
    import torch

    t_start = time.perf_counter()
    device = resolve(args.device)
    sh = shapes(args.quick)
    repeats = args.repeats or (8 if args.quick else 6)
    teacher, weights = make_teacher(sh, device)
    n_windows = 4 * sh["batch"]
    windows, data = make_windows(sh, teacher, n_windows)
    targets = make_targets(windows, sh, device, args.store)
    batches = [np.arange(i * sh["batch"], (i + 1) * sh["batch"]) for i in range(len(windows) // sh["batch"])]
    print(
        f"setup: {weights}, {sh}, data {data}, targets {targets.summary()}, {time.perf_counter() - t_start:.1f}s",
        file=sys.stderr,
    )

    # 1. DSKD vs KD step time, interleaved
    dskd = make_stepper(sh, teacher, windows, targets, 1.0)
    kd = make_stepper(sh, teacher, windows, targets, 0.0)
    for s in (dskd, kd):  # warm-up
        timed(s, batches[0], device)
    t_dskd, t_kd = interleave(dskd, kd, batches, device, repeats)
    positions = dskd.micro_step(batches[0])["_positions"].item()
    step_ratio = statistics.median(t_dskd) / statistics.median(t_kd)
    paired = statistics.median(a / b for a, b in zip(t_dskd, t_kd))
    iso = isolated_sense_cost(dskd, batches, device, 3 * repeats)
    iso_ratio = 1.0 + iso / statistics.median(t_kd)
    print(
        f"step: dskd median {statistics.median(t_dskd):.3f}s, kd {statistics.median(t_kd):.3f}s, ratio {step_ratio:.4f} "
        f"(paired median {paired:.4f}); {positions:.0f} sense positions per batch",
        file=sys.stderr,
    )
    print(
        f"sense terms alone (gather + loss forward/backward): median {iso * 1e3:.1f} ms -> ratio {iso_ratio:.4f}",
        file=sys.stderr,
    )
    del kd

    # 2. frozen-prefix cache: filled cache vs the uncached path (both DSKD)
    with tempfile.TemporaryDirectory() as tmp:
        cached = make_stepper(sh, teacher, windows, targets, 1.0, cache_dir=Path(tmp) / "cache")
        for rows in batches:  # first pass fills it
            cached.step([rows], 1)
        timed(cached, batches[0], device)
        t_cached, t_uncached = interleave(cached, dskd, batches, device, repeats)
        assert cached.cache_hits >= repeats
        del cached
    speedup = statistics.median(t_uncached) / statistics.median(t_cached)
    print(
        f"cache: uncached {statistics.median(t_uncached):.3f}s, cached {statistics.median(t_cached):.3f}s, "
        f"speedup {speedup:.2f}",
        file=sys.stderr,
    )
    del dskd

    # 3. peak memory, each variant in a fresh process
    m = {name: child_memory(args, name) for name in ("dskd", "kd")}
    mem_ratio = m["dskd"]["peak_bytes"] / m["kd"]["peak_bytes"]
    step_mem_ratio = (m["dskd"]["peak_bytes"] - m["dskd"]["base_bytes"]) / max(
        1, m["kd"]["peak_bytes"] - m["kd"]["base_bytes"]
    )
    targets_bytes = sum(t.numel() * t.element_size() for t in targets.state_dict().values())
    print(
        f"memory: peak dskd {m['dskd']['peak_bytes'] / 2**20:.1f} MiB, kd {m['kd']['peak_bytes'] / 2**20:.1f} MiB "
        f"(above the pre-step level: {(m['dskd']['peak_bytes'] - m['dskd']['base_bytes']) / 2**20:.1f} vs "
        f"{(m['kd']['peak_bytes'] - m['kd']['base_bytes']) / 2**20:.1f} MiB); DSKD's dense targets {targets_bytes / 2**20:.2f} MiB",
        file=sys.stderr,
    )

    result = {
        "dskd_over_kd_step_ratio": round(step_ratio, 4),
        "dskd_over_kd_step_ratio_paired_median": round(paired, 4),
        "dskd_over_kd_step_ratio_isolated": round(iso_ratio, 4),
        "sense_terms_ms": round(iso * 1e3, 2),
        "dskd_over_kd_peak_mem_ratio": round(mem_ratio, 4),
        "dskd_over_kd_step_mem_ratio": round(step_mem_ratio, 4),
        "peak_mem_method": (
            "torch.cuda.max_memory_allocated"
            if device.type == "cuda"
            else "peak resident set size sampled every 0.2 ms by a thread, glibc mmap threshold fixed at "
            "128 KiB so freed tensors leave the RSS"
        )
        + "; one fresh process per variant, 3 steps after a warm-up step; the peak includes weights, optimizer "
        "state and, for DSKD only, the dense sense targets (the KD process does not load them); step_mem: the peak above the level before the steps",
        "mem_mib": {k: round(v[f] / 2**20, 1) for k, v in m.items() for f in ("peak_bytes",)}
        | {"dskd_targets": round(targets_bytes / 2**20, 2)},
        "cached_over_uncached_speedup": round(speedup, 3),
        "steps_per_s": round(1.0 / statistics.median(t_dskd), 4),
        "kd_steps_per_s": round(1.0 / statistics.median(t_kd), 4),
        "sense_positions_per_batch": positions,
        "repeats": repeats,
        "mode": "quick" if args.quick else "full",
        "model": {**sh, "weights": weights},
        "data": data,
        "targets": {"store": args.store or "synthetic", **targets.summary()},
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "wall_s": round(time.perf_counter() - t_start, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
