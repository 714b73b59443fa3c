"""KD versus DSKD, with a hidden-state control, several seeds, on held-out Wikipedia text.

    python benchmarks/kd_vs_dskd.py [--quick] [--seeds N] [--steps N] [--out FILE.json] [--work DIR]

What it does, stage by stage (each stage timed; everything lands in one JSON file):

1. **Split.** The shared Wikipedia sample (MediaWiki XML) is read with sensekit's own corpus
   reader (markup stripped as `sensekit build` strips it) and split by article, by a hash of
   the title: about 80% train, 10% dev, 10% test. Each split is written as JSONL
   (`{"id": title, "text": ...}`). Dev serves the choice of student and the training curves;
   test serves only the final metrics, so nothing is chosen on the numbers it reports.
2. **Store.** `sensekit build` on the train split only, with WordNet relations and those of
   the shared Wiktionary dump.
3. **Leak check** (fails loudly): no title and no text hash is shared between train and
   dev/test; no held-out article shares more than a bound of its word 13-grams with the train
   split; the store records the train file as its whole corpus (same fingerprint) and every
   context it keeps comes from a train article; every training run reads only the train file.
4. **Student.** The first layer selection of a fixed list whose dev perplexity before training
   is within 100x of the teacher's (a property of the student, fixed before any training).
5. **Runs.** Three arms on the same code path, data order and seed, for each seed:
   KD (`--lambda-sense 0`), KD + hidden-state MSE (`--lambda-sense 0 --lambda-hidden 1`) and
   DSKD (docs/method.md defaults). Each run is one `sensekit distill` subprocess, so its peak
   memory (the child's max RSS, from wait4) is its own. The frozen-prefix cache is filled by
   the first run and shared by the others (the same windows, teacher and layers give the same
   values); step times are taken from cached steps only, so they compare like with like.
6. **Metrics.** `sensekit eval student` (distill.student_eval.evaluate_student) on the test
   split for every student, the untrained student and the teacher; mean and standard
   deviation per arm over seeds; DSKD minus KD and DSKD minus KD+hidden with paired
   t-intervals and a paired bootstrap over seeds.
7. **Output.** benchmarks/results/kd_vs_dskd.json (kd_vs_dskd-quick.json with --quick) and
   PNGs beside it: dev-perplexity curves per arm with seed bands, bar charts of the final
   metrics with error bars.

`--quick` (one seed, few steps, small store) exercises every path in under 10 minutes on
2 CPU cores; the full run aims at 45-60 minutes there.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SHARED = Path(os.environ.get("SENSEKIT_SHARED", REPO.parent / "shared"))
CORPUS = SHARED / "data" / "corpus" / "enwiki-sample-pages-articles.xml.bz2"
WIKTIONARY = SHARED / "data" / "wiktionary" / "enwiktionary-test-pages-articles.xml.bz2"
NLTK_DATA = SHARED / "data" / "nltk_data"
RESULTS = REPO / "benchmarks" / "results"

# Layer selections tried in this order; the first within MAX_PPL_RATIO of the teacher is the student.
# Smallest first: the student should need the teacher, but start close enough to learn.
CANDIDATES = ("0-9,20-29", "0-11,18-29", "0-13,16-29", "0-25,28-29")
MAX_PPL_RATIO = 100.0
TRAIN_LAYERS = "top2"
ARMS = {  # name -> distill flags on top of the shared ones (docs/method.md defaults otherwise)
    "kd": {"lambda-sense": 0.0},
    "kd_hidden": {"lambda-sense": 0.0, "lambda-hidden": 1.0},
    "dskd": {},
}
ABLATIONS = {  # issue section 4, each a DSKD variant (`--ablations`); key input stores: distill refuses them
    "dskd_kappa1": {"kappa": 1},
    "dskd_lambda0.5": {"lambda-sense": 0.5},
    "dskd_lambda1.5": {"lambda-sense": 1.5},
    "dskd_own_negative": {"own-senses-negative": True},
}
ALL_ARMS = {**ARMS, **ABLATIONS}
ARM_LABELS = {
    "kd": "KD",
    "kd_hidden": "KD + hidden MSE",
    "dskd": "DSKD",
    "dskd_kappa1": "DSKD kappa 1",
    "dskd_lambda0.5": "DSKD lambda 0.5",
    "dskd_lambda1.5": "DSKD lambda 1.5",
    "dskd_own_negative": "DSKD own senses neg.",
}
COMPARISONS = (("dskd", "kd"), ("dskd", "kd_hidden"))


def comparisons_for(arms: list[str]) -> list[tuple[str, str]]:
    """DSKD against both controls; each ablation against default DSKD and against KD."""
    pairs = [p for p in COMPARISONS if p[0] in arms and p[1] in arms]
    for a in arms:
        if a in ABLATIONS:
            pairs += [(a, b) for b in ("dskd", "kd") if b in arms]
    return pairs


SPLIT_BUCKETS = 10  # sha256(title) mod 10: 0 -> dev, 1 -> test, else train
NGRAM = 13  # word n-gram of the contamination check (as GPT-3's)
MAX_NGRAM_SHARE = 0.5  # a held-out article sharing more of its 13-grams with train is a leak
FALL_FACTOR, FLAT_TAIL, FLAT_GAIN = 2.0, 0.2, 0.05  # the schedule criteria of the issue
BOOTSTRAP = 10_000


@dataclass(frozen=True)
class Scale:
    """Everything that differs between --quick and the full run (fixed in advance, never fitted on held-out)."""

    seeds: int
    steps: int
    curve_points: int  # dev evaluations per run (steps * (1 - FLAT_TAIL) is one of them)
    seq_len: int
    batch_size: int
    train_windows: int  # --max-windows: training windows of seq_len tokens
    lr: float
    store_tokens: int  # sensekit build --max-tokens (a prefix of the train split)
    dev_batches: int  # --eval-batches: dev windows = dev_batches * batch_size
    test_windows: int  # eval student: held-out windows of the test split
    wic_limit: int  # eval student: WiC pairs
    pair_limit: int  # eval student: syn and ant pairs each


# The full schedule was set from two KD probes on the dev split (never on test), before any comparison was run:
# lr 3e-4 with 4 x 128 tokens per step took dev perplexity from 612 to 291 in 96 steps (2.1x, still falling);
# lr 1e-3 with 2 x 128 tokens took it to 194 in 192 steps (3.2x) and flat (0.2% over the last quarter).
FULL = Scale(
    seeds=3,
    steps=200,
    curve_points=10,
    seq_len=128,
    batch_size=2,
    train_windows=256,
    lr=1e-3,
    store_tokens=40_000,
    dev_batches=4,
    test_windows=24,
    wic_limit=200,
    pair_limit=100,
)
QUICK = Scale(
    seeds=1,
    steps=30,
    curve_points=5,
    seq_len=64,
    batch_size=2,
    train_windows=32,
    lr=1e-3,
    store_tokens=3_000,
    dev_batches=2,
    test_windows=8,
    wic_limit=40,
    pair_limit=40,
)


class LeakError(RuntimeError):
    """Held-out text reached the store or the training data."""


# -- small utilities ------------------------------------------------------------------------
def log(msg: str) -> None:
    print(f"[kd_vs_dskd {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Stages:
    """Wall time and CPU time (this process and its children) of each stage, in order."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}

    @staticmethod
    def _cpu() -> float:
        import resource

        return sum(
            u.ru_utime + u.ru_stime
            for u in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
        )

    @contextlib.contextmanager
    def __call__(self, name: str):
        log(f"{name} ...")
        t0, c0 = time.perf_counter(), self._cpu()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - t0, 2)
            self.cpu_seconds[name] = round(self._cpu() - c0, 2)
            log(
                f"{name}: {self.seconds[name]:.1f} s (CPU {self.cpu_seconds[name]:.1f} s, load "
                f"{os.getloadavg()[0]:.1f})"
            )


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_layers(spec: str) -> list[int]:
    """'0-9,20-29' -> [0, ..., 9, 20, ..., 29] (distill's own parser)."""
    from sensekit.model.layers import parse_layer_list

    return parse_layer_list(spec, "student_layers")


def sensekit_cmd() -> list[str]:
    """The `sensekit` console script of this interpreter's environment (else `python -m sensekit.cli`)."""
    exe = Path(sys.executable).with_name("sensekit")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "sensekit.cli"]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("NLTK_DATA", str(NLTK_DATA))  # WordNet, and wiktextract imports NLTK's Brown corpus
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    return env


def run_measured(cmd: list[str], log_path: Path) -> dict[str, Any]:
    """Run a child to completion -> {returncode, wall_s, max_rss_mb (of that child and its waited-for children)}."""
    t0 = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=child_env(), cwd=str(REPO))
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "returncode": proc.returncode,
        "wall_s": round(time.perf_counter() - t0, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),  # busy machine: CPU seconds vary less than wall
        "max_rss_mb": round(usage.ru_maxrss / 1024, 1),
    }  # ru_maxrss is in KiB on Linux


def check_call(cmd: list[str], log_path: Path, what: str) -> dict[str, Any]:
    result = run_measured(cmd, log_path)
    if result["returncode"] != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"{what} failed (exit {result['returncode']}); log {log_path}:\n{tail}")
    return result


def machine() -> dict[str, Any]:
    import torch

    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem = round(int(Path("/proc/meminfo").read_text().split()[1]) / 2**20, 1)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gib": mem,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_at_start": list(os.getloadavg()),
    }


# -- 1. split -------------------------------------------------------------------------------
def split_of(title: str) -> str:
    bucket = int(hashlib.sha256(title.encode("utf-8")).hexdigest()[:8], 16) % SPLIT_BUCKETS
    return "dev" if bucket == 0 else "test" if bucket == 1 else "train"


def write_splits(corpus: Path, folder: Path) -> dict[str, Any]:
    """corpus -> folder/{train,dev,test}.jsonl, with titles and text hashes per split (reused when up to date)."""
    from sensekit.builder.corpus import corpus_fingerprint, iter_documents, resolve_paths

    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / "splits.json"
    fingerprint = corpus_fingerprint(resolve_paths([str(corpus)]), "text")
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("corpus_fingerprint") == fingerprint and all(
            Path(manifest["files"][s]).is_file() for s in ("train", "dev", "test")
        ):
            return manifest
    docs: dict[str, list[dict[str, str]]] = {"train": [], "dev": [], "test": []}
    skipped = 0
    for title, text in iter_documents([str(corpus)]):
        if not text.strip():
            skipped += 1
            continue
        docs[split_of(title)].append({"id": title, "text": text})
    files = {}
    for name, rows in docs.items():
        path = folder / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        files[name] = str(path)
    manifest = {
        "corpus": str(corpus),
        "corpus_fingerprint": fingerprint,
        "rule": f"sha256(title) mod {SPLIT_BUCKETS}: 0 dev, 1 test, else train",
        "empty_articles_skipped": skipped,
        "files": files,
        "articles": {s: len(r) for s, r in docs.items()},
        "characters": {s: sum(len(d["text"]) for d in r) for s, r in docs.items()},
        "titles": {s: [d["id"] for d in r] for s, r in docs.items()},
        "text_sha256": {s: [sha256_text(d["text"]) for d in r] for s, r in docs.items()},
    }
    manifest_path.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return manifest


def read_jsonl(path: str | Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


# -- 2. store -------------------------------------------------------------------------------
def build_command(train_file: str, store: Path, scale: Scale) -> list[str]:
    return [
        *sensekit_cmd(),
        "build",
        train_file,
        "--store",
        str(store),
        "--max-tokens",
        str(scale.store_tokens),
        "--relations",
        "wordnet",
        "--relations",
        f"wiktionary:{WIKTIONARY}",
        "--seed",
        "0",
        "--quiet",
    ]


def build_store(train_file: str, store: Path, scale: Scale, logs: Path) -> dict[str, Any]:
    """sensekit build on the train split; a store of the same corpus, size and relations is reused."""
    cmd = build_command(train_file, store, scale)
    stamp = store.parent / (store.name + ".command.json")
    if store.is_dir() and stamp.is_file() and json.loads(stamp.read_text()) == cmd and _opens(store):
        return {"command": cmd, "reused": True}
    if stamp.is_file():
        stamp.unlink()
    result = check_call(cmd, logs / "build.log", "sensekit build")
    stamp.write_text(json.dumps(cmd))
    return {"command": cmd, "reused": False, **result}


def _opens(store: Path) -> bool:
    """Whether this sensekit reads the store (an older schema is rebuilt, not reused)."""
    from sensekit.errors import SensekitError
    from sensekit.store import open_store

    try:
        open_store(store).close()
        return True
    except SensekitError:
        return False


def store_facts(store: Path) -> dict[str, Any]:
    """What the store holds, and the doc ids of every context it keeps (for the leak check)."""
    import duckdb

    from sensekit.store import open_store

    with open_store(store) as s:
        meta = s.meta
        info = s.info() if hasattr(s, "info") else None
    con = duckdb.connect(str(store / "store.duckdb"), read_only=True)
    try:
        q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
        doc_ids = [r[0] for r in q("SELECT DISTINCT doc_id FROM contexts")]
        counts = {
            "tokens": q("SELECT count(*) FROM tokens")[0][0],
            "senses": q("SELECT count(*) FROM senses")[0][0],
            "span_clouds": q("SELECT count(*) FROM spans")[0][0],
            "relations": dict(q("SELECT source || ':' || kind, count(*) FROM relations GROUP BY 1 ORDER BY 1")),
        }
    finally:
        con.close()
    return {
        "meta": {
            k: meta.get(k)
            for k in (
                "teacher",
                "corpus",
                "corpus_fingerprint",
                "max_tokens",
                "created_at",
                "tokens_processed",
                "key_mode",
                "next_token",
                "k",
                "samples_per_token",
            )
        },
        "counts": counts,
        "context_doc_ids": doc_ids,
        "info": str(info) if info is not None else None,
    }


# -- 3. leak check ----------------------------------------------------------------------------
_WORD = re.compile(r"\w+")


def ngrams(text: str, n: int = NGRAM) -> set[int]:
    words = _WORD.findall(text.lower())
    return {hash(tuple(words[i : i + n])) for i in range(len(words) - n + 1)}


def leak_check(splits: dict[str, Any], store: dict[str, Any] | None, train_file: str) -> dict[str, Any]:
    """Every check that no held-out article reached the store or the training data; raises LeakError on a leak."""
    from sensekit.builder.corpus import corpus_fingerprint, resolve_paths

    problems: list[str] = []
    titles = {s: set(t) for s, t in splits["titles"].items()}
    hashes = {s: set(h) for s, h in splits["text_sha256"].items()}
    held_titles = titles["dev"] | titles["test"]
    shared_titles = sorted(titles["train"] & held_titles)
    shared_texts = len(hashes["train"] & (hashes["dev"] | hashes["test"]))
    if shared_titles or titles["dev"] & titles["test"]:
        problems.append(f"titles shared between splits: {shared_titles[:5]}")
    if shared_texts:
        problems.append(f"{shared_texts} held-out texts also occur verbatim in train")
    # near-duplicates: the share of each held-out article's word 13-grams that also occur in train
    train_grams: set[int] = set()
    for row in read_jsonl(train_file):
        train_grams |= ngrams(row["text"])
    shares = {}
    for split in ("dev", "test"):
        for row in read_jsonl(splits["files"][split]):
            grams = ngrams(row["text"])
            shares[row["id"]] = len(grams & train_grams) / max(len(grams), 1)
    worst = max(shares, key=shares.get) if shares else None
    if worst is not None and shares[worst] > MAX_NGRAM_SHARE:
        problems.append(f"held-out article {worst!r} shares {shares[worst]:.0%} of its {NGRAM}-grams with train")
    out: dict[str, Any] = {
        "titles_shared": shared_titles,
        "texts_shared": shared_texts,
        "ngram": NGRAM,
        "ngram_share_max": round(shares[worst], 4) if worst else None,
        "ngram_share_worst": worst,
        "ngram_share_mean": round(float(np.mean(list(shares.values()))), 4) if shares else None,
        "ngram_share_bound": MAX_NGRAM_SHARE,
    }
    if store is not None:
        corpus = [str(Path(p).resolve()) for p in store["meta"].get("corpus") or []]
        want_fp = corpus_fingerprint(resolve_paths([train_file]), "text")
        ctx_ids = set(store["context_doc_ids"])
        out.update(
            store_corpus=corpus,
            store_corpus_is_train_file=corpus == [str(Path(train_file).resolve())],
            store_fingerprint_matches_train=store["meta"].get("corpus_fingerprint") == want_fp,
            store_context_docs=len(ctx_ids),
            store_context_docs_not_train=sorted(ctx_ids - titles["train"]),
            store_context_docs_held_out=sorted(ctx_ids & held_titles),
        )
        if not out["store_corpus_is_train_file"]:
            problems.append(f"the store's corpus is {corpus}, not the train split {train_file}")
        if not out["store_fingerprint_matches_train"]:
            problems.append("the store's corpus fingerprint is not the train split's")
        if out["store_context_docs_held_out"] or out["store_context_docs_not_train"]:
            problems.append(
                f"store contexts come from non-train articles: "
                f"{(out['store_context_docs_held_out'] or out['store_context_docs_not_train'])[:5]}"
            )
    out["problems"] = problems
    out["passed"] = not problems
    if problems:
        raise LeakError("leak check failed: " + "; ".join(problems))
    return out


def check_run_inputs(run_dir: Path, train_file: str, dev_file: str) -> dict[str, Any]:
    """The resolved config of a finished run reads only the train split (and dev for its curve)."""
    import tomllib

    cfg = tomllib.loads((run_dir / "config.toml").read_text(encoding="utf-8"))
    cfg = cfg.get("distill", cfg)
    data = [str(Path(p).resolve()) for p in cfg.get("data", [])]
    evals = [str(Path(p).resolve()) for p in cfg.get("eval_data", [])]
    ok = data == [str(Path(train_file).resolve())] and evals == [str(Path(dev_file).resolve())]
    if not ok:
        raise LeakError(f"run {run_dir} trained on {data} (eval {evals}), not only on the train split {train_file}")
    return {"data": data, "eval_data": evals, "ok": ok}


TOKEN_NGRAM = 16  # token n-gram of the check on the windows the runs actually trained on
MAX_TOKEN_NGRAM_SHARE = 0.01


def window_ngrams(ids: np.ndarray, lengths: np.ndarray, n: int = TOKEN_NGRAM) -> set[bytes]:
    """The token n-grams inside each window (rows of ids [N, T+1], valid lengths [N]), as bytes."""
    out: set[bytes] = set()
    for row, length in zip(np.ascontiguousarray(ids, dtype=np.int32), lengths):
        data = row[: int(length)].tobytes()
        out.update(data[4 * i : 4 * (i + n)] for i in range(int(length) - n + 1))
    return out


def training_windows_check(run_dirs: list[Path], held_out: dict[str, Any]) -> dict[str, Any]:
    """The windows every run trained on (OUTPUT/data/train.npz) are identical across runs, and share (almost) no
    16-token sequence with the held-out windows; raises LeakError otherwise."""
    digests, train = set(), None
    for run_dir in run_dirs:
        with np.load(run_dir / "data" / "train.npz") as z:
            ids, lengths = z["ids"], z["lengths"]
        digests.add(hashlib.sha256(ids.tobytes() + lengths.tobytes()).hexdigest())
        if train is None:
            train = window_ngrams(ids, lengths)
    out: dict[str, Any] = {
        "token_ngram": TOKEN_NGRAM,
        "runs": len(run_dirs),
        "identical_across_runs": len(digests) == 1,
        "train_windows_sha256": sorted(digests),
        "bound": MAX_TOKEN_NGRAM_SHARE,
    }
    problems = [] if len(digests) <= 1 else [f"runs trained on {len(digests)} different window sets"]
    for name, windows in held_out.items():
        grams = window_ngrams(windows.ids, windows.lengths)
        share = len(grams & (train or set())) / max(len(grams), 1)
        out[f"{name}_share_in_train"] = round(share, 5)
        if share > MAX_TOKEN_NGRAM_SHARE:
            problems.append(
                f"{share:.1%} of the {name} windows' {TOKEN_NGRAM}-token sequences occur in the training windows"
            )
    out["problems"], out["passed"] = problems, not problems
    if problems:
        raise LeakError("training-window check failed: " + "; ".join(problems))
    return out


# -- 4. the student ---------------------------------------------------------------------------
def layer_subset(model, keep: list[int]):
    """A causal LM made of the teacher's layers `keep`, all frozen, sharing the teacher's modules (no copy)."""
    from sensekit.model.layers import build_truncated

    return build_truncated(model, keep, []).eval()


def dev_windows(teacher, dev_file: str, scale: Scale):
    """The dev windows `sensekit distill --eval-data DEV --eval-batches B` scores: the first B * batch_size."""
    from distill.data import iter_documents, pack_documents

    return pack_documents(
        iter_documents([dev_file]), teacher.tokenizer, scale.seq_len, scale.dev_batches * scale.batch_size
    )


def choose_student(teacher, dev_file: str, scale: Scale, untrained_dir: Path) -> dict[str, Any]:
    """The first of CANDIDATES whose dev perplexity before training is within MAX_PPL_RATIO of the teacher's.

    The chosen student, untrained, is saved as a plain HF model (the baseline row of the metrics).
    """
    from distill.student_eval import heldout_metrics

    windows = dev_windows(teacher, dev_file, scale)
    tried, chosen = [], None
    for spec in CANDIDATES:
        keep = parse_layers(spec)
        model = layer_subset(teacher.model, keep)
        m = heldout_metrics(model, teacher, windows, scale.batch_size)
        ratio = m["student"]["ppl"] / m["teacher"]["ppl"]
        tried.append(
            {
                "layers": spec,
                "n_layers": len(keep),
                "dev_ppl": m["student"]["ppl"],
                "teacher_dev_ppl": m["teacher"]["ppl"],
                "ratio": ratio,
                "passes": ratio <= MAX_PPL_RATIO,
            }
        )
        log(f"student {spec}: dev ppl {m['student']['ppl']:.1f} vs teacher {m['teacher']['ppl']:.2f} ({ratio:.1f}x)")
        if ratio <= MAX_PPL_RATIO:
            chosen = spec
            if untrained_dir.exists():
                shutil.rmtree(untrained_dir)
            model.save_pretrained(str(untrained_dir), safe_serialization=True)
            teacher.tokenizer.save_pretrained(str(untrained_dir))
            break
    if chosen is None:
        raise RuntimeError(
            f"no candidate student is within {MAX_PPL_RATIO:g}x of the teacher's dev perplexity: "
            f"{[(t['layers'], round(t['ratio'], 1)) for t in tried]}"
        )
    return {
        "candidates": list(CANDIDATES),
        "tried": tried,
        "chosen": chosen,
        "train_layers": TRAIN_LAYERS,
        "max_ratio": MAX_PPL_RATIO,
        "dev_tokens": int(windows.n_targets),
        "measured_on": "dev split",
        "dev_ppl_before": tried[-1]["dev_ppl"],
        "teacher_dev_ppl": tried[-1]["teacher_dev_ppl"],
        "untrained_dir": str(untrained_dir),
    }


# -- 5. runs ----------------------------------------------------------------------------------
def eval_every_for(steps: int, points: int = 10) -> int:
    """About `points` curve points, with the point at (1 - FLAT_TAIL) * steps among them when it is a whole step."""
    tail_start = round((1 - FLAT_TAIL) * steps)
    g = math.gcd(steps, tail_start) if tail_start * 1.0 == (1 - FLAT_TAIL) * steps else steps
    divisors = [d for d in range(1, g + 1) if g % d == 0]
    return min(divisors, key=lambda d: (abs(steps / d - points), d))


def distill_command(
    arm: str,
    seed: int,
    layers: str,
    scale: Scale,
    steps: int,
    eval_every: int,
    files: dict[str, str],
    store: Path,
    run_dir: Path,
) -> list[str]:
    flags: dict[str, Any] = {
        "store": store,
        "data": files["train"],
        "eval-data": files["dev"],
        "eval-batches": scale.dev_batches,
        "eval-every": eval_every,
        "seq-len": scale.seq_len,
        "batch-size": scale.batch_size,
        "max-windows": scale.train_windows,
        "max-steps": steps,
        "lr": scale.lr,
        "seed": seed,
        "student-layers": layers,
        "train-layers": TRAIN_LAYERS,
        "save-every": 0,
        "device": "cpu",
        "output-dir": run_dir,
        **ALL_ARMS[arm],
    }
    cmd = [*sensekit_cmd(), "distill"]
    for name, value in flags.items():
        cmd += [f"--{name}"] if value is True else [f"--{name}", str(value)]
    return cmd + ["--cache"]


def read_jsonl_rows(path: Path) -> list[dict[str, Any]]:
    return read_jsonl(path) if path.is_file() else []


def step_times(rows: list[dict[str, Any]], eval_steps: set[int]) -> list[float]:
    """Seconds per optimizer step from the cached epochs (epoch >= 1), leaving out steps that follow an eval."""
    out = []
    for prev, row in zip(rows, rows[1:]):
        if row.get("epoch", 0) >= 1 and prev["step"] not in eval_steps:
            out.append(row["elapsed_s"] - prev["elapsed_s"])
    return out


def run_arm(
    arm: str, seed: int, cmd: list[str], run_dir: Path, shared_cache: Path, files: dict[str, str], store_id: str
) -> dict[str, Any]:
    """One `sensekit distill` child, measured; a finished run of the same command and store is reused."""
    record_path = run_dir / "bench_run.json"
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        if (
            record.get("command") == cmd
            and record.get("store_id") == store_id
            and (run_dir / "student" / "config.json").is_file()
        ):
            log(f"{arm} seed {seed}: reusing the finished run in {run_dir}")
            return {**record, "reused": True}
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    shared_cache.mkdir(parents=True, exist_ok=True)
    (run_dir / "cache").symlink_to(shared_cache.resolve(), target_is_directory=True)
    log(f"{arm} seed {seed}: {shlex.join(cmd)}")
    measured = check_call(cmd, run_dir.parent / f"{run_dir.name}.log", f"distill {arm} seed {seed}")
    rows = read_jsonl_rows(run_dir / "metrics.jsonl")
    evals = read_jsonl_rows(run_dir / "eval.jsonl")
    times = step_times(rows, {e["step"] for e in evals})
    summary = json.loads((run_dir / "summary.json").read_text())
    student_cfg = json.loads((run_dir / "student" / "config.json").read_text())
    last = rows[-1] if rows else {}
    record = {
        "arm": arm,
        "seed": seed,
        "command": cmd,
        "store_id": store_id,
        "run_dir": str(run_dir),
        **measured,
        "inputs": check_run_inputs(run_dir, files["train"], files["dev"]),
        "steps": summary.get("steps"),
        "train_elapsed_s": summary.get("elapsed_s"),
        "cache_hits": summary.get("cache_hits"),
        "step_time_s": {
            "median": float(np.median(times)) if times else None,
            "mean": float(np.mean(times)) if times else None,
            "n": len(times),
        },
        "curve": [{"step": e["step"], "ppl": e["ppl"], "ce": e["ce"], "kl": e.get("kl")} for e in evals],
        "last_train_terms": {k: v for k, v in last.items() if isinstance(v, (int, float))},
        "student_config": {
            "num_hidden_layers": student_cfg.get("num_hidden_layers"),
            "sensekit": student_cfg.get("sensekit"),
        },  # the selection, as the student records it
        "reused": False,
    }
    record_path.write_text(json.dumps(record, indent=1))
    log(
        f"{arm} seed {seed}: {measured['wall_s']:.0f} s, peak RSS {measured['max_rss_mb']:.0f} MB, "
        f"step {record['step_time_s']['median']} s, dev ppl {evals[-1]['ppl'] if evals else None}"
    )
    return record


# -- 6. metrics -------------------------------------------------------------------------------
def eval_config(student_dir: Path | str, store: Path, test_file: str, scale: Scale):
    from distill.eval_config import StudentEvalConfig

    return StudentEvalConfig(
        student=str(student_dir),
        store=str(store),
        data=(test_file,),
        seq_len=scale.seq_len,
        max_windows=scale.test_windows,
        batch_size=scale.batch_size,
        pair_limit=scale.pair_limit,
        limit=scale.wic_limit,
        seed=0,
        device="cpu",
    )


def eval_command(cfg) -> list[str]:
    """The `sensekit eval student` command line equivalent to the Python call."""
    return [
        *sensekit_cmd(),
        "eval",
        "student",
        "--student",
        cfg.student,
        "--store",
        cfg.store,
        *[a for d in cfg.data for a in ("--data", d)],
        "--seq-len",
        str(cfg.seq_len),
        "--max-windows",
        str(cfg.max_windows),
        "--batch-size",
        str(cfg.batch_size),
        "--pair-limit",
        str(cfg.pair_limit),
        "--limit",
        str(cfg.limit),
        "--seed",
        str(cfg.seed),
        "--device",
        str(cfg.device),
        "--json",
    ]


def student_metrics(
    teacher, student_dir: Path | str, store: Path, test_file: str, scale: Scale, store_id: str = ""
) -> dict[str, Any]:
    """Every `sensekit eval student` number on the test split: the one call that measures a student.

    The result is kept beside the student (bench_eval.json) and reused for the same command, store and weights.
    """
    from distill.student_eval import evaluate_student

    cfg = eval_config(student_dir, store, test_file, scale)
    weights = sorted(Path(student_dir).glob("*.safetensors"))
    key = {
        "command": eval_command(cfg),
        "store_id": store_id,
        "weights": [[w.name, w.stat().st_size, w.stat().st_mtime_ns] for w in weights],
    }
    saved = Path(student_dir).parent / f"{Path(student_dir).name}.bench_eval.json"
    if saved.is_file():
        old = json.loads(saved.read_text())
        if old.get("key") == key:
            return {**old["result"], "reused": True}
    result = evaluate_student(cfg, teacher=teacher)
    out = {
        "flat": flat_metrics(result, "student"),
        "teacher_flat": flat_metrics(result, "teacher"),
        "command": eval_command(cfg),
        "seconds": result.get("seconds"),
        "raw": _jsonable(result),
    }
    saved.write_text(json.dumps({"key": key, "result": out}))
    return {**out, "reused": False}


METRICS = {  # key -> (label, higher is better)
    "ppl": ("held-out perplexity", False),
    "ce": ("held-out cross-entropy (nats)", False),
    "accuracy": ("next-token accuracy", True),
    "kl": ("KL(teacher || student), tau=2", False),
    "top1_agreement": ("top-1 agreement with the teacher", True),
    "wic_accuracy": ("WiC accuracy", True),
    "synant_gap": ("syn/ant: mean cos syn - ant", True),
    "synant_auc": ("syn/ant: ROC AUC", True),
}
COST = {"step_time_s": ("training time per step (s)", False), "max_rss_mb": ("peak memory, RSS (MB)", False)}


def flat_metrics(result: dict[str, Any], side: str) -> dict[str, float | None]:
    held, wic, synant = result["heldout"], result["wic"], result["synant"]
    ok = lambda part: part.get("status") == "ok" and isinstance(part.get(side), dict)  # noqa: E731
    return {
        "ppl": held[side]["ppl"],
        "ce": held[side]["ce"],
        "accuracy": held[side]["accuracy"],
        "kl": held["kl"] if side == "student" else 0.0,
        "top1_agreement": held["top1_agreement"] if side == "student" else 1.0,
        "wic_accuracy": wic[side]["accuracy"] if ok(wic) else None,
        "synant_gap": synant[side]["gap"] if ok(synant) else None,
        "synant_auc": synant[side]["auc"] if ok(synant) else None,
    }


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


# -- statistics ---------------------------------------------------------------------------------
def describe(values: list[float | None]) -> dict[str, Any]:
    """Mean and sample standard deviation (None with fewer than 2 values) of the non-missing values."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return {
        "mean": float(np.mean(xs)) if xs else None,
        "std": float(np.std(xs, ddof=1)) if len(xs) >= 2 else None,
        "n": len(xs),
        "values": values,
    }


def paired(a: list[float], b: list[float], seed: int = 0) -> dict[str, Any]:
    """a - b paired by seed: mean, sd, 95% t-interval, t-test p, and a 95% percentile bootstrap over seeds."""
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    d = np.asarray([x - y for x, y in pairs], np.float64)
    n = len(d)
    out: dict[str, Any] = {
        "n": n,
        "diffs": d.tolist(),
        "mean": float(d.mean()) if n else None,
        "sd": None,
        "t_ci95": None,
        "p_value": None,
        "bootstrap_ci95": None,
    }
    if n < 2:
        return out
    from scipy import stats

    sd = float(d.std(ddof=1))
    out["sd"] = sd
    if sd > 0:
        half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
        out["t_ci95"] = [float(d.mean()) - half, float(d.mean()) + half]
        out["p_value"] = float(stats.ttest_1samp(d, 0.0).pvalue)
    means = np.random.default_rng(seed).choice(d, size=(BOOTSTRAP, n), replace=True).mean(axis=1)
    out["bootstrap_ci95"] = [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]
    return out


def verdict(comp: dict[str, Any], higher_is_better: bool) -> str:
    """'better' / 'worse' when the t-interval excludes 0, else 'no detectable difference' (or 'n/a')."""
    ci = comp.get("t_ci95")
    if ci is None:
        return "n/a (fewer than 2 seeds)" if comp.get("n", 0) < 2 else "identical across seeds"
    if ci[0] > 0 or ci[1] < 0:
        up = ci[0] > 0
        return "better" if up == higher_is_better else "worse"
    return "no detectable difference"


def schedule_criteria(runs: list[dict[str, Any]], start_ppl: float, steps: int) -> dict[str, Any]:
    """Per run: the dev perplexity fell >= FALL_FACTOR x from before training, and the last FLAT_TAIL of the steps
    improved it by under FLAT_GAIN."""
    per_run = []
    for r in runs:
        curve = r["curve"]
        if not curve:
            continue
        final = curve[-1]["ppl"]
        tail_start = (1 - FLAT_TAIL) * steps
        before_tail = [p for p in curve if p["step"] <= tail_start] or curve[:1]
        at = before_tail[-1]
        gain = (at["ppl"] - final) / at["ppl"]
        per_run.append(
            {
                "arm": r["arm"],
                "seed": r["seed"],
                "start_ppl": start_ppl,
                "final_ppl": final,
                "fall": start_ppl / final,
                "fell_enough": start_ppl / final >= FALL_FACTOR,
                "tail_from_step": at["step"],
                "tail_gain": gain,
                "flattened": gain < FLAT_GAIN,
            }
        )
    kd = [p for p in per_run if p["arm"] == "kd"]
    return {
        "fall_factor": FALL_FACTOR,
        "flat_tail": FLAT_TAIL,
        "flat_gain": FLAT_GAIN,
        "runs": per_run,
        "kd_fell_enough": bool(kd) and all(p["fell_enough"] for p in kd),
        "kd_flattened": bool(kd) and all(p["flattened"] for p in kd),
    }


def aggregate(runs: list[dict[str, Any]], arms: list[str], seeds: list[int]) -> tuple[dict, dict]:
    """-> (per-arm mean/std of every metric and cost, paired comparisons)."""
    by = {(r["arm"], r["seed"]): r for r in runs}
    table: dict[str, dict[str, Any]] = {}
    for arm in arms:
        rows = [by[(arm, s)] for s in seeds]
        table[arm] = {k: describe([r["metrics"].get(k) for r in rows]) for k in METRICS}
        table[arm]["step_time_s"] = describe([r["step_time_s"]["median"] for r in rows])
        table[arm]["max_rss_mb"] = describe([r["max_rss_mb"] for r in rows])
        table[arm]["dev_ppl_final"] = describe([r["curve"][-1]["ppl"] if r["curve"] else None for r in rows])
    comparisons: dict[str, dict[str, Any]] = {}
    for a, b in comparisons_for(arms):
        comp = {}
        for k, (_, higher) in {**METRICS, **COST}.items():
            get = (
                (lambda r, k=k: r["step_time_s"]["median"])
                if k == "step_time_s"
                else (lambda r, k=k: r["max_rss_mb"] if k == "max_rss_mb" else r["metrics"].get(k))
            )
            c = paired([get(by[(a, s)]) for s in seeds], [get(by[(b, s)]) for s in seeds])
            c["verdict"] = verdict(c, higher)
            comp[k] = c
        comparisons[f"{a}-{b}"] = comp
    return table, comparisons


# -- 7. plots -----------------------------------------------------------------------------------
ARM_COLORS = {
    "kd": "#1f77b4",
    "kd_hidden": "#ff7f0e",
    "dskd": "#2ca02c",
    "dskd_kappa1": "#d62728",
    "dskd_lambda0.5": "#9467bd",
    "dskd_lambda1.5": "#8c564b",
    "dskd_own_negative": "#e377c2",
}


def plot_curves(
    runs: list[dict[str, Any]], arms: list[str], start_ppl: float, teacher_ppl: float, path: Path, title: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 5))
    for arm in arms:
        curves = [r["curve"] for r in runs if r["arm"] == arm and r["curve"]]
        if not curves:
            continue
        steps = [0] + [p["step"] for p in curves[0]]
        ce = np.asarray([[math.log(start_ppl)] + [p["ce"] for p in c] for c in curves])  # [seeds, points]
        mean = np.exp(ce.mean(axis=0))
        ax.plot(steps, mean, color=ARM_COLORS[arm], marker=".", label=f"{ARM_LABELS[arm]} (seeds: {len(curves)})")
        if len(curves) > 1:
            ax.fill_between(steps, np.exp(ce.min(axis=0)), np.exp(ce.max(axis=0)), color=ARM_COLORS[arm], alpha=0.2)
    ax.axhline(teacher_ppl, color="k", ls="--", lw=1, label=f"teacher ({teacher_ppl:.1f})")
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("dev perplexity (log scale)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_bars(table: dict[str, Any], arms: list[str], reference: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in (*METRICS, *COST) if k != "ce"]
    cols = 3
    fig, axes = plt.subplots(math.ceil(len(keys) / cols), cols, figsize=(11, 3.0 * math.ceil(len(keys) / cols)))
    for ax, key in zip(axes.flat, keys):
        label, higher = {**METRICS, **COST}[key]
        for i, arm in enumerate(arms):
            d = table[arm][key]
            if d["mean"] is None:
                continue
            ax.bar(i, d["mean"], yerr=d["std"] or 0, color=ARM_COLORS[arm], capsize=4, alpha=0.85)
            pts = [v for v in d["values"] if v is not None]
            ax.scatter([i] * len(pts), pts, color="k", s=8, zorder=3)
        refs = [
            f"{name} {reference[name][key]:.4g}"
            for name in ("teacher", "untrained")
            if reference.get(name, {}).get(key) is not None
        ]
        ax.set_xticks(
            range(len(arms)),
            [ARM_LABELS[a] for a in arms],
            fontsize=8,
            rotation=30 if len(arms) > 3 else 0,
            ha="right" if len(arms) > 3 else "center",
        )
        # the references as text: on a zoomed axis they usually lie outside it
        ax.set_title(
            f"{label} ({'higher' if higher else 'lower'} is better)" + ("\n" + ", ".join(refs) if refs else ""),
            fontsize=8,
        )
        spans = [
            (d["mean"] - (d["std"] or 0), d["mean"] + (d["std"] or 0), *[v for v in d["values"] if v is not None])
            for d in (table[a][key] for a in arms)
            if d["mean"] is not None
        ]
        lo, hi = min((min(x) for x in spans), default=0.0), max((max(x) for x in spans), default=1.0)
        if key not in COST and hi > lo:  # zoom on the arms: their differences are small next to the values
            pad = (hi - lo) * 0.8
            ax.set_ylim(lo - pad, hi + pad)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- the whole benchmark ------------------------------------------------------------------------
def required_flags(arms: list[str]) -> list[str]:
    """The `sensekit distill` flags this benchmark needs that the installed CLI lacks."""
    env = {**child_env(), "COLUMNS": "300"}  # rich cuts long flag names to the terminal width
    out = subprocess.run(
        [*sensekit_cmd(), "distill", "--help"], capture_output=True, text=True, env=env, cwd=str(REPO), timeout=300
    )
    text = re.sub(r"\s+", " ", out.stdout + out.stderr)
    need = {"--student-layers", "--train-layers", "--cache", "--eval-data", "--eval-every"}
    for arm in arms:
        need |= {f"--{k}" for k in ALL_ARMS[arm]}
    return sorted(f for f in need if f not in text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 seed, few steps, a small store: every path in < 10 min")
    ap.add_argument("--seeds", type=int, default=None, help="seeds per arm (default 3; 1 with --quick)")
    ap.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"optimizer steps per run (default {FULL.steps}; {QUICK.steps} with --quick)",
    )
    ap.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated arms (default: {','.join(ARMS)})")
    ap.add_argument(
        "--ablations",
        action="store_true",
        help=f"add the DSKD ablation arms ({', '.join(ABLATIONS)}); default output "
        "kd_vs_dskd-ablations.json. With the same --work, finished runs are reused",
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="result JSON (default benchmarks/results/kd_vs_dskd.json, -quick with --quick); PNGs beside",
    )
    ap.add_argument(
        "--work",
        type=Path,
        default=None,
        help="work folder for splits, store, runs (default $TMPDIR/sensekit-kd-vs-dskd[-quick]); "
        "finished stages of the same settings are reused",
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    t_start = time.perf_counter()
    scale = QUICK if args.quick else FULL
    scale = dataclasses.replace(scale, seeds=args.seeds or scale.seeds, steps=args.steps or scale.steps)
    eval_every = eval_every_for(scale.steps, scale.curve_points)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    if args.ablations:
        arms += [a for a in ABLATIONS if a not in arms]
    unknown = [a for a in arms if a not in ALL_ARMS]
    if unknown:
        raise SystemExit(f"unknown arm(s) {unknown}; choose from {list(ALL_ARMS)}")
    suffix = "-quick" if args.quick else ""
    out = args.out or RESULTS / f"kd_vs_dskd{suffix}{'-ablations' if args.ablations else ''}.json"
    work = (args.work or Path(tempfile.gettempdir()) / f"sensekit-kd-vs-dskd{suffix}").resolve()
    for path in (CORPUS, WIKTIONARY, NLTK_DATA):
        if not path.exists():
            raise SystemExit(f"missing shared data: {path} (set SENSEKIT_SHARED)")
    missing = required_flags(arms)
    if missing:
        raise SystemExit(f"`sensekit distill` lacks {', '.join(missing)}; this benchmark needs them")
    os.environ.setdefault("NLTK_DATA", str(NLTK_DATA))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    (work / "logs").mkdir(parents=True, exist_ok=True)
    stage = Stages()
    report: dict[str, Any] = {
        "benchmark": "kd_vs_dskd",
        "quick": args.quick,
        "argv": sys.argv[1:],
        "command": shlex.join([sys.executable, *sys.argv]),
        "scale": dataclasses.asdict(scale),
        "eval_every": eval_every,
        "arms": {a: ALL_ARMS[a] for a in arms},
        "work": str(work),
        "machine": machine(),
    }
    seeds = list(range(scale.seeds))

    with stage("split"):
        splits = write_splits(CORPUS, work / "data")
    files = splits["files"]
    store = work / "store.sensekit"
    with stage("build store"):
        build = build_store(files["train"], store, scale, work / "logs")
    with stage("leak check"):
        facts = store_facts(store)
        store_id = f"{facts['meta'].get('created_at')}:{facts['meta'].get('corpus_fingerprint')}"
        leaks = leak_check(splits, facts, files["train"])

    import torch

    from sensekit.model.teacher import load_teacher

    with stage("choose student"):
        teacher = load_teacher("smollm2-135m", device="cpu", dtype="float32")
        with torch.inference_mode():
            student = choose_student(teacher, files["dev"], scale, work / "untrained-student")

    runs: list[dict[str, Any]] = []
    with stage("train"):
        for seed in seeds:  # seeds outermost, arms interleaved: drifting machine load hits every arm alike
            for arm in arms:
                run_dir = work / "runs" / f"{arm}-seed{seed}"
                cmd = distill_command(
                    arm, seed, student["chosen"], scale, scale.steps, eval_every, files, store, run_dir
                )
                runs.append(run_arm(arm, seed, cmd, run_dir, work / "prefix-cache", files, store_id))
                recorded = (runs[-1]["student_config"].get("sensekit") or {}).get("teacher_layers")
                if recorded is not None and list(recorded) != parse_layers(student["chosen"]):
                    raise RuntimeError(
                        f"{run_dir}: the student kept teacher layers {recorded}, not {student['chosen']}"
                    )

    reference: dict[str, Any] = {}
    with stage("evaluate"):
        base = student_metrics(teacher, student["untrained_dir"], store, files["test"], scale, store_id)
        reference = {"teacher": base["teacher_flat"], "untrained": base["flat"]}
        for r in runs:
            m = student_metrics(teacher, Path(r["run_dir"]) / "student", store, files["test"], scale, store_id)
            r["metrics"], r["eval_command"], r["eval_seconds"] = m["flat"], m["command"], m["seconds"]
            r["eval_raw"] = m["raw"]
            log(
                f"{r['arm']} seed {r['seed']}: test ppl {m['flat']['ppl']:.2f}, WiC {m['flat']['wic_accuracy']}, "
                f"syn/ant gap {m['flat']['synant_gap']}"
            )
        synant_source = base["raw"]["synant"].get("source")

    with stage("training-window leak check"):
        from distill.data import iter_documents, pack_documents

        held = {
            "dev": dev_windows(teacher, files["dev"], dataclasses.replace(scale, dev_batches=10**6)),
            "test": pack_documents(iter_documents([files["test"]]), teacher.tokenizer, scale.seq_len),
        }
        leaks["training_windows"] = training_windows_check([Path(r["run_dir"]) for r in runs], held)

    with stage("statistics and plots"):
        table, comparisons = aggregate(runs, arms, seeds)
        schedule = schedule_criteria(runs, student["dev_ppl_before"], scale.steps)
        out.parent.mkdir(parents=True, exist_ok=True)
        curves_png, bars_png = out.with_name(out.stem + "-curves.png"), out.with_name(out.stem + "-metrics.png")
        what = (
            f"SmolLM2-135M teacher, student layers {student['chosen']} ({TRAIN_LAYERS} train), "
            f"{scale.steps} steps x {scale.batch_size}x{scale.seq_len} tokens, {len(seeds)} seed(s)"
        )
        plot_curves(
            runs,
            arms,
            student["dev_ppl_before"],
            student["teacher_dev_ppl"],
            curves_png,
            f"dev perplexity during training (band: min-max over seeds)\n{what}",
        )
        plot_bars(
            table,
            arms,
            reference,
            bars_png,
            f"test-split metrics, mean +- std over seeds (dots: seeds; "
            f"quality axes zoomed, bars do not start at 0)\n{what}",
        )

    report.update(
        {
            "data": {k: v for k, v in splits.items()},
            "store": {
                "path": str(store),
                "build": build,
                "meta": facts["meta"],
                "counts": facts["counts"],
                "context_docs": len(facts["context_doc_ids"]),
            },
            "leak_check": leaks,
            "student": student,
            "teacher_test": reference["teacher"],
            "untrained_student_test": reference["untrained"],
            "synant_pairs": synant_source,
            "runs": [{k: v for k, v in r.items() if k != "eval_raw"} for r in runs],
            "eval_raw": {f"{r['arm']}-seed{r['seed']}": r["eval_raw"] for r in runs} | {"untrained": base["raw"]},
            "metrics": table,
            "comparisons": comparisons,
            "schedule": schedule,
            "commands": {
                "benchmark": shlex.join([sys.executable, *sys.argv]),
                "build": shlex.join(build["command"]),
                "distill": {f"{r['arm']}-seed{r['seed']}": shlex.join(r["command"]) for r in runs},
                "eval_student": {f"{r['arm']}-seed{r['seed']}": shlex.join(r["eval_command"]) for r in runs}
                | {"untrained": shlex.join(base["command"])},
            },
            "plots": {
                "curves": str(curves_png.relative_to(REPO) if curves_png.is_relative_to(REPO) else curves_png),
                "metrics": str(bars_png.relative_to(REPO) if bars_png.is_relative_to(REPO) else bars_png),
            },
            "notes": notes(synant_source),
        }
    )
    report["machine"]["load_average_at_end"] = list(os.getloadavg())
    report["stages_s"] = stage.seconds
    report["stages_cpu_s"] = stage.cpu_seconds
    report["total_s"] = round(time.perf_counter() - t_start, 1)
    out.write_text(json.dumps(report, indent=1, default=str) + "\n", encoding="utf-8")
    print_summary(report, arms, out)
    return report


def notes(synant_source: str | None) -> list[str]:
    return [
        "Splits: dev chooses the student and draws the training curves; test gives every final metric. The "
        "schedule (lr, batch, steps) was set once from two KD-only probes on dev (see FULL in the script) before "
        "any arm was compared; nothing was chosen on test.",
        "The frozen-prefix cache is filled by the first run and shared by the others (identical windows, teacher, "
        "layers); step times come from cached steps (epoch >= 1) that do not follow an evaluation.",
        "Peak memory is each `sensekit distill` child's maximum resident set (wait4 ru_maxrss), weights included.",
        f"Syn/ant pairs: {synant_source}.",
        "t-intervals and bootstrap intervals over seeds are wide with 3 seeds; the bootstrap over n seeds has few "
        "distinct resamples and is given as a cross-check, not as the primary interval.",
    ]


def print_summary(report: dict[str, Any], arms: list[str], out: Path) -> None:
    table = report["metrics"]
    print(
        f"student {report['student']['chosen']}: dev ppl before {report['student']['dev_ppl_before']:.1f}, "
        f"teacher {report['student']['teacher_dev_ppl']:.2f}"
    )
    keys = [*METRICS, *COST]
    print("metric".ljust(34) + "".join(ARM_LABELS[a].rjust(22) for a in arms))
    for k in keys:
        cells = []
        for a in arms:
            d = table[a][k]
            cells.append("-" if d["mean"] is None else f"{d['mean']:.4g}" + (f" +- {d['std']:.2g}" if d["std"] else ""))
        print({**METRICS, **COST}[k][0][:33].ljust(34) + "".join(c.rjust(22) for c in cells))
    for name, comp in report["comparisons"].items():
        for k in ("ppl", "ce", "wic_accuracy", "synant_gap"):
            c = comp[k]
            ci = "" if c["t_ci95"] is None else f" 95% t [{c['t_ci95'][0]:+.4g}, {c['t_ci95'][1]:+.4g}]"
            mean = "-" if c["mean"] is None else f"{c['mean']:+.4g}"
            print(f"{name} {k}: {mean}{ci} ({c['verdict']})")
    s = report["schedule"]
    print(f"schedule: KD fell >= {FALL_FACTOR:g}x: {s['kd_fell_enough']}; flattened: {s['kd_flattened']}")
    print(f"stages (s): {report['stages_s']}; total {report['total_s']:.0f} s; wrote {out}")


if __name__ == "__main__":
    main()
