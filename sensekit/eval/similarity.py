"""Word similarity from senses: Spearman correlation with human ratings (SimLex-999, WordSim-353).

A pair file has one pair per line: `word1 word2 score`, separated by tabs (or spaces), `#`
comments, and an optional header line whose score column is not a number. Three scores per
pair, over the two words' sense sets A and B (cosine in the chosen space):
- MaxSim: the largest cosine over all pairs (a, b);
- AvgSim: the mean cosine over all pairs;
- centroid: the cosine of the two mean sense vectors.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError
from .registry import Headline, Skip, StoreMetric, coverage, fmt, fmt_coverage, num, register
from .senses import unit

if TYPE_CHECKING:
    from .run import StoreRun

__all__ = ["read_pairs", "pair_similarities", "spearman", "SIMILARITIES"]

SIMILARITIES = ("maxsim", "avgsim", "centroid")


def read_pairs(path: str | Path, limit: int | None = None) -> tuple[list[str], list[str], np.ndarray]:
    """-> (words1, words2, gold [N] float64). Raises InputError for a malformed line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"word-similarity file {path} does not exist; pass a file of 'word1<TAB>word2<TAB>score' lines"
        )
    w1, w2, gold = [], [], []
    seen_data = False
    with path.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            if limit is not None and len(gold) >= limit:
                break
            parts = text.split("\t") if "\t" in text else text.split()
            if len(parts) < 3:
                raise InputError(f"{path}:{i} has {len(parts)} fields; expected 'word1 word2 score'")
            try:
                score = float(parts[2])
            except ValueError:
                if not seen_data:  # a header line ("Word 1  Word 2  Human (mean)")
                    seen_data = True
                    continue
                raise InputError(f"{path}:{i}: score {parts[2]!r} is not a number") from None
            seen_data = True
            w1.append(parts[0].strip())
            w2.append(parts[1].strip())
            gold.append(score)
    if not gold:
        raise InputError(f"word-similarity file {path} holds no pairs")
    return w1, w2, np.asarray(gold, np.float64)


def pair_similarities(a: np.ndarray, mask_a: np.ndarray, b: np.ndarray, mask_b: np.ndarray) -> dict[str, np.ndarray]:
    """Sense sets a [N, K, d], b [N, L, d] with masks [N, K], [N, L] -> {"maxsim", "avgsim", "centroid"}: [N] each.

    Pairs where either side has no sense get NaN.
    """
    ua, ub = unit(a), unit(b)
    cos = np.einsum("nkd,nld->nkl", ua, ub)  # [N, K, L]
    both = mask_a[:, :, None] & mask_b[:, None, :]  # [N, K, L]
    n_pairs = both.sum((1, 2))
    empty = n_pairs == 0
    maxsim = np.where(both, cos, -np.inf).max((1, 2))
    avgsim = np.where(both, cos, 0.0).sum((1, 2)) / np.maximum(n_pairs, 1)
    ca = (a * mask_a[..., None]).sum(1) / np.maximum(mask_a.sum(1, keepdims=True), 1)  # [N, d] mean sense
    cb = (b * mask_b[..., None]).sum(1) / np.maximum(mask_b.sum(1, keepdims=True), 1)
    centroid = (unit(ca) * unit(cb)).sum(1)
    nan = np.float64("nan")
    return {
        "maxsim": np.where(empty, nan, maxsim),
        "avgsim": np.where(empty, nan, avgsim),
        "centroid": np.where(empty, nan, centroid),
    }


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN for fewer than 3 items or a constant side."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


# -- the registered store metric ------------------------------------------------------------
BENCHMARKS = (("simlex999", "simlex"), ("wordsim353", "wordsim"))  # (JSON key, flag)


def _one(run: "StoreRun", path: str) -> dict:
    w1, w2, gold = read_pairs(path, run.cfg.limit)
    t1, t2 = run.single_tokens(w1), run.single_tokens(w2)
    covered = (run.table.n_senses(t1) > 0) & (run.table.n_senses(t2) > 0) & (t1 >= 0) & (t2 >= 0)
    a, ma = run.table.padded(t1[covered], run.to_space)
    b, mb = run.table.padded(t2[covered], run.to_space)
    sims = pair_similarities(a, ma, b, mb)
    out = {
        "status": "ok",
        "file": path,
        "coverage": coverage(int(covered.sum()), len(gold)),
        **{k: num(spearman(sims[k], gold[covered])) for k in SIMILARITIES},
    }
    try:
        emb = run.input_embeddings()
        cos = (unit(emb[t1[covered]]) * unit(emb[t2[covered]])).sum(1)
        out["baseline"] = {
            "method": "cosine of the teacher's input embeddings of the two tokens, same pairs",
            "spearman": num(spearman(cos, gold[covered])),
        }
    except Skip as exc:
        out["baseline"] = {"method": "teacher input embeddings", "spearman": None, "reason": str(exc)}
    return out


def _compute(run: "StoreRun") -> dict:
    out = {}
    for name, flag in BENCHMARKS:
        path = run.cfg.data_file(flag)
        out[name] = _one(run, path) if path else {"status": "skipped", "reason": f"no {name} file: pass --{flag} FILE"}
    if all(v["status"] == "skipped" for v in out.values()):
        raise Skip("no word-similarity file: pass --simlex FILE or --wordsim FILE")
    return {"status": "ok", **out, "note": "pairs whose two words are single tokens with senses; Spearman rho"}


def _rows(entry: dict) -> list[tuple[str, str, str, str]]:
    rows = []
    for name, s in entry.items():
        if not isinstance(s, dict):
            continue
        if s.get("status") == "skipped":
            rows.append((name, "skipped", s.get("reason", ""), "-"))
            continue
        rows.append(
            (
                f"{name} Spearman MaxSim / AvgSim / centroid",
                f"{fmt(s['maxsim'])} / {fmt(s['avgsim'])} / {fmt(s['centroid'])}",
                f"input embeddings {fmt(s['baseline'].get('spearman'))}",
                fmt_coverage(s["coverage"]),
            )
        )
    return rows


def _headline(entry: dict) -> list[Headline]:
    return [
        Headline(f"{name} Spearman (MaxSim)", s["maxsim"], s["baseline"].get("spearman"), "input embeddings", s["file"])
        for name, _ in BENCHMARKS
        if (s := entry.get(name)) and s.get("status") == "ok"
    ]


register(StoreMetric("similarity", "word similarity", _compute, _rows, _headline))
