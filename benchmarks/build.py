"""Build benchmark: what the build costs around the teacher, batched k-means vs scikit-learn, FLOP/s.

    python benchmarks/build.py [--quick] [--device auto|cpu|cuda] [--max-tokens N] [--kmeans-tokens N]
                               [--lexical-layers none,auto:first,auto:repeat] [--skip-kmeans]

- build_over_forward_ratio: `build()` wall time (teacher already loaded; harvest, reservoirs,
  k-means, contexts, store + HNSW index) over the bare teacher forward (`final_hidden`, the
  minimum a harvest needs) on exactly the same batches, measured in the same run. The bare
  forward is timed before and after the build and averaged (other jobs share the machine).
  The build runs once per `--lexical-layers` entry, `LAYER[:REPRESENTATION]` (default
  `none,auto:first,auto:repeat`: the loss-only store, the lexical view read in the window's own forward,
  and the lexical view read in the second copy of each window fed twice), side by side in one run, each
  between two timings of the bare forward; `lexical_ratio_increase` = ratio(auto:first) / ratio(none) - 1
  (bound: <= 0.10); `repeat_over_forward` = ratio(auto:repeat), the repeat view's build over the bare
  forward (bound: < 2.2).
- kmeans_speedup_vs_sklearn: R tokens x 200 samples x 576 dims, k = 10, our batched k-means
  against a loop of `sklearn.cluster.KMeans(n_init="auto")` per token (the original research
  code's method). The data are per-token Gaussian mixtures (2..15 components). The full run
  uses R = 5,000 for ours and times scikit-learn on a subset, extrapolated linearly
  (`sklearn_tokens_timed` says how many); --quick on CPU uses R = 150 for both (on CUDA: 5,000
  for ours, scikit-learn on 150), and 2,048 build tokens instead of 30,000.
- kmeans_inertia_ratio: our total inertia over scikit-learn's on the tokens both ran.
- teacher_tokens_per_s: bare forward throughput.
- forward_gflops_fraction: the teacher's achieved FLOP/s (2 x non-embedding params + causal
  attention, per token) over a large torch matmul's FLOP/s on the same device.

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from common import log, passive_omp, shared_corpus

passive_omp()  # before torch is imported


def corpus_args(tmp: Path) -> tuple[str, ...]:
    """The shared enwiki sample if present, else a text file of WordNet glosses, else generated prose."""
    shared = shared_corpus()
    if shared.is_file():
        return (str(shared),)
    path = tmp / "corpus.txt"
    try:
        from sensekit.builder.wordnet_corpus import iter_wordnet

        with open(path, "w", encoding="utf-8") as fh:
            for i, (_, text) in enumerate(iter_wordnet()):
                fh.write(text + "\n\n")
                if i > 20000:
                    break
    except Exception:  # noqa: BLE001 - any offline prose will do
        rng = np.random.default_rng(0)
        words = "the bank of a river was muddy after spring flood she put money in light box bat ball".split()
        path.write_text("\n\n".join(" ".join(rng.choice(words, 200)) for _ in range(2000)))
    return (str(path),)


def bench_forward_vs_build(
    teacher,
    corpus: tuple[str, ...],
    max_tokens: int,
    seq_len: int,
    batch_size: int,
    lexical_layers: tuple[str, ...] = ("none", "auto:first", "auto:repeat"),
) -> dict:
    import torch

    from sensekit.builder.corpus import iter_documents, special_prefix
    from sensekit.builder.harvest import BatchStream
    from sensekit.builder.pipeline import BuildConfig, build

    tok = teacher.tokenizer
    stream = BatchStream(
        lambda select=None: iter_documents(list(corpus), "text", select),
        tok,
        seq_len=seq_len,
        batch_size=batch_size,
        overlap=1,
        prefix=special_prefix(tok),
        pad_id=tok.pad_token_id or 0,
        max_tokens=max_tokens,
    )
    batches = list(stream)  # tokenized up front: the baseline times the forward alone
    n_tok = sum(b.n_tokens for b in batches)
    sync = torch.cuda.synchronize if teacher.device.type == "cuda" else (lambda: None)
    teacher.final_hidden(batches[0].ids[:1, :16], batches[0].mask[:1, :16])  # warm-up

    def forward() -> float:
        sync()
        t = time.perf_counter()
        for b in batches:
            teacher.final_hidden(b.ids, b.mask)
        sync()
        return time.perf_counter() - t

    runs = [forward()]
    builds: dict[str, dict] = {}
    for entry in lexical_layers:
        layer, _, representation = entry.partition(":")
        with tempfile.TemporaryDirectory() as tmp:
            cfg = BuildConfig(
                corpus=corpus,
                store=str(Path(tmp) / "bench.sensekit"),
                max_tokens=max_tokens,
                seq_len=seq_len,
                batch_size=batch_size,
                checkpoint_every=0,
                lexical_layer=layer,
                **({"lexical_representation": representation} if representation else {}),
            )
            stages: dict[str, float] = {}
            sync()
            t, cpu = time.perf_counter(), time.process_time()
            result = build(
                cfg,
                teacher=teacher,
                progress=lambda stage, done=None, total=None, /, _s=stages, _t=t, **_: _s.setdefault(
                    stage, time.perf_counter() - _t
                ),
            )
            sync()
            b_s, b_cpu = time.perf_counter() - t, time.process_time() - cpu
        runs.append(forward())
        fwd = (runs[-2] + runs[-1]) / 2  # the bare forward just before and just after this build
        builds[entry] = {
            "build_s": round(b_s, 3),
            "build_cpu_s": round(b_cpu, 3),
            "harvest_s": round(result.harvest_seconds, 3),
            "forward_s": round(fwd, 3),
            "build_over_forward_ratio": round(b_s / fwd, 4),
            "harvest_over_forward_ratio": round(result.harvest_seconds / fwd, 4),
            "senses": result.senses,
            "lexical_senses": result.lexical_senses,
            "lexical_layer": result.meta.get("lexical_layer"),
            "lexical_representation": result.meta.get("lexical_representation"),
            "stage_start_s": {k: round(v, 3) for k, v in stages.items()},
        }
    first = builds[lexical_layers[0]]
    fwd = sum(runs) / len(runs)
    step = bench_harvest_step(teacher, batches, sync) if any(e.startswith("auto") for e in lexical_layers) else None
    out = {
        "tokens": n_tok,
        "forward_s": round(fwd, 3),
        "forward_s_runs": [round(f, 3) for f in runs],
        "build_s": first["build_s"],
        "harvest_s": first["harvest_s"],
        "build_over_forward_ratio": first["build_over_forward_ratio"],
        "teacher_tokens_per_s": round(n_tok / fwd, 1),
        "senses": first["senses"],
        "stage_start_s": first["stage_start_s"],
        "builds": builds,
        "harvest_step": step,
    }
    lexical = "auto:first" if "auto:first" in builds else "auto"
    if "none" in builds and lexical in builds:
        out["lexical_ratio_increase"] = round(
            builds[lexical]["build_over_forward_ratio"] / builds["none"]["build_over_forward_ratio"] - 1, 4
        )
        out["lexical_harvest_ratio_increase"] = round(
            builds[lexical]["harvest_over_forward_ratio"] / builds["none"]["harvest_over_forward_ratio"] - 1, 4
        )
    if "auto:repeat" in builds:
        out["repeat_over_forward"] = builds["auto:repeat"]["build_over_forward_ratio"]
        out["repeat_harvest_over_forward"] = builds["auto:repeat"]["harvest_over_forward_ratio"]
    return out


def bench_harvest_step(teacher, batches, sync, rounds: int = 3) -> dict:
    """The harvest's per-batch work (forward + key positions + the kept rows to the CPU as fp16) without the
    lexical view (`none`), with it read by a hook in the same forward (`first`, auto layer), and read in the
    second copy of each row fed twice (`repeat`, a second forward stopped after the auto layer), interleaved
    `rounds` times on the same batches; the median per variant, wall and process CPU time. CPU time is the
    steadier figure on shared, busy cores."""
    import statistics

    import torch

    from sensekit.builder.harvest import capture_layer, harvest_positions
    from sensekit.model.layers import layer_count
    from sensekit.model.lexical import resolve_lexical_layer

    layer = resolve_lexical_layer("auto", layer_count(teacher.model.config))
    special = torch.zeros(teacher.vocab_size, dtype=torch.bool, device=teacher.device)
    special[[i for i in teacher.special_ids if i < teacher.vocab_size]] = True

    def run(lexical: int | None, representation: str = "first") -> tuple[float, float]:
        sync()
        w, c = time.perf_counter(), time.process_time()
        with capture_layer(teacher, lexical if representation == "first" else None) as captured:
            for b in batches:
                _, vecs, _, lex = harvest_positions(
                    teacher,
                    b,
                    key_mode="next",
                    next_token="gold",
                    special=special,
                    lexical_layer=lexical,
                    captured=captured,
                    lexical_representation=representation,
                )
                vecs.to(torch.float16).cpu()
                if lex is not None:
                    lex.to(torch.float16).cpu()
        sync()
        return time.perf_counter() - w, time.process_time() - c

    times: dict[str, list] = {"none": [], "first": [], "repeat": []}
    with torch.inference_mode():
        for _ in range(rounds):
            times["none"].append(run(None))
            times["first"].append(run(layer, "first"))
            times["repeat"].append(run(layer, "repeat"))
    med = {k: (statistics.median(t[0] for t in v), statistics.median(t[1] for t in v)) for k, v in times.items()}
    return {
        "rounds": rounds,
        "layer": layer,
        "wall_s": {k: round(v[0], 3) for k, v in med.items()},
        "cpu_s": {k: round(v[1], 3) for k, v in med.items()},
        "wall_increase": round(med["first"][0] / med["none"][0] - 1, 4),
        "cpu_increase": round(med["first"][1] / med["none"][1] - 1, 4),
        "repeat_wall_over_none": round(med["repeat"][0] / med["none"][0], 4),
        "repeat_cpu_over_none": round(med["repeat"][1] / med["none"][1], 4),
    }


def teacher_flops_per_token(teacher, seq_len: int) -> float:
    cfg = teacher.model.config
    params = sum(p.numel() for n, p in teacher.model.named_parameters() if "embed" not in n and "lm_head" not in n)
    layers = int(cfg.num_hidden_layers)
    # 2 flops per weight; causal attention: QK^T and AV, 2 * 2 * d per attended position, T/2 on average
    return 2.0 * params + layers * 4.0 * teacher.hidden_size * (seq_len / 2)


def matmul_flops(device, dtype) -> float:
    import torch

    n = 2048 if device.type == "cpu" else 8192
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    a @ b
    sync()
    reps, t = 0, time.perf_counter()
    while time.perf_counter() - t < 2.0:
        a @ b
        reps += 1
    sync()
    return 2.0 * n**3 * reps / (time.perf_counter() - t)


def make_kmeans_data(R: int, n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    comps = rng.integers(2, 16, R)
    centres = rng.standard_normal((R, 16, d)).astype(np.float32) * 2.0
    pick = rng.integers(0, 1 << 30, (R, n)) % comps[:, None]
    X = centres[np.arange(R)[:, None], pick] + rng.standard_normal((R, n, d)).astype(np.float32)
    return X.astype(np.float32)


def bench_kmeans(R: int, sk_tokens: int, device, n: int = 200, d: int = 576, k: int = 10) -> dict:
    import torch
    from sklearn.cluster import KMeans

    from sensekit.builder.cluster import cluster_samples

    X = make_kmeans_data(R, n, d)
    keys = np.arange(R)
    indptr = np.arange(R + 1) * n
    flat16 = X.reshape(-1, d).astype(np.float16)  # the reservoir's storage dtype
    Xr = flat16.astype(np.float32).reshape(R, n, d)  # sklearn sees the same values
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    cluster_samples(keys[:8], indptr[:9], flat16[: 8 * n], k, 3, device=device)  # warm-up
    sync()
    t = time.perf_counter()
    ours = cluster_samples(keys, indptr, flat16, k, 3, seed=0, device=device)
    sync()
    ours_s = time.perf_counter() - t
    # our inertia per token, from the centroids (senses are ordered by count; recompute assignment)
    sub = np.linspace(0, R - 1, sk_tokens).astype(int)
    t = time.perf_counter()
    sk_inertia = [KMeans(k, n_init="auto", random_state=int(i)).fit(Xr[i]).inertia_ for i in sub]
    sk_s = (time.perf_counter() - t) * (R / len(sub))
    ours_inertia = []
    for i in sub:
        c = ours.centroids[ours.sense_key == i]
        dist = ((Xr[i][:, None, :] - c[None]) ** 2).sum(-1).min(1)
        ours_inertia.append(dist.sum())
    return {
        "kmeans_tokens": R,
        "kmeans_shape": [R, n, d],
        "k": k,
        "ours_s": round(ours_s, 3),
        "sklearn_s": round(sk_s, 3),
        "sklearn_tokens_timed": len(sub),
        "kmeans_speedup_vs_sklearn": round(sk_s / ours_s, 2),
        "kmeans_inertia_ratio": round(float(sum(ours_inertia) / sum(sk_inertia)), 5),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="under 60 s: ~2k build tokens, 150 k-means tokens on CPU")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--teacher", default="smollm2-135m")
    ap.add_argument("--max-tokens", type=int, default=None)
    ap.add_argument("--kmeans-tokens", type=int, default=None)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument(
        "--lexical-layers",
        default="none,auto:first,auto:repeat",
        help="builds to compare side by side: --lexical-layer values, each with an optional :first or :repeat",
    )
    ap.add_argument("--skip-kmeans", action="store_true", help="only the build-vs-forward comparison")
    args = ap.parse_args()
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    from sensekit.model.teacher import load_teacher

    t0 = time.perf_counter()
    teacher = load_teacher(args.teacher, None if args.device == "auto" else args.device)
    load_s = time.perf_counter() - t0
    cuda = teacher.device.type == "cuda"
    max_tokens = args.max_tokens or ((100_000 if cuda else 2_048) if args.quick else (2_000_000 if cuda else 30_000))
    R = args.kmeans_tokens or ((5000 if cuda else 150) if args.quick else 5000)
    sk_tokens = min(R, 150 if args.quick else 500)
    log(f"teacher {teacher.name} on {teacher.device} ({teacher.dtype}); loaded in {load_s:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        corpus = corpus_args(Path(tmp))
        log(f"build vs forward over {max_tokens} tokens of {corpus[0]}")
        layers = tuple(x.strip() for x in args.lexical_layers.split(",") if x.strip())
        fb = bench_forward_vs_build(teacher, corpus, max_tokens, args.seq_len, args.batch_size, layers)
    log(json.dumps(fb))
    if args.skip_kmeans:
        print(json.dumps({k: fb[k] for k in fb if k != "stage_start_s"}))
        return
    log(f"k-means: {R} tokens x 200 x 576, k=10 (scikit-learn on {sk_tokens})")
    km = bench_kmeans(R, sk_tokens, teacher.device)
    log(json.dumps(km))
    fpt = teacher_flops_per_token(teacher, args.seq_len)
    peak = matmul_flops(teacher.device, teacher.dtype)
    achieved = fpt * fb["teacher_tokens_per_s"]
    out = {
        "build_over_forward_ratio": fb["build_over_forward_ratio"],
        "kmeans_speedup_vs_sklearn": km["kmeans_speedup_vs_sklearn"],
        "kmeans_inertia_ratio": km["kmeans_inertia_ratio"],
        "teacher_tokens_per_s": fb["teacher_tokens_per_s"],
        "forward_gflops_fraction": round(achieved / peak, 4),
        "teacher_gflops": round(achieved / 1e9, 2),
        "matmul_gflops": round(peak / 1e9, 2),
        "quick": args.quick,
        "tokens": fb["tokens"],
        "forward_s": fb["forward_s"],
        "build_s": fb["build_s"],
        "kmeans_shape": km["kmeans_shape"],
        "kmeans_ours_s": km["ours_s"],
        "kmeans_sklearn_s": km["sklearn_s"],
        "sklearn_tokens_timed": km["sklearn_tokens_timed"],
        "harvest_s": fb["harvest_s"],
        "forward_s_runs": fb["forward_s_runs"],
        "build_stage_start_s": fb["stage_start_s"],
        "builds": fb["builds"],
        "lexical_ratio_increase": fb.get("lexical_ratio_increase"),
        "lexical_harvest_ratio_increase": fb.get("lexical_harvest_ratio_increase"),
        "repeat_over_forward": fb.get("repeat_over_forward"),
        "repeat_harvest_over_forward": fb.get("repeat_harvest_over_forward"),
        "harvest_step": fb.get("harvest_step"),
        "device": str(teacher.device),
        "dtype": str(teacher.dtype).replace("torch.", ""),
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "cpu": platform.processor() or platform.machine(),
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "teacher_load_s": round(load_s, 2),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
