"""experiment.toml: what `sensekit distill compare` runs, read strictly (an unknown key is a one-line error).

    [experiment]            the data, the teacher, the student, the sizes, the seeds
    [distill]               DistillConfig settings every run shares (seq_len, batch_size, epochs, ...)
    [arms.NAME]             an arm: `fixed` settings, a tuning `grid` on dev, and which stores it runs with
    [quick]                 overrides of [experiment] and [distill] for --quick

A grid value `margin = ["auto", "paper"]` stands for beta_p/beta_n: 'auto' sets both to auto, 'paper'
to the paper's 0 and 1. Every other grid or fixed key is a DistillConfig field.

Each run is a `RunSpec` (arm, setting, seed, store size, split); its `key` is the hash of the resolved
DistillConfig (output folder left out) and of its inputs' fingerprints, so a finished run is found again
and an interrupted experiment continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from sensekit.errors import InputError
from sensekit.options import read_toml

from ..config import DistillConfig

__all__ = ["Experiment", "Arm", "RunSpec", "load_experiment", "MARGINS", "CONTROL_FIELDS"]

MARGINS = {"auto": {"beta_p": "auto", "beta_n": "auto"}, "paper": {"beta_p": "0.0", "beta_n": "1.0"}}
# set by the harness for every run: an arm may not set them
CONTROL_FIELDS = ("store", "data", "teacher", "output_dir", "eval_data", "seed", "student_layers", "train_layers")


@dataclass(frozen=True)
class Arm:
    name: str
    fixed: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    stores: Any = "largest"  # "all": a run per dictionary size; "largest": the largest store; or a list of sizes
    label: str = ""

    def sizes(self, store_sizes: list[int]) -> list[int]:
        if self.stores == "all":
            return sorted(store_sizes)
        return [max(store_sizes)] if self.stores == "largest" else sorted(self.stores)

    def settings(self) -> list[dict[str, Any]]:
        """The grid's settings (each a dict of DistillConfig fields, 'margin' expanded), fixed ones included."""
        keys = list(self.grid)
        out = []
        for values in itertools.product(*(self.grid[k] for k in keys)) if keys else [()]:
            s = {**self.fixed, **dict(zip(keys, values))}
            if "margin" in s:
                s.update(MARGINS[s.pop("margin")])
            out.append(s)
        return out


@dataclass(frozen=True)
class Experiment:
    name: str = "kd-vs-dskd"
    teacher: str = "smollm2-135m"
    corpus: str = ""  # a MediaWiki XML(.bz2), JSONL or text corpus: split by article
    work_dir: str = "compare-work"  # stores, splits, runs (resumable)
    results: str = "compare-results.json"  # the report; the figures beside it
    dev_articles: int = 12
    test_articles: int = 24
    min_test_articles: int = 20
    split_seed: int = 0
    store_sizes: list[int] = field(default_factory=lambda: [8000, 24000, 72000])  # tokens of `sensekit build`
    relations: list[str] = field(default_factory=lambda: ["wordnet"])  # relation sources of the stores
    heldout_lemma_share: float = 0.2  # share of relation lemmas held out of every store (the lexical probes)
    build: dict[str, Any] = field(default_factory=dict)  # extra BuildConfig settings (e.g. batch_size)
    student_layers: str = "0-9,20-29"
    train_layers: str = "top2"
    train_windows: int = 128  # training windows (seq_len tokens), from articles the stores never see
    train_text_chars: int = 0  # characters of train articles set aside for the windows (0: train_windows x seq_len x 6)
    train_article_chars: int = 0  # at most this many characters of each training article (0: whole articles)
    dev_windows: int = 16
    dev_article_chars: int = 0  # each dev article gives a slice of this many characters from its middle (0: all)
    test_windows_per_article: int = 4  # spread evenly over each test article, not only its opening
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    tune_seed: int = 0
    eval_points: int = 5  # dev evaluations per run (the curve, and the flattening check)
    flat_tail: float = 0.2  # the flattening check: over the last 20% of the steps ...
    flat_gain: float = 0.02  # ... dev CE moves (either way) by less than 2% of what the steps before gained
    bootstrap: int = 2000
    wic_limit: int = 200
    pair_limit: int = 300
    simlex_limit: int = 0  # SimLex-999 pairs scored (0: all)
    nearest_sense_positions: int = 4096  # test positions of the nearest-sense probe
    device: str = "cpu"
    plan_step_s: float = 0.0  # --plan's seconds per optimizer step before any run is timed (0: a 2-core CPU guess)
    plan_run_overhead_s: float = 20.0  # --plan: start-up, dev evaluations and test metrics per run
    plan_build_tokens_s: float = 250.0  # --plan: store-build throughput (tokens through the teacher per second)
    probes: bool = True  # the lexical probes (WiC, held-out syn/ant, SimLex, nearest sense) on every test run
    baseline: str = "kd"  # the arm every other arm is compared with
    controls: list[str] = field(default_factory=list)  # arms every treatment is also compared with
    treatments: list[str] = field(default_factory=list)  # the arms on trial (none: every arm but baseline/controls)
    headline_metrics: list[str] = field(default_factory=lambda: ["ppl"])  # Holm's family: treatments x these
    family_alpha: float = 0.05  # the family-wise error rate of the Holm correction
    distill: dict[str, Any] = field(default_factory=dict)
    arms: tuple[Arm, ...] = ()

    @property
    def largest(self) -> int:
        return max(self.store_sizes)

    def base_config(self) -> DistillConfig:
        return DistillConfig(**{"device": self.device, "save_every": 0, **self.distill})

    def tuning_runs(self) -> list["RunSpec"]:
        """Every arm's grid on dev, with the largest store and the tuning seed; arms interleaved (an interrupted
        experiment has tuned every arm about as far)."""
        grids = [
            [RunSpec(a.name, i, s, self.tune_seed, self.largest, "dev") for i, s in enumerate(a.settings())]
            for a in self.arms
        ]
        return [g[i] for i in range(max(map(len, grids))) for g in grids if i < len(g)]

    def budget(self) -> dict[str, int]:
        return {arm.name: len(arm.settings()) for arm in self.arms}

    def trial_arms(self) -> list[str]:
        """The treatments: named, or every arm that is neither the baseline nor a control."""
        return list(self.treatments) or [
            a.name for a in self.arms if a.name != self.baseline and a.name not in self.controls
        ]


@dataclass(frozen=True)
class RunSpec:
    arm: str
    index: int  # the setting's index in the arm's grid
    setting: dict[str, Any]
    seed: int
    store_size: int
    phase: str  # "dev" (tuning) or "test" (the chosen setting, every seed)

    @property
    def label(self) -> str:
        s = ",".join(f"{k}={v}" for k, v in sorted(self.setting.items()))
        return f"{self.phase}:{self.arm}[{s}] seed {self.seed} store {self.store_size}"

    def config(self, exp: Experiment, inputs: dict[str, str], out: Path) -> DistillConfig:
        """The run's DistillConfig: the shared settings, the arm's setting, the harness's inputs."""
        return exp.base_config().replace(
            **self.setting,
            seed=self.seed,
            teacher=inputs["teacher"],
            store=inputs[f"store_{self.store_size}"],
            data=(inputs["train_windows"],),
            max_windows=exp.train_windows,
            eval_data=(inputs["dev"],),
            student_layers=exp.student_layers,
            train_layers=exp.train_layers,
            output_dir=str(out),
        )

    def key(self, exp: Experiment, inputs: dict[str, str], fingerprints: dict[str, str]) -> str:
        """Only the settings that differ from DistillConfig's defaults enter the hash: a field added to
        DistillConfig later (with a default that keeps the old behaviour) leaves every finished run's key as it
        was, so an experiment resumed with newer code finds its runs."""
        cfg = self.config(exp, inputs, Path("-")).to_dict()
        cfg.pop("output_dir")
        defaults = _default_distill()
        cfg = {k: v for k, v in cfg.items() if k not in defaults or defaults[k] != v}
        blob = json.dumps(
            {"config": cfg, "inputs": {k: fingerprints.get(v, v) for k, v in inputs.items()}}, sort_keys=True
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _default_distill() -> dict[str, Any]:
    return DistillConfig().to_dict()


# -- reading the TOML ---------------------------------------------------------------------------
_EXP_FIELDS = {f.name for f in fields(Experiment)} - {"distill", "arms"}
_ARM_KEYS = {"fixed", "grid", "stores", "label"}
_TOP = {"experiment", "distill", "arms", "quick"}
_DISTILL_FIELDS = {f.name for f in fields(DistillConfig)}


def _unknown(keys, known, where: str, path: Path) -> None:
    bad = sorted(set(keys) - set(known))
    if bad:
        raise InputError(f"{path}: unknown key {bad[0]!r} in {where}; known: {', '.join(sorted(known))}")


def _experiment(doc: dict[str, Any], path: Path) -> Experiment:
    _unknown(doc, _TOP, "the top level", path)
    exp = dict(doc.get("experiment", {}))
    _unknown(exp, _EXP_FIELDS, "[experiment]", path)
    distill = dict(doc.get("distill", {}))
    _unknown(distill, _DISTILL_FIELDS - set(CONTROL_FIELDS), "[distill]", path)
    arms = []
    for name, spec in (doc.get("arms") or {}).items():
        if not isinstance(spec, dict):
            raise InputError(f"{path}: [arms.{name}] must be a table")
        _unknown(spec, _ARM_KEYS, f"[arms.{name}]", path)
        for part in ("fixed", "grid"):
            _unknown(
                spec.get(part, {}), (_DISTILL_FIELDS - set(CONTROL_FIELDS)) | {"margin"}, f"arms.{name}.{part}", path
            )
        grid = {k: (v if isinstance(v, list) else [v]) for k, v in spec.get("grid", {}).items()}
        for m in grid.get("margin", []) + ([spec["fixed"]["margin"]] if "margin" in spec.get("fixed", {}) else []):
            if m not in MARGINS:
                raise InputError(f"{path}: arms.{name}: margin {m!r} must be 'auto' or 'paper'")
        if any(not v for v in grid.values()):
            raise InputError(f"{path}: arms.{name}.grid: every knob needs at least one value")
        stores = spec.get("stores", "largest")
        if isinstance(stores, list):
            if not stores:
                raise InputError(f"{path}: arm {name} has no store: give stores = 'all', 'largest' or store sizes")
            sizes = set(exp.get("store_sizes", Experiment().store_sizes))
            missing = [x for x in stores if x not in sizes]
            if missing:
                raise InputError(
                    f"{path}: arm {name} has no store of {missing[0]} tokens (store_sizes: {sorted(sizes)})"
                )
        elif stores not in ("all", "largest"):
            raise InputError(
                f"{path}: arms.{name}.stores must be 'all', 'largest' or a list of store sizes, got {stores!r}"
            )
        arms.append(Arm(name, dict(spec.get("fixed", {})), grid, stores, spec.get("label", name)))
    try:
        out = Experiment(**exp, distill=distill, arms=tuple(arms))
    except TypeError as exc:
        raise InputError(f"{path}: {exc}") from None
    return out


def _check(exp: Experiment, path: Path) -> Experiment:
    if not exp.arms:
        raise InputError(f"{path}: no [arms.NAME] tables; name at least two arms to compare")
    if not exp.corpus:
        raise InputError(f"{path}: [experiment] corpus is required (a MediaWiki XML(.bz2), JSONL or text corpus)")
    if not exp.store_sizes or any(not isinstance(s, int) or s < 1 for s in exp.store_sizes):
        raise InputError(
            f"{path}: [experiment] store_sizes must list store sizes in tokens (>= 1), got {exp.store_sizes}"
        )
    if not exp.seeds:
        raise InputError(f"{path}: [experiment] seeds must list at least one seed")
    if not 0 < exp.heldout_lemma_share < 1:
        raise InputError(f"{path}: heldout_lemma_share must be in (0, 1), got {exp.heldout_lemma_share}")
    names = {a.name for a in exp.arms}
    for what, listed in (("baseline", [exp.baseline]), ("controls", exp.controls), ("treatments", exp.treatments)):
        missing = [x for x in listed if x not in names]
        if missing:
            raise InputError(f"{path}: [experiment] {what} names arm {missing[0]!r}, which has no [arms.{missing[0]}]")
    if not 0 < exp.flat_tail < 1:
        raise InputError(f"{path}: flat_tail must be in (0, 1), got {exp.flat_tail}")
    if exp.test_articles < exp.min_test_articles:
        raise InputError(
            f"{path}: test_articles {exp.test_articles} is below min_test_articles {exp.min_test_articles}"
        )
    try:
        base = exp.base_config()
        for arm in exp.arms:
            for s in arm.settings():
                cfg = base.replace(**s)
                if cfg.needs_senses and not exp.relations:
                    raise InputError(f"{path}: arm {arm.name} uses senses but the stores have no relations")
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    return exp


def load_experiment(path: str | Path, quick: bool = False) -> Experiment:
    """Read and check experiment.toml; with `quick`, its [quick] table overrides [experiment] and [distill]."""
    path = Path(path)
    doc = read_toml(path)
    quick_doc = doc.get("quick", {})
    _unknown(quick_doc, _EXP_FIELDS | {"distill", "arms"}, "[quick]", path)
    if quick:
        exp_part = {**doc.get("experiment", {}), **{k: v for k, v in quick_doc.items() if k not in ("distill", "arms")}}
        doc = {**doc, "experiment": exp_part, "distill": {**doc.get("distill", {}), **quick_doc.get("distill", {})}}
        if "arms" in quick_doc:
            doc["arms"] = quick_doc["arms"]
    exp = _check(_experiment(doc, path), path)
    base = Path(path).resolve().parent
    resolve = lambda p: p if not p or Path(p).is_absolute() else str(base / p)  # noqa: E731
    return dataclasses.replace(
        exp, corpus=resolve(exp.corpus), work_dir=resolve(exp.work_dir), results=resolve(exp.results)
    )
