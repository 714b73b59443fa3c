"""`sensekit distill compare` (distill/compare): the real path end to end on a tiny Llama from config (split,
held-out lemmas, stores of two sizes, equal-budget dev grid, test runs over seeds, report, figure), its
resumability (a second call runs nothing), --plan, and the one-line errors of bad experiment files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import ANT, SYN, TEXTS, run_cli

torch = pytest.importorskip("torch")

from sensekit.distill.compare import load_experiment, run_experiment  # noqa: E402
from sensekit.distill.compare.data import (  # noqa: E402
    LeakError,
    article_windows,
    leak_check,
    packed_articles,
    spread,
    window_leak_check,
    write_splits,
)
from sensekit.distill.compare.stats import (  # noqa: E402
    flattening,
    holm,
    paired_t,
    paired_window_bootstrap,
    paired_window_bootstrap_mean,
    verdict,
    window_bootstrap,
)
from sensekit.errors import InputError  # noqa: E402


def _corpus(path: Path, articles: int = 36) -> Path:
    """Articles of random word sequences over the test vocabulary: no two share a 13-gram."""
    rng = np.random.default_rng(0)
    vocab = sorted({w for t in TEXTS for w in t.replace(",", "").split()})
    rows = []
    for i in range(articles):
        text = " ".join(" ".join(rng.choice(vocab, 12)) + "." for _ in range(10))
        rows.append(json.dumps({"id": f"Article {i}", "text": text}))
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _pairs(path: Path) -> Path:
    path.write_text("".join(f"{a}\t{b}\t{k}\n" for pairs, k in ((SYN, "syn"), (ANT, "ant")) for a, b in pairs))
    return path


TOML = """
[experiment]
teacher = "{teacher}"
corpus = "{corpus}"
work_dir = "{work}"
results = "{results}"
dev_articles = 4
test_articles = 5
min_test_articles = 5
store_sizes = [300, 900]
relations = ["pairs:{pairs}"]
heldout_lemma_share = 0.25
build = {{ seq_len = 32, batch_size = 8, checkpoint_every = 0 }}
student_layers = "0-2"
train_layers = "top1"
train_windows = 16
dev_windows = 8
test_windows_per_article = 2
seeds = [0, 1]
eval_points = 2
bootstrap = 200
probes = false

[distill]
seq_len = 24
batch_size = 4
epochs = 1.0
warmup_frac = 0.25
sample_floor = 4
kappa = 3
neighbors = 3

[arms.kd]
fixed = {{ lambda_sense = 0.0 }}
grid = {{ lr = [1e-3, 3e-3] }}

[arms.dskd]
stores = "all"
grid = {{ kappa = [1, 5], margin = ["auto"] , lr = [3e-3]}}

[quick]
seeds = [0]
"""


@pytest.fixture
def experiment(tmp_path, teacher_dir):
    text = TOML.format(
        teacher=teacher_dir,
        corpus=_corpus(tmp_path / "corpus.jsonl"),
        work=tmp_path / "work",
        results=tmp_path / "out" / "compare.json",
        pairs=_pairs(tmp_path / "pairs.tsv"),
    )
    path = tmp_path / "experiment.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_quick_path_runs_resumes_and_reports(experiment, teacher, capsys, monkeypatch):
    exp = load_experiment(experiment, quick=True)
    assert exp.seeds == [0] and exp.budget() == {"kd": 2, "dskd": 2}  # equal tuning budget
    report = run_experiment(exp, teacher=teacher)
    assert report["ran"] == {"tuning_runs": 4, "test_runs": 3, "new_runs_this_call": 7} and not report["not_run"]
    assert set(report["chosen"]) == {"kd", "dskd"} and len(report["dev_grid"]) == 4
    assert set(report["gap_by_size"]) == {"dskd"} and [p["store_size"] for p in report["gap_by_size"]["dskd"]] == [
        300,
        900,
    ]
    setup = report["setup"]
    assert setup["leak_check"]["passed"] and setup["leak_check"]["training_windows"]["passed"]
    assert setup["test_articles_with_windows"] == 5 and setup["store_overlap"]["training_sequences_in_store_text"] == 0
    assert all(g["margins"]["beta_n"] is not None for g in report["dev_grid"] if g["arm"] == "dskd")
    run = report["runs"][0]["metrics"]
    assert run["ppl_ci95"][0] <= run["ppl"] <= run["ppl_ci95"][1] and run["windows"] == setup["test_windows"]
    assert Path(exp.results).is_file() and Path(exp.results).with_name("compare-gap.png").is_file()
    tables = Path(exp.results).with_suffix(".md").read_text(encoding="utf-8")  # the same numbers, as Markdown
    assert tables.count(" * |") == 2 and f"{report['dev_grid'][0]['dev_ce']:.3f}" in tables  # 2 arms chosen
    for block in tables.split("\n\n"):  # every row of a table has its header's columns: no cell splits one
        rows = [line.replace("\\|", "") for line in block.splitlines() if line.startswith("|")]
        assert len({row.count("|") for row in rows}) <= 1, block
    for row in report["comparisons"].values():
        assert f"{row['ppl']['mean']:+.3f}" in tables
    # resumable: the same call again trains nothing; a new seed adds only its runs (here: none, max_runs 0)
    again = run_experiment(exp, teacher=teacher)
    assert again["ran"]["new_runs_this_call"] == 0 and again["table"] == report["table"]
    full = load_experiment(experiment)
    partial = run_experiment(full, teacher=teacher, max_runs=0)
    assert partial["ran"]["new_runs_this_call"] == 0 and len(partial["not_run"]) == 3  # seed 1: kd, dskd x 2 sizes
    # --plan lists done and pending runs and an estimate from the measured step time
    code, _, err = run_cli(capsys, "distill", "compare", "--config", str(experiment), "--plan")
    assert code == 0 and err.count("done") == 7 and err.count("todo") == 3 and "measured" in err
    # a run another process finishes while this call reports is either in its runs or in not_run, never lost
    from sensekit.distill.compare.runner import Runner

    real_finished, reads, late = Runner.finished, {}, []

    def finishing_late(self, spec):
        if spec.phase == "test" and late in ([], [spec.label]):
            late[:] = [spec.label]
            reads[spec.label] = reads.get(spec.label, 0) + 1
            if reads[spec.label] <= 2:  # unfinished for its first two reads, finished from the third
                return None
        return real_finished(self, spec)

    monkeypatch.setattr(Runner, "finished", finishing_late)
    racing = run_experiment(exp, teacher=teacher, max_runs=0)
    assert racing["ran"]["test_runs"] + len(racing["not_run"]) == 3 and racing["not_run"] == late


def test_two_seeds_give_both_intervals_the_controls_holm_probes_and_gradient_shares(experiment, teacher):
    text = (
        experiment.read_text()
        .replace(
            "probes = false",
            'probes = true\ncontrols = ["hidden"]\nwic_limit = 20\npair_limit = 3\n'
            "simlex_limit = 0\nnearest_sense_positions = 64",  # 0: every SimLex pair
        )
        .replace("neighbors = 3", "neighbors = 3\ngrad_norm_every = 1")
        .replace("grid = { lr = [1e-3, 3e-3] }", "grid = { lr = [3e-3] }")
        .replace(
            'grid = { kappa = [1, 5], margin = ["auto"] , lr = [3e-3]}', 'grid = { margin = ["auto"] , lr = [3e-3]}'
        )
        + "\n[arms.hidden]\nfixed = { lambda_sense = 0.0, lr = 3e-3 }\ngrid = { lambda_hidden = [1.0] }\n"
    )
    experiment.write_text(text)
    exp = load_experiment(experiment)
    report = run_experiment(exp, teacher=teacher)
    assert report["ran"]["test_runs"] == 8 and not report["not_run"] and report["run_lengths"] == [4]
    comps = report["comparisons"]
    assert sorted(comps) == [
        "dskd@300 - hidden@900",
        "dskd@300 - kd",
        "dskd@900 - hidden@900",
        "dskd@900 - kd",
        "hidden@900 - kd",
    ]
    for name, c in comps.items():
        ppl = c["ppl"]
        assert ppl["n"] == 2 and set(ppl["window_bootstrap_ci95_by_seed"]) == {"0", "1"}
        lo, hi = ppl["window_bootstrap_mean"]["ci95"]
        assert lo <= ppl["window_bootstrap_mean"]["mean"] <= hi and ppl["mean"] == pytest.approx(
            ppl["window_bootstrap_mean"]["mean"]
        )
        assert ("p_holm" in ppl) == name.startswith("dskd")  # the family: the treatment's comparisons
    family = report["multiple_comparisons"]
    assert family["tests"] == 4 and "Holm" in family["method"]
    holm_ps = sorted(v["p_holm"] for v in family["adjusted"].values() if v["p_holm"] is not None)
    raw_ps = sorted(c["ppl"]["p_value"] for n, c in comps.items() if n.startswith("dskd") and c["ppl"]["p_value"])
    assert all(h >= p for h, p in zip(holm_ps, raw_ps))
    shares = report["grad_share"]
    assert set(shares) == {"kd", "dskd", "hidden"}
    for arm, share in shares.items():
        assert sum(share["mean"].values()) == pytest.approx(1.0) and share["runs"] == (4 if arm == "dskd" else 2)
    assert shares["kd"]["mean"].get("hidden", 0) == 0 and shares["hidden"]["mean"]["hidden"] > 0
    ref = report["reference"]["probes"]
    assert ref["teacher"]["simlex_spearman"] is not None and ref["teacher"]["nearest_sense_agreement"] == 1.0
    for run in report["runs"]:
        m = run["metrics"]
        assert m["simlex_spearman"] is not None and 0 <= m["nearest_sense_retrieval"] <= 1
    tables = Path(exp.results).with_suffix(".md").read_text(encoding="utf-8")
    assert "**Probes of the references**" in tables and "**Gradient shares**" in tables
    assert "KD + hidden" not in tables and "dskd @ 300 - hidden @ 900" in tables


@pytest.mark.parametrize(
    "edit, needle",
    [
        (("[experiment]", "[experiment]\ncolour = 1"), "unknown key 'colour' in \\[experiment\\]"),
        (("[arms.kd]", "[arms.kd]\nfixd = {}"), "unknown key 'fixd' in \\[arms.kd\\]"),
        (
            ("grid = { lr = [1e-3, 3e-3] }", "grid = { lr = [1e-3, 3e-3], kapa = [1] }"),
            "unknown key 'kapa' in arms.kd.grid",
        ),
        (('stores = "all"', 'stores = "none"'), "arms.dskd.stores must be 'all', 'largest' or a list"),
        (('stores = "all"', "stores = []"), "arm dskd has no store"),
        (('stores = "all"', "stores = [500]"), "arm dskd has no store of 500 tokens"),
        (("store_sizes = [300, 900]", "store_sizes = []"), "store_sizes must list store sizes"),
        (("test_articles = 5", "test_articles = 3"), "test_articles 3 is below min_test_articles 5"),
        (("probes = false", 'probes = false\ncontrols = ["nope"]'), "controls names arm 'nope', which has no"),
    ],
)
def test_bad_experiment_files_are_one_line_errors(experiment, capsys, edit, needle):
    experiment.write_text(experiment.read_text().replace(*edit, 1))
    with pytest.raises(InputError, match=needle):
        load_experiment(experiment)
    code, _, err = run_cli(capsys, "distill", "compare", "--config", str(experiment))
    assert code != 0 and len(err.strip().splitlines()) == 1 and "error:" in err


def test_a_run_another_process_holds_is_skipped_and_shown_running(experiment, teacher, capsys):
    from sensekit.distill.compare.runner import Runner, claim

    exp = load_experiment(experiment, quick=True)
    first, second = exp.tuning_runs()[:2]
    runner = Runner(exp, teacher=teacher)
    with claim(runner.run_dir(first)) as mine:  # a second open file: the lock conflicts as another process's would
        assert mine
        report = run_experiment(exp, teacher=teacher, max_runs=1)
        code, _, err = run_cli(capsys, "distill", "compare", "--config", str(experiment), "--quick", "--plan")
    assert report["ran"]["new_runs_this_call"] == 1 and first.label in report["not_run"]
    assert runner.finished(second) is not None and runner.finished(first) is None
    assert code == 0 and err.count("running") == 1 and err.count("done") == 1
    with claim(runner.run_dir(first)) as mine:  # released with its holder: the next call may resume it
        assert mine


def test_a_test_split_with_no_windows_is_one_line(experiment, teacher):
    text = (
        experiment.read_text()
        .replace("seq_len = 24", "seq_len = 1000")
        .replace("train_windows = 16", "train_windows = 1")
    )
    experiment.write_text(text)
    with pytest.raises(InputError, match="has no windows of 1000 tokens"):
        run_experiment(load_experiment(experiment, quick=True), teacher=teacher, max_runs=0)


def test_statistics():
    b = window_bootstrap(np.array([2.0, 4.0, 3.0]), np.array([1, 2, 1]), 500)
    assert b["ce"] == pytest.approx(9 / 4) and b["ppl_ci95"][0] <= b["ppl"] <= b["ppl_ci95"][1]
    p = paired_t([3.0, 4.0, 5.0], [1.0, 1.5, 2.5])
    assert p["n"] == 3 and p["t_ci95"][0] > 0 and verdict(p, higher_is_better=False) == "worse"
    assert verdict(p, higher_is_better=True) == "better"
    assert verdict(paired_t([1.0, 2.0, 3.0], [1.5, 1.5, 2.5]), True) == "no detectable difference"


def test_paired_t_matches_a_value_worked_by_hand():
    # diffs 2, 2.5, 2.5: mean 7/3, sd sqrt(1/12); t = mean / (sd / sqrt 3) = 14 on 2 degrees of freedom.
    # t(0.975, 2) = 4.302653 (the tables); with 2 df the two-sided p is 1 - t / sqrt(t^2 + 2) exactly.
    p = paired_t([3.0, 4.0, 5.0], [1.0, 1.5, 2.5])
    half = 4.302653 * (1 / 12) ** 0.5 / 3**0.5
    assert p["mean"] == pytest.approx(7 / 3) and p["sd"] == pytest.approx((1 / 12) ** 0.5)
    assert p["t_ci95"] == pytest.approx([7 / 3 - half, 7 / 3 + half], abs=1e-5)
    assert p["p_value"] == pytest.approx(1 - 14 / (14**2 + 2) ** 0.5, rel=1e-6)


def test_no_interval_no_verdict():
    exact = paired_t([0.5, 0.5, 0.5], [0.25, 0.25, 0.25])  # the same gain in every seed: no spread, no interval
    assert exact["t_ci95"] is None
    for higher in (True, False):
        assert verdict(exact, higher) == "no verdict (the same difference in all 3 seeds: no interval)"
    assert verdict(paired_t([1.0], [2.0]), True).startswith("no verdict (1 paired seed")
    assert verdict(paired_t([1.0, 1.0], [1.0, 1.0]), True).startswith("no verdict")


def test_paired_window_bootstrap_pairs_the_windows():
    tokens = np.full(4, 10.0)
    b = np.array([10.0, 30.0, 20.0, 40.0])  # per-window CE 1, 3, 2, 4: a large spread between windows
    a = b + 5.0  # every window 0.5 nats worse: ppl(a) - ppl(b) = exp(ce_b) (e^0.5 - 1) > 0 on every resample
    lo, hi = paired_window_bootstrap(a, b, tokens, 2000, seed=1)
    assert np.exp(1) * (np.exp(0.5) - 1) - 1e-9 <= lo < hi <= np.exp(4) * (np.exp(0.5) - 1) + 1e-9
    assert paired_window_bootstrap(b, b, tokens, 500) == [0.0, 0.0]
    lo2, hi2 = paired_window_bootstrap(b, a, tokens, 2000, seed=1)  # the other order: the mirror interval
    assert (lo2, hi2) == pytest.approx((-hi, -lo))
    m = paired_window_bootstrap_mean([a, b], [b, b], tokens, 2000, seed=1)  # seeds +d and 0: half of d
    point = (np.exp(3.0) - np.exp(2.5)) / 2
    assert m["seeds"] == 2 and m["mean"] == pytest.approx(point) and 0 < m["ci95"][0] < point < m["ci95"][1]


def test_holm_adjusts_step_down():
    out = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": None}, alpha=0.05)
    # sorted 0.01, 0.03, 0.04 -> x3, x2, x1 = 0.03, 0.06, 0.04 -> monotone: 0.03, 0.06, 0.06
    assert [out[k]["p_holm"] for k in "acb"] == pytest.approx([0.03, 0.06, 0.06])
    assert [out[k]["rejected"] for k in "acbd"] == [True, False, False, False] and out["d"]["p_holm"] is None


@pytest.mark.parametrize(
    "ces, status",
    [
        ([5.0, 4.0, 3.5, 3.0, 2.0], "still falling"),
        ([5.0, 3.0, 3.0, 3.0, 2.99], "flattened"),
        ([5.0, 3.0, 2.9, 3.0, 3.3], "still moving (rising)"),  # over-fitting: not a flat curve
        ([5.0, 3.0, 3.0, 3.0, 3.001], "still moving (rising)"),  # a rise of 0.05% of the first gain is a rise
    ],
)
def test_flattening_calls_a_rising_curve_moving(ces, status):
    curve = [{"step": s, "ce": c} for s, c in zip((0, 25, 50, 80, 100), ces)]
    f = flattening(curve, 100, 0.2, 0.02)
    assert f["status"] == status and f["flattened"] is (status == "flattened")
    assert f["tail_from_step"] == 80 and f["tail_fraction"] == pytest.approx(0.2)


def _split(tmp_path: Path, parts: dict[str, list[tuple[str, str]]]) -> dict:
    """A split manifest like write_splits' for the given {part: [(title, text)]}."""
    import hashlib

    files, titles, hashes = {}, {}, {}
    for name, rows in parts.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"id": t, "text": x}) + "\n" for t, x in rows), encoding="utf-8")
        files[name], titles[name] = str(path), [t for t, _ in rows]
        hashes[name] = [hashlib.sha256(x.encode()).hexdigest() for _, x in rows]
    return {"files": files, "titles": titles, "text_sha256": hashes}


def _words(seed: int, n: int = 200) -> str:
    rng = np.random.default_rng(seed)
    return " ".join(f"w{int(x)}" for x in rng.integers(0, 10_000, n))


def test_the_leak_check_fails_on_a_planted_leak(tmp_path):
    clean = {
        "train_windows": [("T1", _words(1))],
        "store": [("S1", _words(2)), ("S2", _words(3))],
        "dev": [("D1", _words(4))],
        "test": [("X1", _words(5)), ("X2", _words(6))],
    }
    assert leak_check(_split(tmp_path, clean), {900: ["S1", "S2"]})["passed"] is True
    copied = {**clean, "test": [("X1", _words(5)), ("X2 (copy)", _words(2)[:-3] + " zz")]}  # a store text
    with pytest.raises(LeakError, match="shares 9[0-9]% of its 13-grams"):
        leak_check(_split(tmp_path, copied), {900: ["S1", "S2"]})
    same_title = {**clean, "dev": [("S2", _words(7))]}
    with pytest.raises(LeakError, match="titles shared"):
        leak_check(_split(tmp_path, same_title), {900: ["S1", "S2"]})
    with pytest.raises(LeakError, match="contexts from non-store articles: \\['X1'\\]"):
        leak_check(_split(tmp_path, clean), {900: ["S1", "X1"]})


def test_the_window_check_fails_when_test_windows_are_trained_on(teacher, tmp_path):
    from sensekit.distill.data import iter_documents, pack_documents

    split = _split(tmp_path, {"train": [("T", _words(1, 400))], "test": [("X", _words(5, 400))]})
    w = {k: pack_documents(iter_documents([split["files"][k]]), teacher.tokenizer, 24) for k in ("train", "test")}
    out = window_leak_check(w["train"], {"test": w["test"]})
    assert out["passed"] is True and out["test_share_in_train"] == 0.0
    with pytest.raises(LeakError, match="of the test windows' 16-token sequences are in the training windows"):
        window_leak_check(w["test"], {"test": w["test"]})


def test_test_windows_spread_over_each_article(teacher, tmp_path):
    from sensekit.distill.data import iter_documents, pack_documents

    assert spread(10, 4).tolist() == [0, 3, 6, 9] and spread(3, 5).tolist() == [0, 1, 2]
    split = _split(tmp_path, {"test": [("A", _words(1, 300)), ("B", _words(2, 300))]})
    windows, owner, titles = article_windows(split["files"]["test"], teacher.tokenizer, 24, 3)
    whole = pack_documents(iter_documents([split["files"]["test"]]), teacher.tokenizer, 24)  # A then B, packed
    a_all = article_windows(split["files"]["test"], teacher.tokenizer, 24, 10_000)
    n_a = int((a_all[1] == 0).sum())
    assert titles == ["A", "B"] and owner.tolist() == [0, 0, 0, 1, 1, 1] and n_a > 6
    assert (windows.ids[0] == whole.ids[0]).all()  # A's opening ...
    assert (windows.ids[2] == a_all[0].ids[n_a - 1]).all()  # ... and A's last window, not only openings
    assert not (windows.ids[1] == a_all[0].ids[1]).all()


def test_packed_articles_counts_the_articles_read(teacher, tmp_path):
    from sensekit.distill.data import special_prefix

    tok = teacher.tokenizer
    body = 24 - len(special_prefix(tok))
    texts = [_words(i, 5 + i % 7) for i in range(60)]
    ends = np.cumsum([len(tok(t, add_special_tokens=False)["input_ids"]) + 1 for t in texts])  # + EOS each
    split = _split(tmp_path, {"dev": [(f"D{i}", t) for i, t in enumerate(texts)]})
    # window i reads stream positions i*body .. (i+1)*body: n windows read up to position n*body
    edge = next(j for j, e in enumerate(ends) if e % body == 0)  # a window ends where article `edge` ends
    n = int(ends[edge]) // body  # position n*body is the first token of article edge + 1
    assert packed_articles(split["files"]["dev"], tok, 24, n) == edge + 2
    for n in (1, 2, 5):
        expect = int(np.searchsorted(ends, n * body, side="right")) + 1
        assert packed_articles(split["files"]["dev"], tok, 24, n) == expect
    assert packed_articles(split["files"]["dev"], tok, 24, 10_000) == 60


def test_the_split_caps_training_articles_and_slices_dev(tmp_path):
    from sensekit.distill.compare.config import Experiment

    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"A{i}", "text": _words(i, 300)}) + "\n" for i in range(40)))
    exp = Experiment(
        corpus=str(corpus),
        test_articles=5,
        min_test_articles=5,
        dev_articles=4,
        train_article_chars=300,
        dev_article_chars=200,
    )
    m = write_splits(exp, tmp_path / "data", train_window_chars=3000)
    train = [json.loads(x) for x in Path(m["files"]["train_windows"]).read_text().splitlines()]
    assert len(train) >= 10 and all(len(r["text"]) <= 300 for r in train)  # 3000 characters from 10+ articles
    full = {f"A{i}": _words(i, 300) for i in range(40)}
    assert all(full[r["id"]].startswith(r["text"]) for r in train)  # each article's opening
    dev = [json.loads(x) for x in Path(m["files"]["dev"]).read_text().splitlines()]
    assert all(
        len(r["text"]) <= 200 and r["text"] in full[r["id"]] and not full[r["id"]].startswith(r["text"]) for r in dev
    )
    assert m["articles"]["store"] == 40 - 5 - 4 - len(train)


@pytest.mark.parametrize("name", ["kd_vs_dskd_v3.toml", "kd_vs_dskd_gpu.toml"])
def test_the_experiment_files_give_every_arm_the_same_knobs(name):
    exp = load_experiment(Path(__file__).resolve().parent.parent / "benchmarks" / name)
    assert set(exp.budget().values()) == {3} and len(exp.seeds) >= 3 and len(exp.store_sizes) >= 3
    lrs = {exp.base_config().replace(**s).lr for a in exp.arms for s in a.settings()}
    assert lrs == {1e-3} and all("lr" not in a.grid for a in exp.arms)  # one learning rate, tuned for none
    weights = {a.name: next(iter(a.grid.values())) for a in exp.arms}
    assert all(v == [0.5, 1.0, 2.0] for k, v in weights.items() if k != "kd")
    assert weights["kd"] == [0.35, 0.7, 1.4]  # KD's own weight alpha (0.7) x 0.5, 1, 2
    assert {s["hidden_positions"] for s in exp.arms[2].settings()} == {"sensed"}
    margins = {a.name: {s["beta_n"] for s in a.settings()} for a in exp.arms if a.name.startswith("dskd")}
    assert margins == {"dskd_paper": {"1.0"}, "dskd_auto": {"auto"}}
    assert exp.trial_arms() == ["dskd_paper", "dskd_auto"] and exp.controls == ["hidden", "hidden_sensed"]


def test_gradient_shares_come_from_the_training_records():
    from sensekit.distill.compare.runner import _grad_share

    summary = {"grad_share": {"kd": 0.75, "hidden": 0.25}}
    assert _grad_share(summary, [])["mean"] == {"kd": 0.75, "hidden": 0.25}
    rows = [
        {"step": 10, "grad_norms": {"kd": 3.0, "hidden": 1.0}},
        {"step": 20, "grad_norms": {"kd": 1.0, "hidden": 1.0}},
    ]
    got = _grad_share({}, rows)
    assert (
        got["mean"] == pytest.approx({"kd": (0.75 + 0.5) / 2, "hidden": (0.25 + 0.5) / 2}) and got["steps_logged"] == 2
    )
    assert _grad_share({}, [{"step": 1, "kd": 2.0}]) is None


def test_a_new_distill_setting_with_a_default_keeps_the_run_keys(experiment, monkeypatch):
    from sensekit.distill.compare.config import RunSpec
    from sensekit.distill.config import DistillConfig

    exp = load_experiment(experiment)
    inputs = {"teacher": "t", "train_windows": "w", "dev": "d", "test": "x", "store_300": "s3", "store_900": "s9"}
    spec = RunSpec("kd", 0, {"lambda_sense": 0.0, "lr": 1e-3}, 0, 900, "dev")
    before = spec.key(exp, inputs, {})
    plain = DistillConfig.to_dict
    monkeypatch.setattr(DistillConfig, "to_dict", lambda self: {**plain(self), "a_later_knob": 1})
    assert spec.key(exp, inputs, {}) == before  # every config has it at its default: nothing to rerun
    other = RunSpec("kd", 0, {"lambda_sense": 0.0, "lr": 3e-3}, 0, 900, "dev")
    assert other.key(exp, inputs, {}) != before


def test_a_copied_corpus_keeps_the_signature_and_a_changed_one_does_not(experiment):
    """The stores and runs are keyed on the corpus's content: a copy or re-mount (new mtime) reuses them."""
    import os

    from sensekit.distill.compare.runner import Runner

    exp = load_experiment(experiment)
    before = Runner(exp).signature
    corpus = Path(exp.corpus)
    os.utime(corpus, ns=(1, 1))
    assert Runner(exp).signature == before
    corpus.write_text(corpus.read_text() + json.dumps({"id": "New", "text": "one more article."}) + "\n")
    assert Runner(exp).signature != before
