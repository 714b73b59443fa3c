"""The bundled teacher's one-time conversion (GGUF -> safetensors) with one GGUF parse and with transformers'
own parses (one for the config, one for the weights, one for the tokenizer), side by side in one run:

    python benchmarks/teacher_convert.py [--rounds 2] [--out FILE]

Each round converts into a fresh SENSEKIT_HOME both ways, alternating which goes first. The two folders'
weights and tokenizers must be byte-identical (`same_output`). `one_parse_speedup` is the plain conversions' total time over the
one-parse conversions'.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import tempfile
import time
from pathlib import Path

from common import RESULTS, log, passive_omp, report

passive_omp()


def _digest(folder: Path) -> str:
    """The converted weights and tokenizer, as bytes."""
    return "".join(
        hashlib.sha256((folder / f).read_bytes()).hexdigest() for f in ("model.safetensors", "tokenizer.json")
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    import sensekit.model.teacher as teacher

    one_parse = teacher._one_gguf_parse
    spent = {"one_parse": 0.0, "plain": 0.0}
    digests = set()
    for r in range(args.rounds):
        ways = [("one_parse", one_parse), ("plain", contextlib.nullcontext)]
        for name, ctx in ways[:: 1 if r % 2 == 0 else -1]:
            with tempfile.TemporaryDirectory() as home:
                os.environ["SENSEKIT_HOME"] = home
                teacher._one_gguf_parse = ctx
                t0 = time.perf_counter()
                folder = teacher.convert_bundled()
                spent[name] += time.perf_counter() - t0
                digests.add(_digest(folder))
            log(f"round {r + 1}: {name} {spent[name]:.1f} s so far")
    teacher._one_gguf_parse = one_parse
    report(
        RESULTS / "teacher_convert.json" if args.out is None else args.out,
        {
            "rounds": args.rounds,
            "one_parse_s": round(spent["one_parse"] / args.rounds, 2),
            "plain_s": round(spent["plain"] / args.rounds, 2),
            "one_parse_speedup": round(spent["plain"] / spent["one_parse"], 3),
            "same_output": len(digests) == 1,
        },
    )


if __name__ == "__main__":
    main()
