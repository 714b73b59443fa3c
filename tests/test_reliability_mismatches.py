"""Mismatches (issue 12, section D): each is refused before any work, with one line that names both sides.

- an HNSW file from another store (same count and dim, other vectors; another dim; another count);
- a newer or an older schema version (query, relations add, distill);
- distillation with a store from another teacher, tokenizer, hidden size or key mode;
- `--resume` with a changed config (build and distill).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pytest
from helpers import TEXTS, bos_tokenizer, distill_config, make_store, run_cli
from test_store import write_small_store


def one_line(err: str, code: int, want_code: int, *needles: str) -> str:
    """The error is one line, `error: ...`, the last on stderr (distill prints its progress above it)."""
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == want_code and "Traceback" not in err, (code, err[-2000:])
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], err[-2000:]
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


@pytest.fixture()
def store_path(tmp_path, tokenizer_json, tok):  # noqa: F811
    path = tmp_path / "small.sensekit"
    write_small_store(path, tokenizer_json, tok)
    return path


def _store_like_small(
    path: Path,
    tokenizer_json: Path,
    tok,
    dim: int = 16,
    n_senses: int = 5,  # noqa: F811
    seed: int = 1,
) -> Path:
    """A store with the small store's tokens and sense ids, but other vectors (and optionally another dim/count)."""
    from sensekit.writer import StoreWriter

    ids = [tok.token_to_id(" " + w) for w in ("bank", "river", "money", "glad")]
    owners = (ids * 3)[:n_senses]
    with StoreWriter(path, dim=dim, tokenizer_json=tokenizer_json, space="identity") as w:
        w.add_tokens(ids, [" bank", " river", " money", " glad"], [3, 3, 3, 3])
        w.add_senses(
            np.random.default_rng(seed).standard_normal((n_senses, dim)).astype(np.float32),
            [i // 4 for i in range(n_senses)],
            [1] * n_senses,
            token_ids=owners,
        )
    return path


# -- the HNSW index -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "other,needles",
    [
        (dict(), ("holds other vectors than the store's senses", "belongs to another store")),  # same count and dim
        (dict(dim=8), ("holds 8-dim vectors but the store's senses are 16-dim",)),
        (dict(n_senses=6), ("count: index 6 vs recorded 5",)),
    ],
)
def test_an_index_from_another_store_is_refused(
    capsys,
    store_path,
    tmp_path,
    tokenizer_json,
    tok,
    other,  # noqa: F811
    needles,
):
    donor = _store_like_small(tmp_path / "other.sensekit", tokenizer_json, tok, **other)
    shutil.copyfile(donor / "senses.hnsw", store_path / "senses.hnsw")
    code, _, err = run_cli(capsys, "query", "bank", "--store", store_path)
    one_line(err, code, 2, str(store_path / "senses.hnsw"), *needles)


# -- the schema version ----------------------------------------------------------------------------------------------
def _set_schema(store: Path, version: int) -> None:
    con = duckdb.connect(str(store / "store.duckdb"))
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [json.dumps(version)])
    con.close()


@pytest.mark.parametrize("version", [1, 2, 3, 5])
def test_another_schema_version_is_refused_before_any_work(capsys, store_path, tmp_path, version):
    _set_schema(store_path, version)
    code, _, err = run_cli(capsys, "query", "bank", "--store", store_path)
    one_line(err, code, 2, f"schema version {version}", "reads version 4")
    assert ("sensekit migrate" in err) == (version == 3)  # a v3 store is converted, not rebuilt
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("happy\tglad\tsyn\n")
    code, _, err = run_cli(capsys, "relations", "add", f"pairs:{pairs}", "--store", store_path)
    one_line(err, code, 2, f"schema version {version}", "reads version 4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs.tsv", "small.sensekit"]  # nothing was copied


def test_distill_refuses_another_schema_before_loading_a_teacher(capsys, tmp_path, teacher_dir, corpus_file):  # noqa: F811
    store = make_store(tmp_path / "s.sensekit", teacher_dir)
    _set_schema(store, 5)
    code, _, err = run_cli(
        capsys,
        "distill",
        "--store",
        store,
        "--data",
        corpus_file,
        "--teacher",
        "no/such-teacher",
        "--output-dir",
        tmp_path / "run",
        "--device",
        "cpu",
    )
    one_line(err, code, 2, "schema version 5", "reads version 4")


# -- distillation against a store of another teacher ---------------------------------------------------------------
def _distill(capsys, store: Path, teacher_dir: Path, corpus: Path, out: Path) -> tuple[int, str, str]:  # noqa: F811
    return run_cli(
        capsys,
        "distill",
        "--store",
        store,
        "--data",
        corpus,
        "--teacher",
        teacher_dir,
        "--output-dir",
        out,
        "--device",
        "cpu",
        "--student-layers",
        "2",
        "--train-layers",
        "top1",
        "--seq-len",
        "24",
        "--batch-size",
        "4",
        "--max-windows",
        "8",
        "--max-steps",
        "2",
    )


def _no_work_done(out: Path) -> None:
    assert not (out / "checkpoints").exists() and not (out / "metrics.jsonl").exists()
    assert not (out / "student").exists() and not (out / "data").exists()


@pytest.mark.parametrize("case", ["teacher", "tokenizer", "hidden_size", "key_mode"])
def test_distill_refuses_a_store_of_another_teacher(capsys, tmp_path, teacher_dir, corpus_file, case):  # noqa: F811
    store = tmp_path / "s.sensekit"
    if case == "teacher":
        make_store(store, teacher_dir, teacher_name="other-org/other-model")
        needles = ("built with teacher 'other-org/other-model'", f"this run's teacher is '{teacher_dir}'")
    elif case == "tokenizer":
        other_tok = tmp_path / "other-tokenizer.json"
        bos_tokenizer().save(str(other_tok))
        make_store(store, teacher_dir, tokenizer_json=other_tok)
        needles = ("built with another tokenizer (sha256", f"than teacher '{teacher_dir}' (sha256")
    elif case == "hidden_size":
        make_store(store, teacher_dir, dim=16)
        needles = ("holds 16-dim senses", "has hidden size 32")
    else:
        make_store(store, teacher_dir, provenance={"key_mode": "input"})
        needles = ("built with --key input", "needs --key next")
    code, _, err = _distill(capsys, store, teacher_dir, corpus_file, tmp_path / "run")
    one_line(err, code, 1, str(store), *needles)
    _no_work_done(tmp_path / "run")


# -- --resume with a changed config ------------------------------------------------------------------------------------
def test_build_resume_with_a_changed_config_names_the_setting(capsys, tmp_path, tiny, tiny_dir):  # noqa: F811
    from sensekit.builder.pipeline import BuildConfig, build

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(TEXTS * 3) + "\n")
    store = tmp_path / "s.sensekit"
    cfg = BuildConfig(
        corpus=(str(corpus),),
        store=str(store),
        teacher=str(tiny_dir),
        seq_len=16,
        batch_size=2,
        senses_per_token=3,
        samples_per_token=6,
        checkpoint_every=2,
    )

    def stop_after_4(stage, done, total):
        stop_after_4.n = getattr(stop_after_4, "n", 0) + (stage == "harvest")
        if stop_after_4.n > 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build(cfg, progress=stop_after_4, teacher=tiny)
    state = tmp_path / ".s.sensekit.ckpt" / "rank-0" / "state.json"
    saved = state.read_text()
    code, _, err = run_cli(
        capsys,
        "build",
        corpus,
        "--store",
        store,
        "--teacher",
        tiny_dir,
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
        "--checkpoint-every",
        "2",
        "--seed",
        "9",
        "--resume",
        "--quiet",
    )
    one_line(err, code, 1, "--resume", "--seed is 9 but the checkpoint's build used 0")
    assert state.read_text() == saved and not store.exists()  # no work: the checkpoint and the path as they were


def test_distill_resume_with_a_changed_config_names_the_setting(
    capsys,
    tmp_path,
    store_dir,
    corpus_file,  # noqa: F811
    teacher_dir,
    teacher,
):  # noqa: F811
    from sensekit.distill.train import train

    cfg = distill_config(
        store_dir,
        corpus_file,
        teacher_dir,
        tmp_path / "run",
        student_layers=2,
        max_windows=8,
        max_steps=2,
        save_every=1,
    )
    train(cfg, teacher=teacher)
    cfg.save(tmp_path)
    metrics = (tmp_path / "run" / "metrics.jsonl").read_text()
    code, _, err = run_cli(capsys, "distill", "--config", tmp_path / "config.toml", "--resume", "--lr", "1.0")
    one_line(err, code, 1, "--resume: --lr is 1.0", "used 0.003")
    assert "loading teacher" not in err  # refused before the teacher, the data or the student
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == metrics
