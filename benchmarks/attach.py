"""Relation attachment benchmark: which of a head word's senses each (head, related) pair attaches to.

    python benchmarks/attach.py [--store PATH] [--view lexical] [--out FILE]

Reads a real store's sense rows of one view and its relation pairs, then times, side by side in one run
and alternating, the attachment core (`sensekit.lexicon.attach.nearest_head_senses`: one matrix product
per head word against all its related words' senses) against the reference it replaced (pairs in chunks,
every pair padded to the widest head and related word of the table, then one einsum), and checks they
pick the same senses. A linked lexical view has a long tail of words with dozens of senses (one per
synset), which made the padding costly. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
from common import RESULTS, git_commit, log, machine, write_json

from sensekit.lexicon.attach import _owner_rows, nearest_head_senses


def _padded(vectors: np.ndarray, start: np.ndarray, count: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Gather rows start..start+count-1 of each item into [n, width, d] plus a [n, width] validity mask."""
    slot = np.arange(width)[None, :]
    valid = slot < count[:, None]
    rows = np.where(valid, start[:, None] + slot, 0)
    return vectors[rows], valid


def padded_to_the_widest(vectors, heads, related, forced, chunk=2048):
    """The reference: the code before one product per head, with the same inputs and outputs."""
    (h_start, h_count), (r_start, r_count) = heads, related
    hw, rw = max(int(h_count.max()), 1), max(int(r_count.max()), 1)
    pick = np.full(len(h_start), -1, np.int64)
    best = np.zeros(len(h_start), np.float32)
    for lo in range(0, len(h_start), chunk):
        sl = slice(lo, lo + chunk)
        H, hv = _padded(vectors, h_start[sl], h_count[sl], hw)
        R, rv = _padded(vectors, r_start[sl], r_count[sl], rw)
        cos = np.einsum("nhd,nrd->nhr", H, R)
        cos = np.where(hv[:, :, None] & rv[:, None, :], cos, -np.inf).max(2)
        chosen = np.where(forced[sl] >= 0, forced[sl], cos.argmax(1))
        found = cos[np.arange(len(chosen)), chosen]
        ok = np.isfinite(found)
        pick[sl] = np.where(ok, chosen, -1)
        best[sl] = np.where(ok, found, 0.0)
    return pick, best


def inputs(store_path: Path, view: str):
    """Unit sense vectors of `view` (token senses, sorted by token then sense_index), and each relation
    pair's rows of its head's and its related word's token (single-token words; spans left out)."""
    from sensekit import open_store

    with open_store(store_path) as store:
        m = store.sense_matrix(view=view)
        pairs = store.con.execute(
            "SELECT h.token_ids[1], r.token_ids[1] FROM relations x JOIN words h ON h.word = x.head"
            " JOIN words r ON r.word = x.related WHERE len(h.token_ids) = 1 AND len(r.token_ids) = 1"
        ).fetchall()
    keep = m["token_id"] >= 0
    order = np.lexsort((m["sense_index"][keep], m["token_id"][keep]))
    owner = m["token_id"][keep][order].astype(np.int64)
    vectors = m["embedding"][keep][order]
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    h, r = (np.asarray(x, np.int64) for x in zip(*pairs))
    return vectors, _owner_rows(owner, h), _owner_rows(owner, r)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", type=Path, default=Path("senses.sensekit"))
    ap.add_argument("--view", default="lexical")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS / "attach.json")
    args = ap.parse_args()
    vectors, heads, related = inputs(args.store, args.view)
    forced = np.full(len(heads[0]), -1, np.int64)
    log(f"{len(heads[0]):,} pairs over {len(vectors):,} sense rows x {vectors.shape[1]}")
    times = {"per_head": [], "widest": []}
    for _ in range(args.repeats):
        for name, fn in (("per_head", nearest_head_senses), ("widest", padded_to_the_widest)):
            t = time.perf_counter()
            got = fn(vectors, heads, related, forced)
            times[name].append(time.perf_counter() - t)
            if name == "per_head":
                ours = got
            else:
                same = float(np.mean(got[0] == ours[0]))
    fast, slow = statistics.median(times["per_head"]), statistics.median(times["widest"])
    counts = heads[1][heads[1] > 0]
    doc = {
        "store": str(args.store),
        "view": args.view,
        "pairs": len(heads[0]),
        "sense_rows": len(vectors),
        "senses_per_head_p50_max": [float(np.median(counts)), int(counts.max())],
        "per_head_s": round(fast, 3),
        "widest_s": round(slow, 3),
        "speedup": round(slow / fast, 1),
        "same_pick_share": same,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "machine": machine(),
        "commit": git_commit(),
    }
    write_json(args.out, doc)
    print(json.dumps(doc))


if __name__ == "__main__":
    main()
