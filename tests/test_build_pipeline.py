"""End-to-end builds with the tiny teacher: the store, determinism, resume, guards, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pytest
from helpers import build_config

from sensekit import open_store
from sensekit.builder.pipeline import BuildConfig, build
from sensekit.errors import InputError

_cfg = build_config


def _tables(store: Path) -> dict:
    con = duckdb.connect(str(store / "store.duckdb"), read_only=True)
    try:
        return {
            "tokens": con.execute("SELECT * FROM tokens ORDER BY token_id").fetchall(),
            "senses": con.execute(
                "SELECT sense_id, token_id, sense_index, count FROM senses ORDER BY sense_id"
            ).fetchall(),
            "contexts": con.execute("SELECT * FROM contexts ORDER BY sense_id, rank").fetchall(),
            "embeddings": np.load(store / "embeddings.npy").tolist(),  # every sense's vector, in sense_id order
        }
    finally:
        con.close()


def test_build_writes_a_complete_queryable_store(tiny, text_corpus, tmp_path):
    events = []
    result = build(_cfg(text_corpus, tmp_path / "s.sensekit"), progress=lambda *e: events.append(e), teacher=tiny)
    assert {e[0] for e in events} >= {"load", "harvest", "cluster", "contexts", "write"}
    assert result.tokens > 20 and result.senses >= result.tokens and result.contexts > 0
    with open_store(result.store) as s:
        meta = s.meta
        for key in (
            "teacher",
            "teacher_revision",
            "hidden_size",
            "layer",
            "key_mode",
            "next_token",
            "k",
            "samples_per_token",
            "corpus_fingerprint",
            "sensekit_version",
            "created_at",
            "tokenizer_sha256",
            "seq_len",
            "max_tokens",
            "seed",
        ):
            assert key in meta, key
        assert meta["key_mode"] == "next" and meta["k"] == 3 and meta["hidden_size"] == tiny.hidden_size
        bank = s.senses("bank")
        assert 1 <= len(bank) <= 3
        total = sum(x.count for x in bank)
        assert s.tokens("bank")[0].occurrences >= total and total == min(6, s.tokens("bank")[0].occurrences)
        ctx = bank[0].contexts[0]
        assert ctx.snippet[ctx.mark_start : ctx.mark_end] == "bank"
        text = text_corpus.read_text()
        assert text[ctx.char_start : ctx.char_end] == "bank"
        assert s.neighbors("bank", k=3)
        assert s.info().counts["senses"] == result.senses
    assert not (tmp_path / ".s.sensekit.ckpt").exists()


def test_same_inputs_and_seed_give_identical_tables(tiny, text_corpus, tmp_path):
    build(_cfg(text_corpus, tmp_path / "a.sensekit", samples_per_token=4), teacher=tiny)
    build(_cfg(text_corpus, tmp_path / "b.sensekit", samples_per_token=4), teacher=tiny)
    assert _tables(tmp_path / "a.sensekit") == _tables(tmp_path / "b.sensekit")
    build(_cfg(text_corpus, tmp_path / "c.sensekit", samples_per_token=4, seed=1), teacher=tiny)
    a, c = _tables(tmp_path / "a.sensekit"), _tables(tmp_path / "c.sensekit")
    assert (a["senses"], a["embeddings"]) != (c["senses"], c["embeddings"])  # another seed: other senses


class Killed(Exception):
    pass


@pytest.mark.parametrize("kill_after", [5, 34])  # mid-buffer early on, and several buffers later
def test_resume_gives_the_same_store_as_an_uninterrupted_run(tiny, text_corpus, tmp_path, kill_after):
    ref = build(_cfg(text_corpus, tmp_path / "ref.sensekit"), teacher=tiny)
    store = tmp_path / "s.sensekit"
    seen = {"n": 0}

    def killer(stage, done, total):
        if stage == "harvest":
            seen["n"] += 1
            if seen["n"] > kill_after:  # the first report is before any batch
                raise Killed

    with pytest.raises(Killed):
        build(_cfg(text_corpus, store, checkpoint_every=3), progress=killer, teacher=tiny)
    ckpt = tmp_path / ".s.sensekit.ckpt" / "rank-0"
    state = json.loads((ckpt / "state.json").read_text())["state"]
    assert state["batch"] == 3 * (kill_after // 3)  # the last checkpoint before the kill
    with pytest.raises(InputError, match="other settings"):
        build(_cfg(text_corpus, store, checkpoint_every=3, seed=9, resume=True), teacher=tiny)
    resumed = build(_cfg(text_corpus, store, checkpoint_every=3, resume=True), teacher=tiny)
    assert resumed.tokens_processed == ref.tokens_processed
    assert _tables(store) == _tables(tmp_path / "ref.sensekit")
    assert not ckpt.exists()


def test_max_tokens_and_input_mode(tiny, text_corpus, tmp_path):
    r = build(_cfg(text_corpus, tmp_path / "s.sensekit", max_tokens=100, key="input"), teacher=tiny)
    assert r.tokens_processed == 100
    with open_store(r.store) as s:
        assert s.meta["key_mode"] == "input" and s.meta["next_token"] is None
        assert sum(t[2] for t in s.con.execute("SELECT * FROM tokens").fetchall()) == r.key_positions


def test_reservoir_memory_bound_is_checked_before_any_work(tiny, text_corpus, tmp_path):
    with pytest.raises(InputError, match="reservoir-memory"):
        build(_cfg(text_corpus, tmp_path / "s.sensekit", reservoir_memory="10KB"), teacher=tiny)
    assert not (tmp_path / "s.sensekit").exists()


def test_empty_corpus_is_a_one_line_error(tiny, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n   \n")
    with pytest.raises(InputError, match="corpus is empty") as err:
        build(_cfg(empty, tmp_path / "s.sensekit"), teacher=tiny)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "bad",
    [
        dict(key="middle"),
        dict(next_token="beam"),
        dict(senses_per_token=0),
        dict(samples_per_token=0),
        dict(seq_len=2),
        dict(reservoir_memory="lots"),
        dict(max_tokens=0),
    ],
)
def test_config_is_validated(bad, tmp_path):
    with pytest.raises(InputError):
        _cfg(tmp_path / "c.txt", tmp_path / "s", **bad)


def test_cli_build_then_query(tiny_dir, text_corpus, tmp_path):
    import typer
    from typer.testing import CliRunner

    from sensekit.cli import build

    app = typer.Typer()
    app.add_typer(build.app)

    @app.command()
    def noop() -> None:  # a second command so `build` is a subcommand, as in the real app
        pass

    store = tmp_path / "cli.sensekit"
    res = CliRunner().invoke(
        app,
        [
            "build",
            str(text_corpus),
            "--store",
            str(store),
            "--teacher",
            str(tiny_dir),
            "--device",
            "cpu",
            "-k",
            "2",
            "-G",
            "5",
            "--seq-len",
            "16",
            "--batch-size",
            "4",
            "--max-tokens",
            "300",
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "wrote" in res.output
    with open_store(store) as s:
        assert s.meta["k"] == 2 and s.meta["max_tokens"] == 300
    res = CliRunner().invoke(app, ["build", str(text_corpus), "--store", str(store), "--key", "middle"])
    assert res.exit_code != 0 and isinstance(res.exception, InputError)


def test_cli_flags_come_from_build_config():
    import dataclasses

    import typer
    from typer.testing import CliRunner

    from sensekit.cli import build

    app = typer.Typer()
    app.add_typer(build.app)

    @app.command()
    def noop() -> None:
        pass

    res = CliRunner().invoke(app, ["build", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    for f in dataclasses.fields(BuildConfig):
        if f.name != "corpus":  # the positional argument
            assert "--" + f.name.replace("_", "-") in res.output, f.name
    for short in ("-s", "-k", "-G", "-E", "-q"):
        assert f" {short} " in res.output, short
    assert "[default: 10]" in res.output and "[default: senses.sensekit]" in res.output


def test_relations_are_attached_after_the_senses(tiny, text_corpus, tmp_path):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("good\tbad\tant\nhappy\tglad\tsyn\nbig\tlarge\tsyn\n")
    r = build(_cfg(text_corpus, tmp_path / "s.sensekit", relations=(f"pairs:{pairs}",)), teacher=tiny)
    assert r.relations is not None
    with open_store(r.store) as s:
        kinds = {(x.head, x.related, x.kind) for x in s.relations("good")}
        assert ("good", "bad", "ant") in kinds


def test_a_store_path_that_is_not_a_store_is_never_replaced(tiny, text_corpus, tmp_path):
    precious = tmp_path / "documents"
    precious.mkdir()
    (precious / "thesis.txt").write_text("do not delete")
    with pytest.raises(InputError, match="not a sensekit store"):
        build(_cfg(text_corpus, precious), teacher=tiny)
    assert (precious / "thesis.txt").read_text() == "do not delete"


def test_a_checkpoint_of_a_build_that_batched_otherwise_is_refused_by_name(monkeypatch):
    """A checkpoint counts batches: after a change of the batching rule it cannot be resumed, and the
    refusal says why (an old checkpoint has no batching record at all)."""
    import sensekit.builder.harvest as harvest
    from sensekit.builder.checkpoint import _first_difference, build_fingerprint, build_settings
    from sensekit.builder.config import BuildConfig

    cfg = BuildConfig(store="s.sensekit")
    teacher = type("T", (), {"name": "tiny", "revision": "r"})()
    now = build_settings(cfg, "corpus", teacher, 1)
    before = build_fingerprint(cfg, "corpus", teacher, 1)
    monkeypatch.setattr(harvest, "PAD_SLACK", 0.0)
    assert build_fingerprint(cfg, "corpus", teacher, 1) != before
    old = {k: v for k, v in now.items() if k != "batching"}
    assert _first_difference(old, now).startswith("batching is 'longest first") and "used None" in _first_difference(
        old, now
    )
