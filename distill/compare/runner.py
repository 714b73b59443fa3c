"""The runner: prepare the data and the stores, tune every arm on dev with the same budget, run the chosen
settings on test for every seed (and every dictionary size where the arm asks), and write the report.

Every run lives in WORK/runs/ARM-KEY, KEY the hash of its resolved DistillConfig and its inputs' signature;
a finished run (its compare.json) is read back, an interrupted one resumes from its last checkpoint. So an
experiment stopped at any point continues with the same command, and seeds added to the TOML run only the
new runs. Runs go in the order tuning, then seed by seed (every arm and size within a seed), so a partial
experiment still pairs its seeds. Everything runs in this process, with one teacher.

Several processes may run one experiment at once (one per core: start the same command again). A process
holds an advisory lock on each run it trains (WORK/runs/ARM-KEY/claim), and the others skip that run; the
operating system drops the lock when its process ends, so a run whose process died is resumed by the next
call. Every process writes the report from all the runs finished when it stops, so the last one to stop
writes the whole report.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sensekit.errors import InputError
from sensekit.progress import Progress, no_progress

from .config import Experiment, RunSpec

__all__ = ["Runner", "steps_of"]

DEFAULT_STEP_S = 1.5  # a guess for --plan before any run has been timed (SmolLM2-135M, 20 layers, 2 CPU cores)
# The test measurements' version: a finished run measured by another version is measured again from its saved
# student (no retraining), so a probe added later reaches every run.
MEASURE_VERSION = 2


def steps_of(exp: Experiment, setting: dict[str, Any]) -> int:
    cfg = exp.base_config().replace(**setting)
    if cfg.max_steps:
        return cfg.max_steps
    per_epoch = max(1, exp.train_windows // (cfg.batch_size * cfg.grad_accum))
    return max(1, math.ceil(cfg.epochs * per_epoch))


class Runner:
    def __init__(self, exp: Experiment, progress: Progress = no_progress, teacher=None) -> None:
        self.exp, self.emit, self._teacher = exp, progress, teacher
        self.work = Path(exp.work_dir)
        self.inputs: dict[str, str] = self._input_paths()
        self.signature = self._signature()

    # -- where things go --------------------------------------------------------------------------
    def _input_paths(self) -> dict[str, str]:
        d = self.work / "data"
        out = {
            "teacher": self.exp.teacher,
            "train_windows": str(d / "train_windows.jsonl"),
            "dev": str(d / "dev.jsonl"),
            "test": str(d / "test.jsonl"),
        }
        for size in self.exp.store_sizes:
            out[f"store_{size}"] = str(self.work / "stores" / f"store-{size}.sensekit")
        return out

    def _signature(self) -> str:
        """What the inputs depend on: the corpus file, the split rule, the relations and the store settings."""
        from sensekit.builder.corpus import corpus_fingerprint, resolve_paths

        exp = self.exp
        # the content, not the mtime: a copied or re-mounted corpus keeps its stores and runs
        content = corpus_fingerprint(resolve_paths([exp.corpus]), "text") if Path(exp.corpus).exists() else None
        blob = json.dumps(
            [
                exp.corpus,
                content,
                exp.teacher,
                exp.split_seed,
                exp.test_articles,
                exp.dev_articles,
                self._train_chars(),
                exp.relations,
                exp.heldout_lemma_share,
                exp.build,
            ],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def _train_chars(self) -> int:
        if self.exp.train_text_chars:
            return self.exp.train_text_chars
        cfg = self.exp.base_config()
        return int(self.exp.train_windows * cfg.seq_len * 6)  # ~4-5 characters per token, with a margin

    def run_key(self, spec: RunSpec) -> str:
        return spec.key(self.exp, self.inputs, {v: self.signature for v in self.inputs.values()})

    def run_dir(self, spec: RunSpec) -> Path:
        return self.work / "runs" / f"{spec.arm}-{self.run_key(spec)}"

    def finished(self, spec: RunSpec) -> dict[str, Any] | None:
        """The run's record when it is done (a test run: also measured on test). A test run whose setting,
        seed and store equal a tuning run's is that run: it is trained once and measured on test once chosen."""
        path = self.run_dir(spec) / "compare.json"
        record = json.loads(path.read_text()) if path.is_file() else None
        if record is None:
            return None
        if spec.phase == "test" and (record.get("test") or {}).get("measure_version") != MEASURE_VERSION:
            return None
        return record

    # -- the plan -----------------------------------------------------------------------------------
    def test_runs(self, chosen: dict[str, dict[str, Any]]) -> list[RunSpec]:
        """The chosen setting of every arm, every seed; arms with stores = 'all' at every size. Seed-major."""
        out = []
        for seed in self.exp.seeds:
            for arm in self.exp.arms:
                if arm.name not in chosen:
                    continue
                for size in arm.sizes(self.exp.store_sizes):
                    out.append(
                        RunSpec(arm.name, chosen[arm.name]["index"], chosen[arm.name]["setting"], seed, size, "test")
                    )
        return out

    def plan(self) -> dict[str, Any]:
        """The runs, which are done, and a time estimate (seconds per step measured on finished runs)."""
        exp = self.exp
        tuning = exp.tuning_runs()
        chosen = self.choose({s.arm: [] for s in tuning}, partial_ok=False)
        tests = self.test_runs(chosen) if chosen else []
        n_test = len(tests) if chosen else sum(len(exp.seeds) * len(a.sizes(exp.store_sizes)) for a in exp.arms)
        if not chosen and exp.tune_seed in exp.seeds:  # the tuning seed's run at the largest store is a dev run
            n_test -= sum(1 for a in exp.arms if exp.largest in a.sizes(exp.store_sizes))
        rates = [r["seconds_per_step"] for r in (self.finished(s) for s in tuning + tests) if r]
        rate = float(np.median(rates)) if rates else (exp.plan_step_s or DEFAULT_STEP_S)
        over = exp.plan_run_overhead_s
        rows, todo_s = [], 0.0
        for spec in tuning + tests:
            steps = steps_of(exp, spec.setting)
            done = self.finished(spec) is not None
            folder = self.run_dir(spec)
            running = not done and folder.is_dir() and held_elsewhere(folder)
            todo_s += 0 if done else steps * rate * 1.25 + over  # + start-up, dev evaluations and test metrics
            rows.append({"run": spec.label, "steps": steps, "done": done, "running": running, "dir": str(folder)})
        if not chosen:
            steps = steps_of(exp, {})
            todo_s += n_test * (steps * rate * 1.25 + over)
            rows.append(
                {
                    "run": f"test: the dev-chosen setting of each arm x {len(exp.seeds)} seeds "
                    f"(x {len(exp.store_sizes)} stores where an arm runs at every size): {n_test} runs",
                    "steps": steps,
                    "done": False,
                    "dir": "after tuning",
                }
            )
        builds = [s for s in exp.store_sizes if not Path(self.inputs[f"store_{s}"]).is_dir()]
        todo_s += sum(s / exp.plan_build_tokens_s for s in builds)  # default: ~250 tokens/s on 2 CPU cores
        return {
            "tuning_budget": exp.budget(),
            "runs": rows,
            "stores_to_build": builds,
            "seconds_per_step": rate,
            "rate_measured": bool(rates),
            "estimate_s": round(todo_s),
        }

    # -- doing it -----------------------------------------------------------------------------------
    @property
    def teacher(self):
        if self._teacher is None:
            from sensekit.model.teacher import load_teacher

            self.emit("status", message=f"loading teacher {self.exp.teacher}")
            self._teacher = load_teacher(self.exp.teacher, device=self.exp.device, dtype="float32")
        return self._teacher

    def prepare(self) -> dict[str, Any]:
        """Splits, held-out relation lemmas, the stores (built once), leak checks and the evaluation windows."""
        from .data import article_windows, holdout_relations, leak_check, store_overlap, window_leak_check, write_splits

        exp, teacher = self.exp, self.teacher
        cfg = exp.base_config()
        self.emit("status", message="splitting the corpus by article")
        splits = write_splits(exp, self.work / "data", self._train_chars())
        test, owner, titles = article_windows(
            self.inputs["test"], teacher.tokenizer, cfg.seq_len, exp.test_windows_per_article
        )  # first: a test split with no windows fails before any store is built
        if len(titles) < exp.min_test_articles:
            raise InputError(
                f"the test split has windows from {len(titles)} articles, fewer than min_test_articles "
                f"{exp.min_test_articles}; lower seq_len or give more articles"
            )
        self.emit("status", message="holding out relation lemmas")
        relations = holdout_relations(exp.relations, exp.heldout_lemma_share, exp.split_seed, self.work / "relations")
        stores = {size: self._build(size, splits, relations) for size in sorted(exp.store_sizes)}
        leaks = leak_check(splits, {s: st.pop("context_doc_ids") for s, st in stores.items()})
        from ..data import iter_documents, pack_documents

        train = pack_documents(
            iter_documents([self.inputs["train_windows"]]), teacher.tokenizer, cfg.seq_len, exp.train_windows
        )
        if len(train) < exp.train_windows:
            raise InputError(
                f"the training articles give {len(train)} windows, fewer than train_windows {exp.train_windows}"
            )
        dev = pack_documents(iter_documents([self.inputs["dev"]]), teacher.tokenizer, cfg.seq_len, exp.dev_windows)
        store_text = pack_documents(  # the text the largest store read (its first max_tokens tokens)
            iter_documents([splits["files"]["store"]]),
            teacher.tokenizer,
            cfg.seq_len,
            exp.largest // (cfg.seq_len - 1) + 1,
        )
        leaks["training_windows"] = window_leak_check(train, {"dev": dev, "test": test})
        from .data import packed_articles

        tok = teacher.tokenizer
        per_article = np.bincount(owner)
        self.windows = {"train": train, "dev": dev, "test": test, "test_article": owner}
        self.relations = relations
        return {
            "splits": {k: splits[k] for k in ("rule", "articles", "characters", "files")},
            "test_articles_with_windows": len(titles),
            "test_windows": len(test),
            "test_tokens": int(test.n_targets),
            "test_windows_per_article": {"min": int(per_article.min()), "max": int(per_article.max())},
            "test_windows_spread": "evenly over each article, from its opening to its end",
            "dev_windows": len(dev),
            "dev_articles_with_windows": packed_articles(self.inputs["dev"], tok, cfg.seq_len, len(dev)),
            "train_windows": len(train),
            "train_tokens": int(train.n_targets),
            "train_articles_with_windows": packed_articles(self.inputs["train_windows"], tok, cfg.seq_len, len(train)),
            "store_articles": {
                str(k): v for k, v in leaks.get("store_context_docs", {}).items()
            },  # articles with contexts in each store
            "relations": relations,
            "stores": {str(k): v for k, v in stores.items()},
            "leak_check": leaks,
            "store_overlap": store_overlap(train, store_text),
        }

    def _build(self, size: int, splits: dict[str, Any], relations: dict[str, Any]) -> dict[str, Any]:
        from sensekit.builder.config import BuildConfig
        from sensekit.builder.pipeline import build
        from sensekit.store import open_store

        path = Path(self.inputs[f"store_{size}"])
        stamp = path.parent / f"{path.name}.json"
        settings = {
            "corpus": [splits["files"]["store"]],
            "max_tokens": size,
            "relations": [f"heldin=pairs:{relations['store_pairs']}"],
            "signature": self.signature,
            **self.exp.build,
        }
        if not (path.is_dir() and stamp.is_file() and json.loads(stamp.read_text()).get("settings") == settings):
            self.emit("status", message=f"building the {size}-token store")
            t0 = time.perf_counter()
            cfg = BuildConfig(
                corpus=(splits["files"]["store"],),
                store=str(path),
                teacher=self.exp.teacher,
                max_tokens=size,
                relations=(f"heldin=pairs:{relations['store_pairs']}",),
                seed=0,
                **self.exp.build,
            )
            build(cfg, teacher=self.teacher)
            stamp.write_text(json.dumps({"settings": settings, "seconds": round(time.perf_counter() - t0, 1)}))
        with open_store(path) as s:
            meta = dict(s.meta)
        facts = {"path": str(path), "tokens_processed": meta.get("tokens_processed"), **_store_counts(path)}
        facts["build_seconds"] = json.loads(stamp.read_text()).get("seconds")
        return facts

    def run(self, spec: RunSpec) -> dict[str, Any]:
        """Train one run (or read it back); dev curve for every run, test metrics for test runs."""
        from ..train import train

        done = self.finished(spec)
        if done is not None:
            return {**done, "phase": spec.phase}
        folder = self.run_dir(spec)
        trained = folder / "compare.json"
        if trained.is_file():  # trained as a tuning run (now chosen), or measured by an older version: measure
            record = json.loads(trained.read_text())
            record["test"] = self._measure(folder / "distill" / "student", self.inputs[f"store_{spec.store_size}"])
            trained.write_text(json.dumps(record, indent=1))
            return {**record, "phase": spec.phase}
        out = folder / "distill"
        cfg = spec.config(self.exp, self.inputs, out)
        steps = steps_of(self.exp, spec.setting)
        cfg = cfg.replace(
            max_steps=steps,
            eval_every=max(1, steps // max(1, self.exp.eval_points)),
            eval_batches=max(1, self.exp.dev_windows // cfg.batch_size),
            save_every=cfg.save_every,  # 0: only at the end (set it in [distill] to resume long runs mid-way)
        )
        resume = (out / "checkpoints").is_dir() and any((out / "checkpoints").iterdir())
        if cfg.cache:
            shared = self.work / "prefix-cache"
            shared.mkdir(parents=True, exist_ok=True)
            out.mkdir(parents=True, exist_ok=True)
            if not (out / "cache").exists():
                (out / "cache").symlink_to(shared.resolve(), target_is_directory=True)
        self.emit("run", message=f"{spec.label}: {steps} steps{' (resuming)' if resume else ''}")
        t0 = time.perf_counter()
        summary = train(cfg, teacher=self.teacher, resume=resume)
        wall = time.perf_counter() - t0
        evals = [json.loads(x) for x in (out / "eval.jsonl").read_text().splitlines() if x.strip()]
        rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]
        run_json = json.loads((out / "run.json").read_text())
        record: dict[str, Any] = {
            "arm": spec.arm,
            "index": spec.index,
            "setting": spec.setting,
            "seed": spec.seed,
            "store_size": spec.store_size,
            "phase": spec.phase,
            "key": self.run_key(spec),
            "steps": summary["steps"],
            "wall_s": round(wall, 1),
            "seconds_per_step": (summary["elapsed_s"] / max(1, summary["steps"])),
            "curve": [{"step": 0, "ce": self.start_dev_ce()}]
            + [{"step": e["step"], "ce": e["ce"], "ppl": e["ppl"]} for e in evals],
            "dev_ce": evals[-1]["ce"] if evals else None,
            "dev_ppl": evals[-1]["ppl"] if evals else None,
            "margins": run_json.get("margins"),
            "push_active_steps": sum(1 for r in rows if r.get("sense_neg", 0) > 0),
            "steps_with_antonyms": sum(1 for r in rows if r.get("sense_negatives", 0) > 0),
            "last_terms": {k: v for k, v in rows[-1].items() if isinstance(v, (int, float))} if rows else {},
            "grad_share": _grad_share(summary, rows),
            "config": cfg.to_dict(),
        }
        if spec.phase == "test":
            record["test"] = self._measure(out / "student", self.inputs[f"store_{spec.store_size}"])
        (folder / "compare.json").write_text(json.dumps(record, indent=1))
        return record

    def _measure(self, student_dir: Path, store: str) -> dict[str, Any]:
        from .measure import load_student, score_windows

        cfg = self.exp.base_config()
        model = load_student(student_dir, self.teacher)
        scored = score_windows(model, self.teacher, self.windows["test"], cfg.batch_size, cfg.tau)
        if self.exp.probes:
            scored["probes"] = self._probes(model)
        scored["measure_version"] = MEASURE_VERSION
        return scored

    def _probes(self, model) -> dict[str, Any]:
        """The lexical probes of `model` (None: the teacher alone). Nearest sense: against the LARGEST store for
        every run, one yardstick for every arm and size."""
        from .measure import lexical_probes

        if getattr(self, "_targets", None) is None:
            from sensekit.store import open_store

            from ..targets import SenseTargets

            with open_store(self.inputs[f"store_{self.exp.largest}"]) as st:
                self._targets = SenseTargets.from_store(st, self.teacher.vocab_size, self.teacher.device)
        return lexical_probes(
            model,
            self.teacher,
            self.inputs[f"store_{self.exp.largest}"],
            self.relations["heldout_pairs"],
            self.exp,
            self._targets,
            self.windows["test"],
        )

    def reference_probes(self) -> dict[str, Any] | None:
        """The teacher's and the untrained student's probe scores (cached beside reference.json)."""
        if not self.exp.probes:
            return None
        path = self.work / f"reference-probes-{self.signature}-v{MEASURE_VERSION}.json"
        if path.is_file():
            return json.loads(path.read_text())
        import torch

        from sensekit.model.layers import build_truncated

        cfg = self.exp.base_config()
        with torch.no_grad():
            untrained = build_truncated(
                self.teacher.model, cfg.replace(student_layers=self.exp.student_layers).student_selection, []
            ).eval()
            both = self._probes(untrained)
        out = {"teacher": both["teacher"], "untrained_student": both["student"]}
        out.update({k: v for k, v in both.items() if k not in ("teacher", "student")})
        path.write_text(json.dumps(out, default=str))
        return out

    def start_dev_ce(self) -> float:
        """Dev CE of the untrained student (the curve's step 0), on the windows distill evaluates."""
        if getattr(self, "_start_ce", None) is None:
            self._start_ce = self.reference()["untrained_dev_ce"]
        return self._start_ce

    def reference(self) -> dict[str, Any]:
        """The untrained student and the teacher on dev and test (cached in WORK/reference.json)."""
        path = self.work / f"reference-{self.signature}.json"
        if getattr(self, "_reference", None) is not None:
            return self._reference
        if path.is_file():
            self._reference = json.loads(path.read_text())
            return self._reference
        import torch

        from sensekit.model.layers import build_truncated

        from .measure import score_windows

        cfg = self.exp.base_config()
        with torch.no_grad():
            untrained = build_truncated(
                self.teacher.model, cfg.replace(student_layers=self.exp.student_layers).student_selection, []
            ).eval()
            dev = self.windows["dev"]
            dev_windows = dev.subset(slice(0, max(1, self.exp.dev_windows // cfg.batch_size) * cfg.batch_size))
            u_dev = score_windows(untrained, self.teacher, dev_windows, cfg.batch_size, cfg.tau)
            u_test = score_windows(untrained, self.teacher, self.windows["test"], cfg.batch_size, cfg.tau)
            t_test = score_windows(None, self.teacher, self.windows["test"], cfg.batch_size, cfg.tau)
        ce = lambda s: sum(s["nll"]) / max(1, sum(s["tokens"]))  # noqa: E731
        self._reference = {
            "untrained_dev_ce": ce(u_dev),
            "untrained_test": u_test,
            "teacher_test": t_test,
            "student_layers": self.exp.student_layers,
        }
        path.write_text(json.dumps(self._reference))
        return self._reference

    def choose(self, _grid: dict[str, list], partial_ok: bool = True) -> dict[str, dict[str, Any]]:
        """Each arm's best setting on dev (lowest final dev CE), among its finished tuning runs. With
        partial_ok False an arm is chosen only when its whole grid has run (equal budget)."""
        chosen: dict[str, dict[str, Any]] = {}
        for arm in self.exp.arms:
            runs = [
                RunSpec(arm.name, i, s, self.exp.tune_seed, self.exp.largest, "dev")
                for i, s in enumerate(arm.settings())
            ]
            done = [r for r in (self.finished(s) for s in runs) if r and r.get("dev_ce") is not None]
            if not done or (not partial_ok and len(done) < len(runs)):
                continue
            best = min(done, key=lambda r: r["dev_ce"])
            chosen[arm.name] = {
                "index": best["index"],
                "setting": best["setting"],
                "dev_ce": best["dev_ce"],
                "of": len(done),
            }
        return chosen


def _grad_share(summary: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Each loss term's share of the summed per-term gradient norms on the trained parameters, when training
    logged them: the training summary's `grad_share` (the mean over the logged steps), else the same mean over
    the metrics rows' `grad_norms`. None when the training code logged none."""
    norms = [r["grad_norms"] for r in rows if isinstance(r.get("grad_norms"), dict)]
    if isinstance(summary.get("grad_share"), dict) and summary["grad_share"]:
        return {"mean": summary["grad_share"], "steps_logged": len(norms), "source": "training summary"}
    shares: dict[str, list[float]] = {}
    for n in norms:
        total = sum(v for v in n.values() if isinstance(v, (int, float)))
        for k, v in n.items():
            if total > 0 and isinstance(v, (int, float)):
                shares.setdefault(k, []).append(v / total)
    if not shares:
        return None
    return {"mean": {k: float(np.mean(v)) for k, v in shares.items()}, "steps_logged": len(norms), "source": "metrics"}


def _store_counts(path: Path) -> dict[str, Any]:
    """Tokens, senses, relations and the doc ids of the store's contexts (for the leak check)."""
    import duckdb

    con = duckdb.connect(str(path / "store.duckdb"), read_only=True)
    try:
        q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
        out: dict[str, Any] = {
            "tokens": q("SELECT count(*) FROM tokens")[0][0],
            "senses": q("SELECT count(*) FROM senses")[0][0],
            "relations": dict(q("SELECT kind, count(*) FROM relations GROUP BY 1 ORDER BY 1")),
        }
        try:
            out["context_doc_ids"] = [r[0] for r in q("SELECT DISTINCT doc_id FROM contexts")]
        except duckdb.Error:
            out["context_doc_ids"] = []
        try:  # the share of senses that are one raw sample rather than a centroid of several
            out["senses_from_one_sample"] = q(
                "SELECT avg(CASE WHEN count <= 1 THEN 1 ELSE 0 END) FROM senses WHERE token_id IS NOT NULL"
            )[0][0]
        except duckdb.Error:
            out["senses_from_one_sample"] = None
    finally:
        con.close()
    return out


def run_experiment(
    exp: Experiment, progress: Progress = no_progress, *, teacher=None, until: float | None = None, max_runs: int = -1
) -> dict[str, Any]:
    """Prepare, tune, test and report; writes exp.results (JSON) and the figure beside it. `until` (a
    time.time() value): start no run after it; `max_runs` >= 0: start at most that many new runs. Either way
    the report covers every finished run and says what did not run."""
    from .report import aggregate, markdown, plot_gap

    t0 = time.perf_counter()
    runner = Runner(exp, progress, teacher)
    setup = runner.prepare()
    reference = runner.reference()
    started = 0

    def run_all(specs: list[RunSpec]) -> tuple[list[dict[str, Any]], list[str]]:
        """Run every spec this process may start; -> (the records of all finished specs, any process's; the
        labels of the others), read at one moment so that a run another process finishes meanwhile is in
        neither the report's runs nor its `not_run`, rather than counted in one and missing from the other."""
        nonlocal started
        for spec in specs:
            if runner.finished(spec) is not None:
                continue
            if (until is not None and time.time() > until) or (max_runs >= 0 and started >= max_runs):
                continue
            with claim(runner.run_dir(spec)) as mine:
                if mine and runner.finished(spec) is None:  # another process may have finished it meanwhile
                    started += 1
                    runner.run(spec)
        records = [(s, runner.finished(s)) for s in specs]
        return [{**r, "phase": s.phase} for s, r in records if r is not None], [
            s.label for s, r in records if r is None
        ]

    tuning, missing = run_all(exp.tuning_runs())
    chosen = runner.choose({}, partial_ok=False)
    tests, missing_tests = run_all(runner.test_runs(chosen))
    missing += missing_tests
    reference = {**reference, "probes": runner.reference_probes()}
    report = aggregate(exp, tuning, tests, chosen, reference)
    if len(chosen) < len(exp.arms):
        missing.append(
            f"test runs of {sorted(set(a.name for a in exp.arms) - set(chosen))}: their dev grid is unfinished"
        )
    report = {
        "experiment": exp.name,
        "settings": {k: v for k, v in exp.__dict__.items() if k != "arms"}
        | {"arms": {a.name: {"fixed": a.fixed, "grid": a.grid, "stores": a.stores} for a in exp.arms}},
        "tuning_budget": exp.budget(),
        "setup": setup,
        **report,
        "ran": {"tuning_runs": len(tuning), "test_runs": len(tests), "new_runs_this_call": started},
        "not_run": missing,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    out = Path(exp.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(markdown(report, exp), encoding="utf-8")  # the tables, for a write-up
    if report["gap_by_size"]:
        plot_gap(report, exp, out.with_name(out.stem + "-gap.png"))
    return report


@contextlib.contextmanager
def claim(folder: Path) -> Iterator[bool]:
    """Hold an advisory lock on a run folder for the block: yields False when another live process holds it.
    The lock dies with its process, so a crashed run is not left claimed."""
    try:
        import fcntl
    except ImportError:  # no advisory locks (Windows): one process per experiment
        yield True
        return
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "claim", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def held_elsewhere(folder: Path) -> bool:
    """Whether another live process is training this run now."""
    with claim(folder) as mine:
        return not mine
