"""The `make demo` build's teacher floor: how much padding its batches carry, how fast the bare final
forward reads them beside a dense batch of the same width, and what the two views cost, in one run:

    python benchmarks/demo_stream.py [--max-tokens 80000] [--batches 6] [--threads 2] [--out FILE]

The batches are the build's own (`BatchStream` over the default corpus with the demo's --focus words).
The harvest's tok/s (the build's progress line) divided by `forward_real_tok_per_s` is what the harvest
adds to the forward: the repeated-sentence pass of the lexical view and the reservoirs.

The views (the loss view's final states and the repeat lexical view at layer 9) are timed both ways on
the same batches, alternating which goes first: `two_forwards` (the final forward, then the doubled rows
to layer 9: the harvest before `families.final_from_layer`) and `split` (the doubled rows to layer 9,
then layers 10-30 on the first copy: the harvest now). `split_speedup` is their ratio, and
`split_max_abs_diff` the largest difference between the two ways' final states at real positions.
"""

from __future__ import annotations

import argparse
import time

from common import RESULTS, log, passive_omp, report

passive_omp()


def time_views(teacher, batches, layer: int) -> dict:
    """Both ways of computing the two views on each batch (module docstring) -> the timings and the difference."""
    import torch

    from sensekit.builder.harvest import repeat_views, second_copy_layout
    from sensekit.model.occurrence import repeated_row_states

    special = torch.zeros(teacher.vocab_size, dtype=torch.bool)
    special[teacher.special_ids] = True

    def two_forwards(b):
        n_prefix, heads = second_copy_layout(teacher, b.ids, b.mask, special)
        lex, _ = repeated_row_states(teacher.model, b.ids, b.mask, n_prefix, layer, heads)
        return teacher.final_hidden(b.ids, b.mask), lex

    def split(b):
        return repeat_views(teacher, b.ids, b.mask, special, layer)

    split(batches[0])  # the one-time check of the split, outside the timing
    spent = {"two_forwards": 0.0, "split": 0.0}
    diff = 0.0
    for i, b in enumerate(batches):  # alternate the order: the machine's load drifts
        out = {}
        for name, fn in [("two_forwards", two_forwards), ("split", split)][:: 1 if i % 2 == 0 else -1]:
            t0 = time.perf_counter()
            out[name] = fn(b)
            spent[name] += time.perf_counter() - t0
        keep = b.mask.bool()
        diff = max(diff, float((out["split"][0] - out["two_forwards"][0])[keep].abs().max()))
    real = sum(b.n_tokens for b in batches)
    return {
        "lexical_layer": layer,
        "views_two_forwards_real_tok_per_s": round(real / spent["two_forwards"], 1),
        "views_split_real_tok_per_s": round(real / spent["split"], 1),
        "split_speedup": round(spent["two_forwards"] / spent["split"], 3),
        "split_max_abs_diff": diff,
    }


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
    from sensekit.model.layers import layer_count
    from sensekit.model.lexical import resolve_lexical_layer
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
    views = time_views(teacher, timed, resolve_lexical_layer(cfg.lexical_layer, layer_count(teacher.model.config)))
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
            **views,
            "threads": args.threads,
        },
    )


if __name__ == "__main__":
    main()
