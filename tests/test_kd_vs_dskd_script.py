"""benchmarks/kd_vs_dskd.py: the split, the leak check, the statistics and the schedule criteria on toy data."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "kd_vs_dskd.py"


@pytest.fixture(scope="module")
def K():
    spec = importlib.util.spec_from_file_location("kd_vs_dskd", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve string annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_split_is_deterministic_and_by_title(K):
    titles = [f"Article {i}" for i in range(2000)]
    first = [K.split_of(t) for t in titles]
    assert first == [K.split_of(t) for t in titles]
    share = {s: first.count(s) / len(first) for s in ("train", "dev", "test")}
    assert 0.75 < share["train"] < 0.85 and 0.07 < share["dev"] < 0.13 and 0.07 < share["test"] < 0.13


def test_parse_layers(K):
    assert K.parse_layers("0-2,5,7-8") == [0, 1, 2, 5, 7, 8]
    assert K.parse_layers("0-9,20-29") == list(range(10)) + list(range(20, 30))
    with pytest.raises(ValueError):
        K.parse_layers("3-5,4")


def test_eval_every_puts_a_point_at_the_tail_start(K):
    for steps in (40, 100, 160, 300, 250, 60):
        every = K.eval_every_for(steps)
        assert steps % every == 0 and round(0.8 * steps) % every == 0
        assert 5 <= steps // every <= 20
    assert K.eval_every_for(20, points=5) == 4


def _splits(tmp_path: Path, docs: dict[str, list[tuple[str, str]]]) -> dict:
    files, titles, hashes = {}, {}, {}
    for split, rows in docs.items():
        path = tmp_path / f"{split}.jsonl"
        path.write_text("".join(json.dumps({"id": t, "text": x}) + "\n" for t, x in rows), encoding="utf-8")
        files[split] = str(path)
        titles[split] = [t for t, _ in rows]
        hashes[split] = [K_sha(x) for _, x in rows]
    return {"files": files, "titles": titles, "text_sha256": hashes}


def K_sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _prose(seed: int, n: int = 200) -> str:
    rng = np.random.default_rng(seed)
    return " ".join(f"w{int(i)}" for i in rng.integers(0, 5000, n))


def test_leak_check_passes_clean_splits(K, tmp_path):
    s = _splits(
        tmp_path, {"train": [("A", _prose(1)), ("B", _prose(2))], "dev": [("C", _prose(3))], "test": [("D", _prose(4))]}
    )
    out = K.leak_check(s, None, s["files"]["train"])
    assert out["passed"] and out["ngram_share_max"] == 0.0


@pytest.mark.parametrize("leak", ["title", "text", "near-duplicate"])
def test_leak_check_fails_loudly(K, tmp_path, leak):
    train = [("A", _prose(1)), ("B", _prose(2))]
    held = {
        "title": ("A", _prose(3)),
        "text": ("C", _prose(1)),
        "near-duplicate": ("C", _prose(2) + " " + _prose(9, 20)),
    }[leak]
    s = _splits(tmp_path, {"train": train, "dev": [held], "test": [("D", _prose(4))]})
    with pytest.raises(K.LeakError):
        K.leak_check(s, None, s["files"]["train"])


def test_leak_check_refuses_store_contexts_from_held_out_articles(K, tmp_path):
    s = _splits(tmp_path, {"train": [("A", _prose(1))], "dev": [("C", _prose(3))], "test": [("D", _prose(4))]})
    from sensekit.builder.corpus import corpus_fingerprint, resolve_paths

    fp = corpus_fingerprint(resolve_paths([s["files"]["train"]]), "text")
    store = {"meta": {"corpus": [s["files"]["train"]], "corpus_fingerprint": fp}, "context_doc_ids": ["A"]}
    assert K.leak_check(s, store, s["files"]["train"])["passed"]
    with pytest.raises(K.LeakError, match="non-train"):
        K.leak_check(s, {**store, "context_doc_ids": ["A", "C"]}, s["files"]["train"])
    with pytest.raises(K.LeakError, match="corpus"):
        K.leak_check(
            s, {**store, "meta": {"corpus": [s["files"]["dev"]], "corpus_fingerprint": fp}}, s["files"]["train"]
        )


def test_paired_statistics_match_scipy(K):
    from scipy import stats

    a, b = [3.0, 2.5, 4.0, 3.2], [2.0, 2.4, 3.1, 2.0]
    out = K.paired(a, b)
    d = np.subtract(a, b)
    assert out["mean"] == pytest.approx(d.mean())
    assert out["sd"] == pytest.approx(d.std(ddof=1))
    lo, hi = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    assert out["t_ci95"] == pytest.approx([lo, hi])
    assert out["p_value"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert out["bootstrap_ci95"][0] >= d.min() - 1e-12 and out["bootstrap_ci95"][1] <= d.max() + 1e-12
    assert K.verdict(out, higher_is_better=True) == "better"
    assert K.verdict(out, higher_is_better=False) == "worse"
    assert K.verdict(K.paired([1.0, 2.0, 3.0], [1.5, 1.5, 3.0]), True) == "no detectable difference"
    one = K.paired([1.0], [0.5])
    assert one["mean"] == 0.5 and one["t_ci95"] is None and K.verdict(one, True).startswith("n/a")


def test_describe_skips_missing_values(K):
    d = K.describe([1.0, None, 3.0])
    assert d["mean"] == 2.0 and d["std"] == pytest.approx(math.sqrt(2)) and d["n"] == 2
    assert K.describe([5.0])["std"] is None


def test_step_times_use_cached_steps_not_after_an_eval(K):
    rows = [{"step": i, "epoch": (i - 1) / 4, "elapsed_s": float(i) + (10.0 if i > 6 else 0.0)} for i in range(1, 11)]
    times = K.step_times(rows, eval_steps={6})
    # steps 5..10 are in epoch >= 1; step 7 follows the eval at step 6 (its 10 s are the eval's): left out
    assert times == [1.0] * 5


def test_schedule_criteria(K):
    curve = [{"step": s, "ppl": p} for s, p in ((10, 80.0), (20, 50.0), (30, 41.0), (40, 40.0), (50, 39.5))]
    runs = [{"arm": "kd", "seed": 0, "curve": curve}, {"arm": "dskd", "seed": 0, "curve": curve[:3]}]
    out = K.schedule_criteria(runs, start_ppl=100.0, steps=50)
    kd = out["runs"][0]
    assert kd["tail_from_step"] == 40 and kd["tail_gain"] == pytest.approx(0.5 / 40)
    assert kd["fell_enough"] and kd["flattened"] and out["kd_fell_enough"] and out["kd_flattened"]
    slow = K.schedule_criteria(
        [{"arm": "kd", "seed": 0, "curve": [{"step": 40, "ppl": 90.0}, {"step": 50, "ppl": 60.0}]}], 100.0, 50
    )
    assert not slow["kd_fell_enough"] and not slow["kd_flattened"]


def test_plots_write_pngs(K, tmp_path):
    pytest.importorskip("matplotlib")
    curve = lambda f: [{"step": s, "ppl": 100 / (f * s), "ce": math.log(100 / (f * s))} for s in (1, 2, 4)]  # noqa: E731
    runs = [
        {
            "arm": a,
            "seed": s,
            "curve": curve(1 + s + i),
            "metrics": {k: 0.5 + 0.1 * s for k in K.METRICS},
            "step_time_s": {"median": 1.0 + s},
            "max_rss_mb": 900.0 + i,
        }
        for i, a in enumerate(K.ARMS)
        for s in range(2)
    ]
    table, comparisons = K.aggregate(runs, list(K.ARMS), [0, 1])
    assert set(comparisons) == {"dskd-kd", "dskd-kd_hidden"}
    assert comparisons["dskd-kd"]["ppl"]["diffs"] == [0.0, 0.0]
    K.plot_curves(runs, list(K.ARMS), 200.0, 30.0, tmp_path / "c.png", "t")
    K.plot_bars(table, list(K.ARMS), {"teacher": {"ppl": 0.4}}, tmp_path / "b.png", "t")
    assert (tmp_path / "c.png").stat().st_size > 1000 and (tmp_path / "b.png").stat().st_size > 1000


def test_arms_share_every_flag_but_their_own(K, tmp_path):
    files = {"train": "train.jsonl", "dev": "dev.jsonl"}
    cmds = {
        a: K.distill_command(a, 1, "0-9,20-29", K.QUICK, 20, 4, files, tmp_path / "s", tmp_path / "run")
        for a in K.ALL_ARMS
    }
    shared = set(cmds["dskd"])
    assert "--lambda-sense" not in shared and "--cache" in shared and "0-9,20-29" in shared
    assert [x for x in cmds["kd"] if x not in shared] == ["--lambda-sense", "0.0"]
    assert [x for x in cmds["kd_hidden"] if x not in shared] == ["--lambda-sense", "0.0", "--lambda-hidden", "1.0"]
    assert [x for x in cmds["dskd_own_negative"] if x not in shared] == ["--own-senses-negative"]
    assert K.comparisons_for(["kd", "kd_hidden", "dskd"]) == [("dskd", "kd"), ("dskd", "kd_hidden")]
    assert K.comparisons_for(["kd", "dskd", "dskd_kappa1"]) == [
        ("dskd", "kd"),
        ("dskd_kappa1", "dskd"),
        ("dskd_kappa1", "kd"),
    ]


def test_training_windows_check(K, tmp_path):
    from distill.data import Windows

    rng = np.random.default_rng(0)
    train = rng.integers(0, 50_000, (6, 33)).astype(np.int32)
    for name in ("a", "b"):
        (tmp_path / name / "data").mkdir(parents=True)
        np.savez(tmp_path / name / "data" / "train.npz", ids=train, lengths=np.full(6, 33, np.int32))
    runs = [tmp_path / "a", tmp_path / "b"]
    clean = Windows(rng.integers(0, 50_000, (4, 33)).astype(np.int32), np.full(4, 33, np.int32))
    out = K.training_windows_check(runs, {"dev": clean})
    assert out["passed"] and out["identical_across_runs"] and out["dev_share_in_train"] == 0.0
    leaked = Windows(np.concatenate([clean.ids, train[:1]]), np.full(5, 33, np.int32))
    with pytest.raises(K.LeakError, match="dev"):
        K.training_windows_check(runs, {"dev": leaked})
    np.savez(tmp_path / "b" / "data" / "train.npz", ids=train[::-1].copy(), lengths=np.full(6, 33, np.int32))
    with pytest.raises(K.LeakError, match="different window sets"):
        K.training_windows_check(runs, {"dev": clean})
