"""`sensekit serve` under load: p50/p99 latency of the word page and the JSON API at 1, 8 and 32 concurrent
clients, on 127.0.0.1 only, bounded in requests and in time.

    python benchmarks/serve.py [--store PATH] [--requests N] [--max-seconds S] [--clients 1,8,32] [--out FILE]

The server is `sensekit serve` in its own process (uvicorn, one worker, as a user runs it); the clients are
threads of this process, each on its own keep-alive connection. Two kinds of traffic per level:
- `cold`: every request asks for a word not asked before (the server's answer cache misses: the store is read);
- `warm`: requests cycle over 20 words already asked (the answer cache hits).
Without --store it serves the synthetic store of benchmarks/query.py --quick (built if missing). The load
average is recorded before and after: the machine may be shared. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np
from common import git_commit, log, machine, write_json

from sensekit import open_store

HOST = "127.0.0.1"  # loopback only, always


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_server(store: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sensekit.cli", "serve", "--store", str(store), "--host", HOST, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"sensekit serve exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            c = http.client.HTTPConnection(HOST, port, timeout=2)
            c.request("GET", "/api/info")
            c.getresponse().read()
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("sensekit serve did not answer within 120 s")


def run_level(port: int, paths: list[str], clients: int, max_seconds: float) -> dict:
    """Send `paths` (in order, split round-robin over `clients` threads); latency per request."""
    lat: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + max_seconds

    def worker(mine: list[str]) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=60)
        got = []
        for p in mine:
            if time.monotonic() > deadline:
                break
            t = time.perf_counter()
            try:
                conn.request("GET", p)
                r = conn.getresponse()
                r.read()
                if r.status != 200:
                    errors.append(f"{r.status} {p}")
            except OSError as exc:
                errors.append(f"{type(exc).__name__} {p}")
                conn = http.client.HTTPConnection(HOST, port, timeout=60)
                continue
            got.append(time.perf_counter() - t)
        conn.close()
        with lock:
            lat.extend(got)

    threads = [threading.Thread(target=worker, args=(paths[i::clients],)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ms = sorted(x * 1e3 for x in lat)
    return {
        "clients": clients,
        "requests": len(ms),
        "p50_ms": round(statistics.median(ms), 2) if ms else None,
        "p99_ms": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 2) if ms else None,
        "per_s": round(len(ms) / wall, 1) if wall else None,
        "errors": len(errors),
        "error_examples": errors[:3],
        "cut_by_time": len(ms) + len(errors) < len(paths),
    }


def words_of(store_path: Path, n: int, seed: int = 0) -> list[str]:
    """`n` distinct words whose single token has senses in the store's default view."""
    with open_store(store_path) as s:
        words = sorted({t.strip() for t in s._token_text.values() if t.startswith(" ") and t.strip().isalnum()})
        words = [w for w in words if s.sense_ids(w)]
    rng = np.random.default_rng(seed)
    return [words[i] for i in rng.permutation(len(words))[:n]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, default=None, help="store to serve (default: the synthetic --quick store)")
    ap.add_argument("--requests", type=int, default=300, help="requests per level, endpoint and traffic kind")
    ap.add_argument("--max-seconds", type=float, default=30.0, help="time bound per level, endpoint and kind")
    ap.add_argument("--clients", default="1,8,32", help="concurrency levels")
    ap.add_argument("--out", type=Path, default=None, help="also write the result JSON to this file")
    args = ap.parse_args()
    store = args.store
    if store is None:
        from query import CACHE, build_store

        from sensekit.store import SCHEMA_VERSION

        store = CACHE / f"synthetic-50000x576-v{SCHEMA_VERSION}.sensekit"
        if not store.exists():
            log(f"building {store}")
            build_store(store, 50_000, 576)
    levels = [int(x) for x in args.clients.split(",")]
    need = args.requests * len(levels) * 2 + 20
    words = words_of(store, need)
    if not words:
        raise SystemExit(f"{store} has no single-token words with senses to ask for")
    if len(words) < need:
        log(f"note: the store has {len(words)} words with senses; cold traffic repeats some")
        words = (words * (need // max(1, len(words)) + 1))[:need]
    port = free_port()
    load_before = [round(x, 2) for x in os.getloadavg()]
    proc = start_server(store, port)
    results: list[dict] = []
    try:
        hot = words[:20]
        fresh = iter(words[20:])
        endpoints = {"api": "/api/word?", "page": "/?"}
        for path in list(endpoints.values()):  # warm the hot words into the answer cache
            run_level(port, [path + urllib.parse.urlencode({"w": w}) for w in hot], 1, args.max_seconds)
        for clients in levels:
            for name, prefix in endpoints.items():
                cold = [prefix + urllib.parse.urlencode({"w": next(fresh)}) for _ in range(args.requests)]
                warm = [prefix + urllib.parse.urlencode({"w": hot[i % len(hot)]}) for i in range(args.requests)]
                for kind, paths in (("cold", cold), ("warm", warm)):
                    r = {"endpoint": name, "traffic": kind, **run_level(port, paths, clients, args.max_seconds)}
                    log(json.dumps(r))
                    results.append(r)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    doc = {
        "store": store.name,
        "host": HOST,
        "requests_per_cell": args.requests,
        "max_seconds_per_cell": args.max_seconds,
        "results": results,
        "target": "p50 <= 20 ms for the API word page with 8 clients",
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "machine": machine(),
        "commit": git_commit(),
    }
    if args.out:
        write_json(args.out, doc)
    print(json.dumps(doc))


if __name__ == "__main__":
    main()
