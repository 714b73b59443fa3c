"""Interrupted work (issue 12, section C): a `sensekit build` SIGKILLed during the harvest, the clustering
and the store write; a `sensekit distill` SIGKILLed mid-run; a full disk during the store write.

After each kill the previous store at the path is intact (same content fingerprint) and opens, no partial
bundle opens as complete, and `--resume` ends with the same tables as an uninterrupted run. The build is
stopped at a stage deterministically with the test hook SENSEKIT_TEST_PAUSE_AT (sensekit/_hooks.py).
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
from helpers import TEXTS
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
WAIT_S = 400  # a subprocess imports torch and transformers first: minutes on a loaded 2-core machine


def _cfg(corpus: Path, store: Path, teacher_folder: Path, **kw) -> BuildConfig:
    """The in-process twin of the CLI_FLAGS build (the teacher named as the CLI names it: the resume checks it)."""
    return BuildConfig(corpus=(str(corpus),), store=str(store), teacher=str(teacher_folder), **FLAGS, **kw)


def _env(**extra: str) -> dict:
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", TOKENIZERS_PARALLELISM="false", **extra)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
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


@pytest.mark.parametrize("stage", ["harvest", "cluster", "write"])
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
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sensekit.cli",
            "build",
            str(corpus),
            "--store",
            str(store),
            "--teacher",
            str(tiny_dir),
            *CLI_FLAGS,
        ],
        env=_env(SENSEKIT_TEST_PAUSE_AT=stage, SENSEKIT_TEST_PAUSE_MARKER=str(marker)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    kill_when(proc, marker.exists, f"the build reached its {stage} stage")

    assert fingerprint(store) == reference["old_fp"]  # the previous store: intact, opens, same content
    with open_store(store) as s:
        assert s.meta["seed"] == 1 and s.senses("bank")
    partial = assert_no_partial_bundle_opens(store)
    assert bool(partial) == (stage == "write")  # only the write stage had begun a new bundle
    assert (tmp_path / ".s.sensekit.ckpt" / "rank-0" / "state.json").is_file()

    resumed = build(_cfg(corpus, store, tiny_dir, resume=True), teacher=tiny)
    assert fingerprint(resumed.store) == reference["ref"]  # the same tables as the uninterrupted build
    assert not (tmp_path / ".s.sensekit.ckpt").exists()


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
    from distill.config import DistillConfig
    from distill.train import train

    full = DistillConfig(
        store=str(store_dir),
        data=(str(corpus_file),),
        teacher=str(teacher_dir),
        student_layers="3",
        train_layers="top1",
        seq_len=24,
        batch_size=4,
        max_windows=16,
        max_steps=30,
        lr=3e-3,
        warmup_frac=0.25,
        sample_floor=4,
        kappa=3,
        neighbors=3,
        output_dir=str(tmp_path / "full"),
        device="cpu",
        save_every=2,
    )
    cut = full.replace(output_dir=str(tmp_path / "cut"))
    cut.save(tmp_path)  # tmp_path/config.toml: the killed process runs exactly this config
    proc = subprocess.Popen(
        [sys.executable, "-m", "sensekit.cli", "distill", "--config", str(tmp_path / "config.toml")],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    checkpoint = tmp_path / "cut" / "checkpoints" / "step-00000004" / "state.pt"
    kill_when(proc, checkpoint.is_file, "distill saved its step-4 checkpoint")
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


def _run_cli(capsys, *args) -> tuple[int, str]:
    from sensekit.cli import main

    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


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
    code, err = _run_cli(capsys, "relations", "add", f"pairs:{pairs}", "--store", full_disk_store)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and "no space left" in lines[0], err
    assert fingerprint(full_disk_store) == before
    assert [p.name for p in full_disk_store.parent.iterdir()] == ["s.sensekit"]


def test_full_disk_during_a_build(capsys, full_disk_store, tiny_dir, tmp_path):  # noqa: F811
    before = fingerprint(full_disk_store)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(TEXTS * 3) + "\n")
    code, err = _run_cli(capsys, "build", corpus, "--store", full_disk_store, "--teacher", tiny_dir, *CLI_FLAGS)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and "no space left" in lines[0], err
    assert fingerprint(full_disk_store) == before
    assert_no_partial_bundle_opens(full_disk_store)
