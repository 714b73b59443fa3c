"""The build's relations stage, benchmarked: attaching pairs to head senses, and the span clouds.

    python benchmarks/attach.py [--store PATH] [--view lexical] [--out FILE]

Reads a real store's sense rows of one view, its relation pairs and its multi-token words, then times,
side by side in one run and alternating, two parts of `sensekit relations` / the build's relations stage.
First the attachment core (`sensekit.lexicon.attach.nearest_head_senses`: one matrix product
per head word against all its related words' senses) against the reference it replaced (pairs in chunks,
every pair padded to the widest head and related word of the table, then one einsum), and checks they
pick the same senses. A linked lexical view has a long tail of words with dozens of senses (one per
synset), which made the padding costly. Then the span clouds of the multi-token words
(`sensekit.lexicon.tokens.span_clouds`: spans sorted by their first token's sense count, each chunk padded
to its own widths) against the same code padded to the largest sense count of any token, with a check
that both give the same rows. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from common import RESULTS, log, report, side_by_side

from sensekit.lexicon.attach import _owner_rows, nearest_head_senses
from sensekit.lexicon.tokens import SenseTable, aligned_cloud, span_clouds


def _padded(vectors: np.ndarray, start: np.ndarray, count: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Gather rows start..start+count-1 of each item into [n, width, d] plus a [n, width] validity mask."""
    slot = np.arange(width)[None, :]
    valid = slot < count[:, None]
    rows = np.where(valid, start[:, None] + slot, 0)
    return vectors[rows], valid


def span_clouds_padded_to_k_max(
    table: SenseTable, spans: Sequence[Sequence[int]], rows: int | None = None, chunk_bytes: int = 256 << 20
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reference: span clouds before per-chunk widths (every chunk padded to the largest sense count)."""
    k_max = table.k_max
    K = int(rows) if rows else k_max
    d = table.dim
    out_span, out_row, out_emb = [], [], []
    by_len: dict[int, list[int]] = {}
    for i, s in enumerate(spans):
        if len(s) >= 2 and table.has_senses(s):
            by_len.setdefault(len(s), []).append(i)
    per_span = max(1, (K + k_max) * d * 4 * 3)
    step = max(1, chunk_bytes // per_span)
    for _, members in sorted(by_len.items()):  # by span length
        ids = np.asarray(members, np.int64)
        toks = np.asarray([spans[i] for i in members], np.int64)  # [S_all, m], m the span length
        for lo in range(0, len(ids), step):
            t = toks[lo : lo + step]
            cloud, valid = aligned_cloud(table, t, K, lambda col: k_max)  # every chunk at the widest widths
            s_idx, r_idx = np.nonzero(valid)
            out_span.append(ids[lo : lo + step][s_idx])
            out_row.append(r_idx)
            out_emb.append(cloud[s_idx, r_idx])
    if not out_span:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, d), np.float32)
    return (
        np.concatenate(out_span),
        np.concatenate(out_row).astype(np.int64),
        np.ascontiguousarray(np.concatenate(out_emb), dtype=np.float32),
    )


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
    """Unit sense vectors of `view` (token senses, sorted by token then sense_index), each relation pair's
    rows of its head's and its related word's token (single-token words), the view's SenseTable (raw
    vectors, as the build's span clouds read them) and the store's multi-token words (their token ids)."""
    from sensekit import open_store

    with open_store(store_path) as store:
        m = store.sense_matrix(view=view)
        pairs = store.con.execute(
            "SELECT h.token_ids[1], r.token_ids[1] FROM relations x JOIN words h ON h.word = x.head"
            " JOIN words r ON r.word = x.related WHERE len(h.token_ids) = 1 AND len(r.token_ids) = 1"
        ).fetchall()
        spans = [
            list(t) for (t,) in store.con.execute("SELECT token_ids FROM words WHERE len(token_ids) >= 2").fetchall()
        ]
    keep = m["token_id"] >= 0
    table = SenseTable(m["token_id"][keep], m["sense_index"][keep], m["embedding"][keep])
    order = np.lexsort((m["sense_index"][keep], m["token_id"][keep]))
    owner = m["token_id"][keep][order].astype(np.int64)
    vectors = m["embedding"][keep][order]
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    h, r = (np.asarray(x, np.int64) for x in zip(*pairs))
    return vectors, _owner_rows(owner, h), _owner_rows(owner, r), table, spans


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", type=Path, default=Path("senses.sensekit"))
    ap.add_argument("--view", default="lexical")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS / "attach.json")
    args = ap.parse_args()
    vectors, heads, related, table, spans = inputs(args.store, args.view)
    forced = np.full(len(heads[0]), -1, np.int64)
    log(f"{len(heads[0]):,} pairs over {len(vectors):,} sense rows x {vectors.shape[1]}; {len(spans):,} spans")
    pick = side_by_side(
        {
            "per_head": lambda: nearest_head_senses(vectors, heads, related, forced),
            "widest": lambda: padded_to_the_widest(vectors, heads, related, forced),
        },
        args.repeats,
    )
    clouds = side_by_side(
        {
            "per_chunk": lambda: span_clouds(table, spans),
            "k_max": lambda: span_clouds_padded_to_k_max(table, spans),
        },
        args.repeats,
    )
    (new_index, new_row, new_emb), (old_index, old_row, old_emb) = clouds["per_chunk"][1], clouds["k_max"][1]
    same_rows = np.array_equal(new_index, old_index) and np.array_equal(new_row, old_row)
    counts = heads[1][heads[1] > 0]
    doc = {
        "store": str(args.store),
        "view": args.view,
        "pairs": len(heads[0]),
        "sense_rows": len(vectors),
        "senses_per_head_p50_max": [float(np.median(counts)), int(counts.max())],
        "per_head_s": round(pick["per_head"][0], 3),
        "widest_s": round(pick["widest"][0], 3),
        "speedup": round(pick["widest"][0] / pick["per_head"][0], 1),
        "same_pick_share": float(np.mean(pick["per_head"][1][0] == pick["widest"][1][0])),
        "spans": len(spans),
        "span_cloud_rows": len(new_row),
        "span_clouds_per_chunk_s": round(clouds["per_chunk"][0], 3),
        "span_clouds_k_max_s": round(clouds["k_max"][0], 3),
        "span_clouds_speedup": round(clouds["k_max"][0] / clouds["per_chunk"][0], 1),
        "span_clouds_same_rows": bool(same_rows),
        "span_clouds_max_abs_diff": float(np.abs(new_emb - old_emb).max()) if same_rows and len(new_emb) else None,
    }
    report(args.out, doc)


if __name__ == "__main__":
    main()
