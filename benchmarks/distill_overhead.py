"""What DSKD's sense loss and the frozen-prefix cache cost: one optimizer step, timed.

    python benchmarks/distill_overhead.py [--quick] [--repeats N] [--device cpu|cuda]

Prints a few lines, the last one a JSON object:
- dskd_over_kd_step_ratio: median DSKD step time / median KD step time. The same student
  (two copies with the same init), batch and data; the runs are interleaved (ABAB..., the
  order flipped every round) so that load from other processes hits both alike.
- dskd_over_kd_peak_mem_ratio: peak memory of a DSKD step / a KD step, each counted as the
  weights and optimizer state both hold plus the step's own peak allocation (same batch,
  after warm-up). On CUDA: torch.cuda.max_memory_allocated. On CPU (torch keeps no CPU
  allocator statistics): the profiler's memory timeline of the step. `_with_targets` also
  counts DSKD's dense sense tensors (the dictionary on the device), which KD does not hold.
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
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small random model; under 60 s on a laptop CPU")
    ap.add_argument("--repeats", type=int, default=None, help="timed rounds per comparison")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: steadier timings on a shared machine)")
    return ap.parse_args()


# -- the setup ------------------------------------------------------------------------------
def shapes(quick: bool) -> dict:
    if quick:
        return dict(kind="random-llama", layers=16, hidden=128, heads=4, kv=2, inter=256, vocab=8192, seq_len=128,
                    batch=4, student_layers=15, train_top=2)
    return dict(kind="smollm2-135m", layers=30, hidden=576, heads=9, kv=3, inter=1536, vocab=49152, seq_len=256,
                batch=4, student_layers=15, train_top=2)


def make_teacher(sh: dict, device):
    import torch

    from sensekit.build.teacher import Teacher

    if sh["kind"] == "smollm2-135m":
        try:
            from sensekit.build.teacher import load_teacher

            t = load_teacher("smollm2-135m", device=str(device), dtype="float32")
            return t, "bundled SmolLM2-135M-Instruct (real weights)"
        except Exception as exc:  # noqa: BLE001  (benchmark: fall back to the same shape, random weights)
            print(f"bundled teacher unavailable ({type(exc).__name__}); using random weights of its shape", file=sys.stderr)
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=sh["vocab"], hidden_size=sh["hidden"], intermediate_size=sh["inter"],
                      num_hidden_layers=sh["layers"], num_attention_heads=sh["heads"], num_key_value_heads=sh["kv"],
                      max_position_embeddings=2048, tie_word_embeddings=True)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(device).eval().requires_grad_(False)
    return Teacher(model=model, tokenizer=None, name="random-llama", revision="random", hidden_size=sh["hidden"],
                   device=torch.device(device), dtype=torch.float32, tokenizer_json=None), "random Llama weights"


def make_windows(sh: dict, teacher, n: int):
    from distill.data import Windows, pack_documents

    corpus = REPO.parent / "shared" / "data" / "corpus" / "enwiki-sample-pages-articles.xml.bz2"
    if teacher.tokenizer is not None and corpus.is_file():
        from distill.data import iter_documents

        return pack_documents(iter_documents([str(corpus)]), teacher.tokenizer, sh["seq_len"], n), "enwiki sample"
    rng = np.random.default_rng(0)
    ids = np.minimum(rng.zipf(1.2, size=(n, sh["seq_len"] + 1)), sh["vocab"] - 1).astype(np.int32)
    return Windows(ids, np.full(n, sh["seq_len"] + 1, np.int32)), "Zipf(1.2) token ids"


def make_targets(windows, sh: dict, device):
    """A synthetic store shaped like a real one (see the module docstring), straight into SenseTargets."""
    import torch

    from distill.targets import SenseTargets

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
    return SenseTargets(torch.from_numpy(emb).to(device), torch.from_numpy(unit_rows).to(device),
                        torch.from_numpy(token_unit).to(device), syn_ptr, syn_unit, ant_ptr, ant_unit, n_span)


def make_stepper(sh, teacher, windows, targets, lambda_sense: float, cache_dir: Path | None = None):
    import torch
    from accelerate import Accelerator
    from transformers import get_cosine_schedule_with_warmup

    from distill.cache import PrefixCache
    from distill.config import DistillConfig
    from distill.student import DistillStudent, build_truncated
    from distill.train import Stepper, _param_groups

    cfg = DistillConfig(store="synthetic", data=("synthetic",), student_layers=sh["student_layers"],
                        train_top_layers=sh["train_top"], seq_len=sh["seq_len"], batch_size=sh["batch"],
                        lambda_sense=lambda_sense, cache=cache_dir is not None, warmup_frac=0.0, lr=1e-5, max_steps=10 ** 6)
    acc = Accelerator(cpu=teacher.device.type == "cpu")
    torch.manual_seed(0)
    lm = build_truncated(teacher.model, cfg.student_layers, cfg.train_top_layers)
    model = DistillStudent(lm, teacher.hidden_size, teacher.model.config.vocab_size, n_trainable_top=cfg.train_top_layers)
    model.eval()
    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr)
    sched = get_cosine_schedule_with_warmup(opt, 0, 10 ** 6)
    model, opt = acc.prepare(model, opt)
    cache = None
    if cache_dir is not None:
        cache = PrefixCache(cache_dir, len(windows), windows.seq_len, teacher.hidden_size, "bench")
    gen = torch.Generator(device=acc.device).manual_seed(0)
    return Stepper(cfg, acc, teacher, model, opt, sched, targets, windows, cache, gen)


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

    from distill.losses import sense_loss

    cfg, out = stepper.cfg, []
    d = stepper.teacher.hidden_size
    for r in range(repeats):
        rows = batches[r % len(batches)]
        input_ids, attn, labels = stepper.windows.batch(rows, device)
        g = stepper.teacher.final_hidden(input_ids, attn).clone()
        hidden = torch.randn(*labels.shape, d, device=device, requires_grad=True)
        sync(device)
        t = time.perf_counter()
        sb = stepper.targets.gather(labels, g, kappa=cfg.kappa, neighbors=cfg.neighbors, frac=cfg.sample_frac,
                                    floor=cfg.sample_floor, generator=stepper.sense_gen)
        lp, ln = sense_loss(hidden[sb.b, sb.t], sb.positives, sb.pos_mask, sb.negatives, sb.neg_mask, sb.active)
        (lp + ln).backward()
        sync(device)
        out.append(time.perf_counter() - t)
    return statistics.median(out)


# -- memory ----------------------------------------------------------------------------------
def step_peak_bytes(stepper, rows, device) -> int:
    """Peak bytes allocated during one optimizer step, above what was allocated before it.

    CUDA: torch.cuda.max_memory_allocated. CPU (torch keeps no CPU allocator statistics): the
    profiler's memory timeline (profile_memory=True), i.e. every tensor allocation and free of
    the step as the CPU allocator saw them, summed over categories at its peak.
    """
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        stepper.step([rows], 1)
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated() - base)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        stepper.step([rows], 1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "timeline.json"
        prof.export_memory_timeline(str(path), device="cpu")
        _, sizes = json.loads(path.read_text())
    return int(max(sum(x) for x in sizes))


def static_bytes(stepper) -> dict:
    """Memory both variants hold for the whole run (teacher, student copies, optimizer state) and DSKD's targets."""
    seen, common = set(), 0
    tensors = list(stepper.teacher.model.parameters()) + list(stepper.inner.parameters())
    for st in stepper.optimizer.state.values():
        tensors += [v for v in st.values() if hasattr(v, "data_ptr")]
    for t in tensors:
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            common += t.numel() * t.element_size()
    targets = sum(t.numel() * t.element_size() for t in stepper.targets.state_dict().values()) + \
        stepper.targets.emb_sq.numel() * stepper.targets.emb_sq.element_size()
    return {"common": common, "targets": targets}


def resolve(device: str):
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def main() -> None:
    args = parse()
    import torch

    torch.set_num_threads(args.threads)
    import torch

    t_start = time.perf_counter()
    device = resolve(args.device)
    sh = shapes(args.quick)
    repeats = args.repeats or (8 if args.quick else 6)
    teacher, weights = make_teacher(sh, device)
    n_windows = 4 * sh["batch"]
    windows, data = make_windows(sh, teacher, n_windows)
    targets = make_targets(windows, sh, device)
    batches = [np.arange(i * sh["batch"], (i + 1) * sh["batch"]) for i in range(len(windows) // sh["batch"])]
    print(f"setup: {weights}, {sh}, data {data}, targets {targets.summary()}, {time.perf_counter() - t_start:.1f}s",
          file=sys.stderr)

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
    print(f"step: dskd median {statistics.median(t_dskd):.3f}s, kd {statistics.median(t_kd):.3f}s, ratio {step_ratio:.4f} "
          f"(paired median {paired:.4f}); {positions:.0f} sense positions per batch", file=sys.stderr)
    print(f"sense terms alone (gather + loss forward/backward): median {iso * 1e3:.1f} ms -> ratio {iso_ratio:.4f}",
          file=sys.stderr)
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
    print(f"cache: uncached {statistics.median(t_uncached):.3f}s, cached {statistics.median(t_cached):.3f}s, "
          f"speedup {speedup:.2f}", file=sys.stderr)
    del dskd

    # 3. peak memory of a step (same batch, after warm-up), and what each variant holds throughout
    peaks = {}
    for name, lam in (("dskd", 1.0), ("kd", 0.0)):
        st = make_stepper(sh, teacher, windows, targets, lam)
        st.step([batches[0]], 1)
        peaks[name] = step_peak_bytes(st, batches[1 % len(batches)], device)
        if name == "dskd":
            held = static_bytes(st)
        del st
    step_mem_ratio = peaks["dskd"] / peaks["kd"]
    mem_ratio = (held["common"] + peaks["dskd"]) / (held["common"] + peaks["kd"])
    mem_ratio_targets = (held["common"] + held["targets"] + peaks["dskd"]) / (held["common"] + peaks["kd"])
    print(f"memory: step peak dskd {peaks['dskd'] / 2**20:.2f} MiB, kd {peaks['kd'] / 2**20:.2f} MiB; held by both "
          f"{held['common'] / 2**20:.1f} MiB; DSKD's dense targets {held['targets'] / 2**20:.2f} MiB", file=sys.stderr)

    result = {
        "dskd_over_kd_step_ratio": round(step_ratio, 4),
        "dskd_over_kd_step_ratio_paired_median": round(paired, 4),
        "dskd_over_kd_step_ratio_isolated": round(iso_ratio, 4),
        "sense_terms_ms": round(iso * 1e3, 2),
        "dskd_over_kd_peak_mem_ratio": round(mem_ratio, 4),
        "dskd_over_kd_peak_mem_ratio_with_targets": round(mem_ratio_targets, 4),
        "dskd_over_kd_step_peak_ratio": round(step_mem_ratio, 4),
        "peak_mem_method": ("torch.cuda.max_memory_allocated" if device.type == "cuda" else
                            "torch.profiler memory timeline (CPU allocator events) of one step")
        + "; peak = weights + optimizer state held by both + the step's peak allocation; "
          "_with_targets also counts DSKD's dense sense tensors",
        "mem_mib": {"step_peak_dskd": round(peaks["dskd"] / 2**20, 2), "step_peak_kd": round(peaks["kd"] / 2**20, 2),
                    "held_by_both": round(held["common"] / 2**20, 1), "dskd_targets": round(held["targets"] / 2**20, 2)},
        "cached_over_uncached_speedup": round(speedup, 3),
        "steps_per_s": round(1.0 / statistics.median(t_dskd), 4),
        "kd_steps_per_s": round(1.0 / statistics.median(t_kd), 4),
        "sense_positions_per_batch": positions,
        "repeats": repeats,
        "mode": "quick" if args.quick else "full",
        "model": {**sh, "weights": weights},
        "data": data,
        "targets": targets.summary(),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "wall_s": round(time.perf_counter() - t_start, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
