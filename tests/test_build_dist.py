"""Two CPU processes with gloo: ranks shard the corpus, the weighted merge keeps every count."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import duckdb

from sensekit.builder.pipeline import BuildConfig, build

WAIT_S = 900  # each spawned rank imports torch and transformers first: minutes on a loaded 2-core machine


def _worker(rank: int, world: int, port: int, cfg_dict: dict, out: str) -> None:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    import torch

    torch.set_num_threads(1)
    cfg = BuildConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg_dict.items()})
    r = build(cfg)
    Path(out, f"rank{rank}.json").write_text(
        json.dumps(
            {"store": str(r.store) if r.store else None, "tokens": r.tokens_processed, "positions": r.key_positions}
        )
    )
    import torch.distributed as dist

    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tokens(store: Path) -> dict[int, int]:
    con = duckdb.connect(str(store / "store.duckdb"), read_only=True)
    try:
        return dict(con.execute("SELECT token_id, occurrences FROM tokens").fetchall())
    finally:
        con.close()


def _sense_counts(store: Path) -> dict[int, int]:
    con = duckdb.connect(str(store / "store.duckdb"), read_only=True)
    try:
        return dict(
            con.execute("SELECT token_id, sum(count) FROM senses WHERE view = 'loss' GROUP BY token_id").fetchall()
        )
    finally:
        con.close()


def test_two_gloo_processes_merge_to_the_single_process_counts(tiny, tiny_dir, text_corpus, tmp_path):
    import torch.multiprocessing as mp

    G = 4
    common = dict(
        corpus=[str(text_corpus)],
        teacher=str(tiny_dir),
        device="cpu",
        seq_len=16,
        batch_size=4,
        senses_per_token=2,
        samples_per_token=G,
        checkpoint_every=0,
    )
    single = build(
        BuildConfig(**{**common, "corpus": (str(text_corpus),), "store": str(tmp_path / "one.sensekit")}), teacher=tiny
    )
    ctx = mp.get_context("spawn")
    port = _free_port()
    procs = [
        ctx.Process(
            target=_worker, args=(r, 2, port, {**common, "store": str(tmp_path / "two.sensekit")}, str(tmp_path))
        )
        for r in range(2)
    ]
    for p in procs:
        p.start()
    try:
        deadline = time.monotonic() + WAIT_S
        for p in procs:
            p.join(timeout=max(1.0, deadline - time.monotonic()))
        late = [r for r, p in enumerate(procs) if p.is_alive()]
        assert not late, f"ranks {late} still running after {WAIT_S} s"
    finally:
        for p in procs:  # never leave a worker behind, whatever failed
            if p.is_alive():
                p.kill()
                p.join(timeout=30)
    assert [p.exitcode for p in procs] == [0, 0]
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert r0["store"] and r1["store"] is None
    assert r0["tokens"] == single.tokens_processed and r0["positions"] == single.key_positions
    occ_one, occ_two = _tokens(tmp_path / "one.sensekit"), _tokens(tmp_path / "two.sensekit")
    assert occ_two == occ_one  # merged occurrence counts are exact
    kept = _sense_counts(tmp_path / "two.sensekit")
    assert kept == {t: min(G, n) for t, n in occ_one.items()}  # merged reservoirs hold min(G, n) samples
