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

from distill.cli import main as distill_main  # noqa: E402
from distill.compare import load_experiment, run_experiment  # noqa: E402
from distill.compare.stats import flattening, paired_t, verdict, window_bootstrap  # noqa: E402
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


def test_the_quick_path_runs_resumes_and_reports(experiment, teacher, capsys):
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
    assert setup["test_articles_with_windows"] == 5 and setup["store_overlap"]["training_sequences_in_store_text"] >= 0
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
    code, _, err = run_cli(capsys, "compare", "--config", str(experiment), "--plan", entry=distill_main)
    assert code == 0 and err.count("done") == 7 and err.count("todo") == 3 and "measured" in err


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
    ],
)
def test_bad_experiment_files_are_one_line_errors(experiment, capsys, edit, needle):
    experiment.write_text(experiment.read_text().replace(*edit, 1))
    with pytest.raises(InputError, match=needle):
        load_experiment(experiment)
    code, _, err = run_cli(capsys, "compare", "--config", str(experiment), entry=distill_main)
    assert code != 0 and len(err.strip().splitlines()) == 1 and "error:" in err


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
    assert verdict(paired_t([1.0], [2.0]), True).startswith("n/a")
    exact = paired_t([0.5, 0.5, 0.5], [0.25, 0.25, 0.25])  # a coarse metric: the same gain in every seed
    assert (
        exact["t_ci95"] is None and verdict(exact, True) == "better (the same difference in all 3 seeds: no interval)"
    )
    assert verdict(exact, False).startswith("worse")
    assert verdict(paired_t([1.0, 1.0], [1.0, 1.0]), True) == "no difference (the same in all 2 seeds)"
    still = [{"step": 0, "ce": 5.0}, {"step": 80, "ce": 4.0}, {"step": 100, "ce": 3.0}]
    flat = [{"step": 0, "ce": 5.0}, {"step": 80, "ce": 3.0}, {"step": 100, "ce": 2.99}]
    assert flattening(still, 100, 0.2, 0.02)["flattened"] is False
    assert flattening(flat, 100, 0.2, 0.02)["flattened"] is True
