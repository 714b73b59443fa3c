"""Interrupted work (issue 12, section C; issue 20): a `sensekit build` SIGKILLed during the harvest, the
clustering and the store write, in the middle of a checkpoint write and of the HNSW index write; a store
write SIGKILLed between the two halves of the directory swap; a `sensekit distill` SIGKILLed after a
checkpoint; a full disk during the store write.

After each kill the previous store is intact (same content fingerprint) and opens, no partial bundle opens
as complete, and `--resume` ends with the same tables as an uninterrupted run. The process is stopped at
the moment deterministically, then SIGKILLed: at a named stage with the test pause point
SENSEKIT_TEST_PAUSE_AT (sensekit/pause_points.py), or, for the moments inside a write, by the child itself: it runs the real command
with one function wrapped (`PAUSES`) to stop there (a checkpoint's reservoir files written but not its
state; the index file half-written; the swap half done).

Kills are the tests `test_killed_*`; full disks are `test_full_disk_*` (benchmarks/reliability.py counts
them apart).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import TEXTS, distill_config, run_cli
from test_store import write_small_store

from sensekit import open_store
from sensekit.builder.pipeline import BuildConfig, build
from sensekit.errors import StoreError

FLAGS = dict(
    seq_len=16, batch_size=2, senses_per_token=3, samples_per_token=6, contexts_per_sense=2, checkpoint_every=2
)
CLI_FLAGS = [
    "--device",
    "cpu",
    "--seq-len",
    "16",
    "--batch-size",
    "2",
    "-k",
    "3",
    "-G",
    "6",
    "-E",
    "2",
    "--checkpoint-every",
    "2",
    "--quiet",
]
WAIT_S = 900  # a subprocess imports torch and transformers first: minutes on a loaded 2-core machine

# A child process stops itself inside a write: `pause(what)` tells the test (the marker file), then waits
# for its SIGKILL. Each entry wraps one function of the real code; the child then runs the real command.
CHILD = """
import os, sys, time
from pathlib import Path

def pause(what):
    Path(os.environ["SENSEKIT_TEST_PAUSE_MARKER"]).write_text(what)
    time.sleep(3600)
"""
PAUSES = {
    # the build's second checkpoint: its reservoir files are written into the new folder, its state is not
    "checkpoint-write": """
from sensekit.builder.reservoir import Reservoir
_save, _calls = Reservoir.save, []
def _save_then_pause(self, folder):
    _save(self, folder)
    _calls.append(folder)
    if len(_calls) == 2:
        pause("checkpoint-write")
Reservoir.save = _save_then_pause
""",
    # the store's HNSW index file half-written (as a kill during a long write leaves it)
    "index-write": """
import sensekit.writer as _writer
_build = _writer.build_index
class _HalfWritten:
    def __init__(self, index):
        self.index = index
    def __getattr__(self, name):
        return getattr(self.index, name)
    def save_index(self, path):
        self.index.save_index(path)
        os.truncate(path, os.path.getsize(path) // 2)
        pause("index-write")
_writer.build_index = lambda *a, **k: _HalfWritten(_build(*a, **k))
""",
    # the swap where the system exchanges two folders in one step (renameat2): the new bundle is in
    # place, the old one (now under the temporary name) not yet deleted
    "swap-exchange": """
import sensekit.fs as _fs
_exchange = _fs.exchange_paths
def _exchange_then_pause(a, b):
    done = _exchange(a, b)
    if done and Path(b).name == "s.sensekit":
        pause("swap-exchange")
    return done
_fs.exchange_paths = _exchange_then_pause
""",
    # the swap without renameat2 (macOS, musl): the old bundle renamed aside, the new one not yet in place
    "swap-two-renames": """
import os as _os
import sensekit.fs as _fs
_fs.exchange_paths = lambda a, b: False
class _Os:
    def __getattr__(self, name):
        return getattr(_os, name)
    def replace(self, src, dst):
        _os.replace(src, dst)
        if Path(src).name == "s.sensekit":
            pause("swap-two-renames")
_fs.os = _Os()
""",
}


def child(pause_at: str, code: str, *args) -> list[str]:
    """argv of a python child that wraps PAUSES[pause_at], then runs `code` (sys.argv[1:] = args)."""
    return [sys.executable, "-c", CHILD + PAUSES[pause_at] + code, *map(str, args)]


CLI = "from sensekit.cli import main\nmain(sys.argv[1:])\n"


def _cfg(corpus: Path, store: Path, teacher_folder: Path, **kw) -> BuildConfig:
    """The in-process twin of the CLI_FLAGS build (the teacher named as the CLI names it: the resume checks it)."""
    return BuildConfig(corpus=(str(corpus),), store=str(store), teacher=str(teacher_folder), **FLAGS, **kw)


def _env(**extra: str) -> dict:
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", TOKENIZERS_PARALLELISM="false", **extra)
    here = Path(__file__).resolve()
    env["PYTHONPATH"] = os.pathsep.join([str(here.parents[1]), str(here.parent), env.get("PYTHONPATH", "")])
    return env


def kill_when(proc: subprocess.Popen, ready, what: str) -> None:
    """SIGKILL `proc` as soon as `ready()` is true; fail (with its stderr) if it ends first or takes too long."""
    t0 = time.monotonic()
    while not ready():
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            pytest.fail(f"the process ended (code {proc.returncode}) before {what}: {err[-2000:]}")
        if time.monotonic() - t0 > WAIT_S:
            proc.kill()
            pytest.fail(f"{what} did not happen within {WAIT_S} s")
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def fingerprint(store: Path) -> str:
    with open_store(store) as s:
        return s.verify()


def assert_no_partial_bundle_opens(store: Path) -> list[Path]:
    """Every leftover sibling that looks like a bundle is refused as incomplete; returns them."""
    partial = [p for p in store.parent.glob(f".{store.name}.*") if (p / "store.duckdb").is_file()]
    for p in partial:
        with pytest.raises(StoreError, match="incomplete"):
            open_store(p)
    return partial


# -- sensekit build ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("kill-corpus") / "corpus.txt"
    path.write_text("\n\n".join(TEXTS * 3) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny, tiny_dir, corpus):  # noqa: F811
    """An uninterrupted build (seed 0) and an older store (seed 1) that a killed build must leave intact."""
    root = tmp_path_factory.mktemp("kill-ref")
    build(_cfg(corpus, root / "ref.sensekit", tiny_dir), teacher=tiny)
    build(_cfg(corpus, root / "old.sensekit", tiny_dir, seed=1), teacher=tiny)
    return {
        "ref": fingerprint(root / "ref.sensekit"),
        "old": root / "old.sensekit",
        "old_fp": fingerprint(root / "old.sensekit"),
    }


@pytest.mark.parametrize("stage", ["harvest", "cluster", "write", "checkpoint-write", "index-write"])
def test_killed_build_keeps_the_old_store_and_resumes_to_the_same_tables(
    tmp_path,
    tiny,
    tiny_dir,
    corpus,  # noqa: F811
    reference,
    stage,
):
    store = tmp_path / "s.sensekit"
    shutil.copytree(reference["old"], store)
    marker = tmp_path / "paused"
    build_args = ["build", corpus, "--store", store, "--teacher", tiny_dir, *CLI_FLAGS]
    if stage in PAUSES:  # inside a write: the child stops itself there
        argv, env = child(stage, CLI, *build_args), _env(SENSEKIT_TEST_PAUSE_MARKER=str(marker))
    else:
        argv = [sys.executable, "-m", "sensekit.cli", *map(str, build_args)]
        env = _env(SENSEKIT_TEST_PAUSE_AT=stage, SENSEKIT_TEST_PAUSE_MARKER=str(marker))
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    kill_when(proc, marker.exists, f"the build reached {stage}")

    assert fingerprint(store) == reference["old_fp"]  # the previous store: intact, opens, same content
    with open_store(store) as s:
        assert s.meta["seed"] == 1 and s.senses("bank")
    partial = assert_no_partial_bundle_opens(store)
    assert bool(partial) == (stage in ("write", "index-write"))  # only these had begun a new bundle
    ckpt = tmp_path / ".s.sensekit.ckpt"
    assert (ckpt / "rank-0" / "state.json").is_file()  # the last whole checkpoint
    if stage == "checkpoint-write":  # the half-written one lies beside it, without its state
        half = [p for p in ckpt.iterdir() if p.name != "rank-0"]
        assert len(half) == 1 and not (half[0] / "state.json").exists()

    resumed = build(_cfg(corpus, store, tiny_dir, resume=True), teacher=tiny)
    assert fingerprint(resumed.store) == reference["ref"]  # the same tables as the uninterrupted build
    assert not ckpt.exists()


# -- the directory swap --------------------------------------------------------------------------------------------
EXTRA_PAIRS = {
    "head": ["bank", "money"],
    "related": ["money", "bank"],
    "kind": ["syn", "syn"],
    "derived": [False, False],
    "provenance": [None, None],
}
# What `sensekit relations add` does to a store: a new bundle with one source's rows, swapped in (no torch).
ADD_PAIRS = f"""
from sensekit.writer import StoreWriter
with StoreWriter.update(sys.argv[1]) as w:
    w.replace_relations("pairs:extra.tsv", {EXTRA_PAIRS!r})
"""


def _add_pairs(store: Path) -> None:
    from sensekit.writer import StoreWriter

    with StoreWriter.update(store) as w:
        w.replace_relations("pairs:extra.tsv", EXTRA_PAIRS)


@pytest.mark.parametrize("how", ["swap-exchange", "swap-two-renames"])
def test_killed_between_the_two_halves_of_the_swap_loses_no_store(tmp_path, tokenizer_json, how):
    from conftest import train_tokenizer

    from sensekit.fs import exchange_paths

    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    if how == "swap-exchange" and not exchange_paths(tmp_path / "a", tmp_path / "b"):
        pytest.skip("this system cannot exchange two folders in one step (renameat2): the swap takes two renames")
    store = tmp_path / "s.sensekit"
    write_small_store(store, tokenizer_json, train_tokenizer())
    old_fp = fingerprint(store)
    shutil.copytree(store, tmp_path / "new" / "s.sensekit")
    _add_pairs(tmp_path / "new" / "s.sensekit")  # what the killed write would have made
    new_fp = fingerprint(tmp_path / "new" / "s.sensekit")
    marker = tmp_path / "paused"
    proc = subprocess.Popen(
        child(how, ADD_PAIRS, store),
        env=_env(SENSEKIT_TEST_PAUSE_MARKER=str(marker)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    kill_when(proc, marker.exists, f"the write reached {how}")

    # no store is lost: the old one and the new one are both whole and open, wherever each is
    def beside(tag: str) -> Path:
        (path,) = tmp_path.glob(f".s.sensekit.{tag}-*")
        return path

    if how == "swap-exchange":  # one step: the new store at the path, the old one under the temporary name
        assert fingerprint(store) == new_fp and fingerprint(beside("tmp")) == old_fp
    else:  # between the two renames: the old store moved aside, the new one not yet in place
        assert fingerprint(beside("old")) == old_fp and fingerprint(beside("tmp")) == new_fp
        assert not store.exists()  # nothing at the path until the next write or a rename back: docs/reliability.md
        with pytest.raises(StoreError, match="interrupted between its two renames.*mv ") as err:
            open_store(store)
        assert "\n" not in str(err.value) and str(beside("old")) in str(err.value)


# -- sensekit distill ---------------------------------------------------------------------------------------------
def _losses(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_killed_distill_resumes_with_the_losses_of_an_uninterrupted_run(
    tmp_path,
    store_dir,
    corpus_file,  # noqa: F811
    teacher_dir,
    teacher,
):  # noqa: F811
    from sensekit.distill.train import train

    full = distill_config(store_dir, corpus_file, teacher_dir, tmp_path / "full", max_steps=30, save_every=2)
    cut = full.replace(output_dir=str(tmp_path / "cut"))
    cut.save(tmp_path)  # tmp_path/config.toml: the killed process runs exactly this config
    marker = tmp_path / "paused"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sensekit.cli", "distill", "--config", str(tmp_path / "config.toml")],
        env=_env(SENSEKIT_TEST_PAUSE_AT="distill-checkpoint", SENSEKIT_TEST_PAUSE_MARKER=str(marker)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    kill_when(proc, marker.exists, "distill saved its first checkpoint")  # it stops there: no race
    assert [p.name for p in (tmp_path / "cut" / "checkpoints").iterdir()] == ["step-00000002"]
    assert not (tmp_path / "cut" / "student").exists()

    train(full, teacher=teacher)
    train(cut, resume=True, teacher=teacher)
    a, b = _losses(tmp_path / "full"), _losses(tmp_path / "cut")
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(1, 31))
    for ra, rb in zip(a, b):
        for k in ("kd", "ce", "sense_pos", "sense_neg", "total"):
            assert rb[k] == pytest.approx(ra[k], rel=1e-5, abs=1e-7), (ra["step"], k)


# -- a full disk ------------------------------------------------------------------------------------------------------
@pytest.fixture()
def small_disk(tmp_path):
    """A 6 MiB tmpfs (the small store takes about 4 MiB): needs root and a kernel that lets us mount."""
    folder = tmp_path / "disk"
    folder.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(
            f"cannot mount a small tmpfs to fill ({(proc.stderr or proc.stdout).strip()[:200]}); "
            "the full-disk tests need root"
        )
    yield folder
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture()
def full_disk_store(small_disk, tokenizer_json):
    from conftest import train_tokenizer

    store = small_disk / "s.sensekit"
    write_small_store(store, tokenizer_json, train_tokenizer())
    return store


def test_full_disk_during_a_store_write(full_disk_store, tokenizer_json):
    import numpy as np

    from sensekit.writer import StoreWriter

    before = fingerprint(full_disk_store)
    rng = np.random.default_rng(0)
    with pytest.raises(StoreError, match="no space left on the device while writing"):
        with StoreWriter(full_disk_store, dim=16, tokenizer_json=tokenizer_json) as w:
            w.add_tokens(np.arange(2000), [f"t{i}" for i in range(2000)], np.ones(2000))
            w.add_senses(
                rng.standard_normal((20000, 16)).astype(np.float32),
                np.arange(20000) % 10,
                np.ones(20000),
                token_ids=np.arange(20000) // 10,
            )
    assert fingerprint(full_disk_store) == before
    assert [p.name for p in full_disk_store.parent.iterdir()] == ["s.sensekit"]  # the half-written bundle is gone


def test_full_disk_during_relations_add(capsys, full_disk_store, tmp_path):
    before = fingerprint(full_disk_store)
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("happy\tglad\tsyn\ngood\tbad\tant\n")
    code, _, err = run_cli(capsys, "relations", "add", f"pairs:{pairs}", "--store", full_disk_store)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and "no space left" in lines[0], err
    assert fingerprint(full_disk_store) == before
    assert [p.name for p in full_disk_store.parent.iterdir()] == ["s.sensekit"]


def test_full_disk_during_a_build(capsys, full_disk_store, tiny_dir, tmp_path):  # noqa: F811
    before = fingerprint(full_disk_store)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(TEXTS * 3) + "\n")
    code, _, err = run_cli(capsys, "build", corpus, "--store", full_disk_store, "--teacher", tiny_dir, *CLI_FLAGS)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and "no space left" in lines[0], err
    assert fingerprint(full_disk_store) == before
    assert_no_partial_bundle_opens(full_disk_store)
