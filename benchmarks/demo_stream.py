"""The `make demo` build's teacher floor: how much padding its batches carry, and how fast the bare final
forward reads them beside a dense batch of the same width, in one run:

    python benchmarks/demo_stream.py [--max-tokens 80000] [--batches 6] [--threads 2] [--out FILE]

The batches are the build's own (`BatchStream` over the default corpus with the demo's --focus words).
The harvest's tok/s (the build's progress line) divided by `forward_real_tok_per_s` is what the harvest
adds to the forward: the repeated-sentence pass of the lexical view and the reservoirs.
"""

from __future__ import annotations

import argparse
import time

from common import RESULTS, log, passive_omp, report

passive_omp()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-tokens", type=int, default=80000)
    ap.add_argument("--batches", type=int, default=6, help="batches to time the forward on")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    import torch

    from sensekit.builder.config import BuildConfig
    from sensekit.builder.corpus import special_prefix
    from sensekit.builder.harvest import BatchStream
    from sensekit.builder.pipeline import _open_corpus
    from sensekit.model.teacher import load_teacher

    torch.set_num_threads(args.threads)
    cfg = BuildConfig(
        store="unused.sensekit", max_tokens=args.max_tokens, focus="light plant spring bank", lexical_layer="auto"
    )
    teacher = load_teacher("smollm2-135m", "cpu")
    pad = teacher.tokenizer.pad_token_id if teacher.tokenizer.pad_token_id is not None else 0
    stream = BatchStream(
        _open_corpus(cfg).docs,
        teacher.tokenizer,
        seq_len=cfg.seq_len,
        batch_size=cfg.batch_size,
        overlap=cfg.window_overlap,
        prefix=special_prefix(teacher.tokenizer),
        pad_id=pad,
        max_tokens=args.max_tokens,
    )
    batches = list(stream)
    real, padded = sum(b.n_tokens for b in batches), sum(b.ids.numel() for b in batches)
    log(f"{len(batches)} batches, {real} real tokens, padded / real {padded / real:.3f}")

    timed = batches[: args.batches]
    t0 = time.perf_counter()
    for b in timed:  # per batch: one forward, as the harvest runs it
        teacher.final_hidden(b.ids, b.mask)
    dt = time.perf_counter() - t0
    dense = torch.randint(1000, 20000, (cfg.batch_size, cfg.seq_len))  # [B, T] the budget's dense batch
    t1 = time.perf_counter()
    for _ in range(2):
        teacher.final_hidden(dense, torch.ones_like(dense))
    dense_dt = time.perf_counter() - t1
    report(
        RESULTS / "demo_stream.json" if args.out is None else args.out,
        {
            "batches": len(batches),
            "real_tokens": real,
            "padded_over_real": round(padded / real, 3),
            "forward_real_tok_per_s": round(sum(b.n_tokens for b in timed) / dt, 1),
            "forward_padded_tok_per_s": round(sum(b.ids.numel() for b in timed) / dt, 1),
            "dense_tok_per_s": round(2 * dense.numel() / dense_dt, 1),
            "threads": args.threads,
        },
    )


if __name__ == "__main__":
    main()
