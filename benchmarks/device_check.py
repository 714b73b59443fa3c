"""One short device check before benchmarks/kd_vs_dskd_gpu.toml: the build's harvest throughput with the teacher in
bf16, and the build's batched k-means (sensekit.builder.cluster.kmeans_batched) on the GPU against scikit-learn's
KMeans on the CPU, on the same padded sample sets (time and inertia).

    python benchmarks/device_check.py                 # on the device: cuda, bf16, ~2 minutes
    python benchmarks/device_check.py --quick         # on CPU, tiny sizes: the script's paths (no timing claims)
    python benchmarks/device_check.py --out results/device_check.json

It prints one JSON object (also written to --out). The harvest number is BuildResult.tokens_per_s: corpus tokens
through the teacher per second during the harvest (the build's own measure), for a store of --tokens tokens
built from the shared Wikipedia sample.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def harvest(device: str, dtype: str, tokens: int, batch: int, seq_len: int) -> dict:
    from sensekit.builder.config import BuildConfig
    from sensekit.builder.pipeline import build
    from sensekit.paths import shared_dir

    corpus = shared_dir() / "data" / "corpus" / "enwiki-sample-pages-articles.xml.bz2"
    if not corpus.is_file():
        return {"status": "skipped", "reason": f"no corpus at {corpus} (set SENSEKIT_SHARED)"}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = BuildConfig(
            corpus=(str(corpus),),
            store=str(Path(tmp) / "s.sensekit"),
            device=device,
            dtype=dtype,
            max_tokens=tokens,
            batch_size=batch,
            seq_len=seq_len,
            checkpoint_every=0,
            lexical_layer="none",
        )
        t0 = time.perf_counter()
        r = build(cfg)
        wall = time.perf_counter() - t0
    return {
        "status": "ok",
        "device": device,
        "dtype": dtype,
        "tokens_processed": r.tokens_processed,
        "harvest_seconds": round(r.harvest_seconds, 3),
        "harvest_tokens_per_s": round(r.tokens_per_s, 1),
        "build_seconds": round(wall, 2),
        "senses": r.senses,
        "key_tokens": r.tokens,
    }


def kmeans(device: str, rows: int, n: int, d: int, k: int, seed: int = 0) -> dict:
    """R padded sample sets [R, n, d] (each row 60-100% valid) clustered by kmeans_batched on `device` and by
    scikit-learn KMeans (k-means++, n_init=1) row by row on the CPU."""
    import numpy as np
    import torch
    from sklearn.cluster import KMeans

    from sensekit.builder.cluster import kmeans_batched

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(rows, k, d)).astype(np.float32) * 3
    x = centres[np.arange(rows)[:, None], rng.integers(0, k, (rows, n))] + rng.normal(size=(rows, n, d)).astype(
        np.float32
    )
    lengths = rng.integers(int(0.6 * n), n + 1, rows)
    valid = np.arange(n)[None, :] < lengths[:, None]
    xt = torch.from_numpy(x).to(device)
    vt = torch.from_numpy(valid).to(device)
    kmeans_batched(xt[:2], vt[:2], k)  # warm-up (kernels, allocator)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    _, _, inertia = kmeans_batched(xt, vt, k, gen=torch.Generator(device=device).manual_seed(seed))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    sk = [
        KMeans(k, n_init=1, random_state=seed).fit(x[i, : lengths[i]]).inertia_ for i in range(rows)
    ]  # one fit per key token, as a per-token loop would
    theirs = time.perf_counter() - t0
    ratio = inertia.double().cpu().numpy() / np.asarray(sk)
    return {
        "rows": rows,
        "samples_per_row": n,
        "dim": d,
        "k": k,
        "batched_seconds": round(ours, 4),
        "sklearn_seconds": round(theirs, 4),
        "speedup": round(theirs / max(ours, 1e-9), 1),
        "inertia_ratio_batched_over_sklearn": {
            "median": float(np.median(ratio)),
            "p90": float(np.percentile(ratio, 90)),
            "max": float(ratio.max()),
        },
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="CPU, tiny sizes: check the paths, not the numbers")
    ap.add_argument("--device", default=None, help="default: cuda (cpu with --quick)")
    ap.add_argument("--tokens", type=int, default=None, help="harvest: store tokens (default 200000; quick 600)")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    os.environ.setdefault("NLTK_DATA", str(ROOT.parent / "shared" / "data" / "nltk_data"))
    import torch

    device = args.device or ("cpu" if args.quick else "cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device here; run with --quick (CPU) or on the device")
    q = args.quick
    out = {
        "device": torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu",
        "torch": torch.__version__,
        "quick": q,
        "harvest": harvest(  # bf16 on the GPU; float32 on CPU (bf16 matmuls crawl there: 3 tokens/s)
            device,
            "bfloat16" if device.startswith("cuda") else "float32",
            args.tokens or (300 if q else 200_000),
            4 if q else 64,
            64 if q else 256,
        ),
        "kmeans": [
            kmeans(device, rows, n, d, 10)
            for rows, n, d in ([(8, 30, 16)] if q else [(512, 50, 576), (2048, 50, 576), (256, 400, 576)])
        ],
    }
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
