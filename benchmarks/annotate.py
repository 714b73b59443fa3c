"""`sensekit annotate` speed: p50 latency of one 20-word sentence, and sentences per second in batches.

    python benchmarks/annotate.py --store demo.sensekit [--threads 2] [--repeats 30] [--out FILE]

The store's teacher is loaded once (not timed). First use: the first call on the 20-word sentence with an
empty prototype cache (the words the build did not link are named from WordNet: a teacher pass over their
synsets' sentences), then a new annotator's first call, which reads those prototypes from the disk cache.
Latency: `Annotator.annotate([sentence])`, `--repeats` times after two warm-up calls; p50 and p90.
Throughput: 64 different sentences (WordNet-like, 8-30 words) annotated in one call once their words are
named, sentences per second. Target: p50 <= 150 ms on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import RESULTS, log, machine, passive_omp, write_json

passive_omp()

SENTENCE = "They pulled the canoe up onto the bank of the river and slowly walked to the old plant at night."
BATCH = [
    "The bank raised its interest rates again this spring.",
    "She sat on the bank and watched the light on the water.",
    "Water the plant twice a week and keep it out of direct light.",
    "The power plant was closed after the flood damaged the river bank.",
    "He jumped over the spring in the mattress and fell onto the floor.",
    "A light rain fell on the village while the children played near the old mill.",
    "The spring water was cold and clear, and it tasted of stone.",
    "They planned to plant a row of trees along the bank of the canal before the winter came.",
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import sensekit.builder.prototypes as prototypes
    from sensekit.annotate import Annotator

    empty = Path(tempfile.mkdtemp())  # an empty prototype cache, so the first call names every unlinked word
    real_cache_path = prototypes.cache_path
    prototypes.cache_path = lambda *a: empty / real_cache_path(*a).name
    words = len(SENTENCE.split())
    with Annotator.open(args.store, device="cpu") as a:
        t0 = time.perf_counter()
        a.annotate([SENTENCE])
        first_empty_s = time.perf_counter() - t0
        fresh = Annotator(a.store, a.teacher)  # nothing in memory; the prototypes on disk
        t0 = time.perf_counter()
        fresh.annotate([SENTENCE])
        first_cached_s = time.perf_counter() - t0
        for _ in range(2):
            a.annotate([SENTENCE])
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            a.annotate([SENTENCE])
            times.append(time.perf_counter() - t0)
        lines = [f"{s} ({i})" for i in range(8) for s in BATCH]  # 64 distinct lines
        a.annotate(BATCH)  # names the batch's words: the throughput is of known words
        t0 = time.perf_counter()
        docs = a.annotate(lines)
        batch_s = time.perf_counter() - t0
    times.sort()
    result = {
        "store": args.store,
        "threads": args.threads,
        "sentence_words": words,
        "first_call_empty_cache_s": round(first_empty_s, 2),
        "first_call_disk_cache_ms": round(1000 * first_cached_s, 1),
        "p50_ms": round(1000 * statistics.median(times), 1),
        "p90_ms": round(1000 * times[int(0.9 * (len(times) - 1))], 1),
        "batch_lines": len(lines),
        "batch_sentences_per_s": round(len(lines) / batch_s, 1),
        "words_annotated_in_batch": sum(len(d["words"]) for d in docs),
        "machine": machine(),
    }
    log(
        f"first call {result['first_call_empty_cache_s']} s (empty cache), {result['first_call_disk_cache_ms']} ms "
        f"(disk cache); p50 {result['p50_ms']} ms, p90 {result['p90_ms']} ms; {result['batch_sentences_per_s']} sentences/s"
    )
    write_json(args.out or RESULTS / "annotate.json", result)
    print(result)


if __name__ == "__main__":
    main()
