"""Word in context (WiC, Pilehvar & Camacho-Collados 2019): are two uses of a word the same sense?

The file format is WiC's JSONL: `word`, `sentence1`, `sentence2`, `start1`, `end1`, `start2`,
`end2` (character offsets of the word in each sentence) and `label` (true/false, or 1/0).

Answers scored:
- the store's hard answer: each state goes to its nearest sense of the word's token; "same" when both
  agree (`wic_accuracy`);
- the store's soft answer: `annotate.same_sense_score` (the chance both take the same sense, beside
  their cosine), its weight and threshold fitted like the baseline's threshold (`two_fold`): weight 0
  is the cosine alone, so a fold that prefers it says the senses add nothing there;
- `annotate`'s answers (`annotate_pairs`), on every pair whose word annotate knows: hard, "same" when
  both occurrences' most probable senses are the same synset (or store sense, where unlinked); soft, the
  same score from annotate's sense distributions. These are the senses a user sees: a linked word's
  synset senses, and WordNet's synsets for a word the build did not link (the store's own senses of
  such a word are unnamed clusters, finer than synsets). No prior (annotate's default), nothing fitted
  but the soft score's weight and threshold;
- the baseline: the cosine between the two raw states, with the threshold fitted on one half of
  the pairs and scored on the other (`threshold_baseline`).

The registered `wic` metric scores the WiC-style pairs built from WordNet's held-out example
sentences (`wordnet_pairs`: they need only WordNet, and the default corpus never reads them),
and a WiC file (`--wic`, or the shared data's) beside them when there is one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .items import WicItems, read_wic
from .registry import Headline, Skip, StoreMetric, coverage, fmt, fmt_coverage, num, register

if TYPE_CHECKING:
    from .run import StoreRun

__all__ = ["wic_accuracy", "threshold_baseline", "two_fold", "fit_threshold", "pair_cosines"]

# the soft score's weights on the sense agreement, each fold choosing its own (0: the cosine alone)
SOFT_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def wic_accuracy(assign1: np.ndarray, assign2: np.ndarray, labels: np.ndarray) -> float:
    """Share of pairs where "same nearest sense" equals the label. assign*: [N] sense indices, labels [N] bool."""
    same = np.asarray(assign1) == np.asarray(assign2)
    labels = np.asarray(labels, bool)
    return float(np.mean(same == labels)) if len(labels) else float("nan")


def pair_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of a [N, d] and b [N, d] -> [N]."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(1) / np.maximum(den, 1e-12)


def fit_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold t maximising accuracy of "same iff score >= t" on (scores, labels).

    Candidates are the midpoints between sorted scores plus both ends, scored at once with cumulative sums.
    """
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels, bool)
    order = np.argsort(s, kind="stable")
    s, y = s[order], y[order]
    cand = np.concatenate([[s[0] - 1.0], (s[1:] + s[:-1]) / 2, [s[-1] + 1.0]]) if len(s) else np.zeros(1)
    # threshold cand[j] puts the first j sorted items below (answer "different"), the rest at or above ("same")
    neg_below = np.concatenate([[0], np.cumsum(~y)])  # [N + 1] true "different" below
    pos_above = np.concatenate([[0], np.cumsum(y[::-1])])[::-1]  # [N + 1] true "same" at or above
    correct = neg_below + pos_above
    return float(cand[int(np.argmax(correct))])


def threshold_baseline(scores: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict:
    """Cosine-threshold WiC: fit on a random half, score the other half; then the reverse, averaged.

    -> {"accuracy", "threshold" (fitted on the first half), "fit", "scored"}. Both halves are used
    for scoring (two-fold), so every pair is scored once by a threshold that never saw it.
    """
    out = two_fold({None: scores}, labels, seed)
    del out["chosen"]
    return out


def two_fold(candidates: dict, labels: np.ndarray, seed: int = 0) -> dict:
    """`threshold_baseline` over several scorings of the same pairs: on each fitting half, the candidate
    (key -> [N] scores) whose fitted threshold is most accurate there (ties: the first key), then its
    threshold, score the other half. -> {"accuracy", "threshold", "chosen" (per fold), "fit", "scored"}."""
    y = np.asarray(labels, bool)
    n = len(y)
    if n < 2:
        return {"accuracy": float("nan"), "threshold": float("nan"), "chosen": [], "fit": 0, "scored": 0}
    perm = np.random.default_rng(seed).permutation(n)
    a, b = perm[: n // 2], perm[n // 2 :]
    correct, thresholds, chosen = 0, [], []
    for fit, score in ((a, b), (b, a)):
        best = None  # (fit accuracy, key, threshold)
        for key, scores in candidates.items():  # a handful of candidates
            s = np.asarray(scores, np.float64)
            t = fit_threshold(s[fit], y[fit])
            acc = float(((s[fit] >= t) == y[fit]).mean())
            if best is None or acc > best[0]:
                best = (acc, key, t)
        _, key, t = best
        s = np.asarray(candidates[key], np.float64)
        thresholds.append(t)
        chosen.append(key)
        correct += int(((s[score] >= t) == y[score]).sum())
    return {"accuracy": correct / n, "threshold": thresholds[0], "chosen": chosen, "fit": len(a), "scored": n}


# -- the registered store metric ------------------------------------------------------------
def score_pairs(run: "StoreRun", items: WicItems) -> dict:
    """The store's answers on WiC-style pairs beside the cosine threshold on the two raw states, with
    coverage and the build's --min-context subset:

    - hard: do the two states' nearest senses agree? (a word with one sense: always "same");
    - soft: `annotate.same_sense_score` of the two sense distributions and the states' cosine, with a
      threshold fitted the way the baseline's is (two-fold).

    Only the pairs the store can score (the word is one token with senses) go through the teacher: on
    a small store most pairs are not, and the states are the cost."""
    from ..annotate import DEFAULT_TEMPERATURE, same_sense_score

    run.teacher()
    tokens = run.single_tokens(items.words)
    n_senses = run.table.n_senses(tokens)
    cand = np.nonzero((tokens >= 0) & (n_senses >= 1))[0]  # [C] the pairs the store could score

    def side(sentences: list[str], spans: np.ndarray):
        return [sentences[i] for i in cand], spans[cand, 0], spans[cand, 1]

    s1, ok1 = run.states(*side(items.sentences1, items.spans1))  # [C, d], [C]
    s2, ok2 = run.states(*side(items.sentences2, items.spans2))
    both = ok1 & ok2
    rows = cand[both]  # the scored pairs, in file order
    t = tokens[rows]
    a1 = run.table.nearest(s1[both], t, run.to_space)
    a2 = run.table.nearest(s2[both], t, run.to_space)
    y = items.labels[rows]
    cos = pair_cosines(run.to_space(s1[both]), run.to_space(s2[both]))  # [scored]
    base = threshold_baseline(cos, y, run.cfg.seed)
    p1 = run.table.probabilities(s1[both], t, run.to_space, DEFAULT_TEMPERATURE)  # [scored, K]
    p2 = run.table.probabilities(s2[both], t, run.to_space, DEFAULT_TEMPERATURE)
    p_same = (p1 * p2).sum(1)  # [scored] the chance both take the same sense
    soft = two_fold({w: same_sense_score(p_same, cos, w) for w in SOFT_WEIGHTS}, y, run.cfg.seed)
    multi = n_senses[rows] >= 2  # [scored] the words with a choice to make
    # the pairs whose two states meet the build's --min-context: the states the store's senses are made of
    ctx = (
        run.in_store_context(*side(items.sentences1, items.spans1))
        & run.in_store_context(*side(items.sentences2, items.spans2))
    )[both]
    return {
        "status": "ok",
        "annotate": annotate_pairs(run, items),
        "state": run.key_mode,
        "accuracy": num(wic_accuracy(a1, a2, y)),
        "coverage": coverage(len(rows), len(items)),
        "soft": {
            "method": "same_sense_score (annotate): w x P(same sense) + (1 - w) x (cosine + 1) / 2; w and the "
            "threshold fitted on one half, scored on the other (two-fold); w 0 is the cosine alone",
            "accuracy": num(soft["accuracy"]),
            "threshold": num(soft["threshold"]),
            "weight_per_fold": soft["chosen"],
        },
        "multi_sense": {"pairs": int(multi.sum()), "accuracy": num(wic_accuracy(a1[multi], a2[multi], y[multi]))},
        "baseline": {
            "method": "cosine of the two raw states, threshold fitted on one half, scored on the other (two-fold)",
            "accuracy": num(base["accuracy"]),
            "threshold": num(base["threshold"]),
        },
        "majority_class": num(max(y.mean(), 1 - y.mean())) if len(y) else None,
        "same_sense_rate": num(np.mean(a1 == a2)) if len(y) else None,
        "in_store_context": {
            "min_context": run.min_context,
            "pairs": int(ctx.sum()),
            "accuracy": num(wic_accuracy(a1[ctx], a2[ctx], y[ctx])),
            "baseline_accuracy": num(threshold_baseline(cos[ctx], y[ctx], run.cfg.seed)["accuracy"]),
        },
        "excluded": {
            "word_not_one_token": int((tokens < 0).sum()),
            "no_senses": int(((tokens >= 0) & (n_senses < 1)).sum()),
            "no_state": int((~both).sum()),
        },
        "note": (
            "pairs whose word is one token with senses (multi_sense: with >= 2); the sense inventory is the "
            "lemma's token "
            "(' ' + word), the state is taken from the sentence as written (the word may be inflected); "
            "with key=next a word that opens its sentence has no state; in_store_context: the pairs whose "
            "states have read at least the build's min_context tokens"
        ),
    }


def annotate_pairs(run: "StoreRun", items: WicItems) -> dict:
    """`annotate`'s hard and soft answers on the pairs (module docstring), beside the cosine threshold on
    the same pairs' states (the lexical view's space). Skipped for a store annotate cannot read, and on
    other views than the lexical one (annotate reads that view whatever the run's view)."""
    from ..annotate import cosine, same_best, same_sense_score, sense_agreement

    if run.view_name != "lexical":
        return {"status": "skipped", "reason": f"annotate reads the lexical view; this run reads {run.view_name}"}
    try:
        annotator = run.annotator()
    except Skip as exc:
        return {"status": "skipped", "reason": str(exc)}

    def side(sentences: list[str], spans: np.ndarray) -> list:
        occ, _ = annotator.occurrences(sentences, [tuple(map(int, s)) for s in spans])  # the pair's word alone
        return [words[0] if words else None for words in occ]

    o1, o2 = side(items.sentences1, items.spans1), side(items.sentences2, items.spans2)
    rows = [i for i, (a, b) in enumerate(zip(o1, o2)) if a is not None and b is not None]  # per pair
    y = items.labels[rows]
    hard = np.asarray([same_best(o1[i], o2[i]) for i in rows], bool)  # [scored]
    p_same = np.asarray([sense_agreement(o1[i], o2[i]) for i in rows])
    cos = np.asarray([cosine(o1[i], o2[i]) for i in rows])
    soft = two_fold({w: same_sense_score(p_same, cos, w) for w in SOFT_WEIGHTS}, y, run.cfg.seed)
    named = np.asarray([o1[i].sense_ids[0] < 0 for i in rows], bool)  # the word's candidates came from WordNet
    return {
        "status": "ok",
        "accuracy": num(float(np.mean(hard == y)) if len(y) else float("nan")),
        "coverage": coverage(len(rows), len(items)),
        "soft": {"accuracy": num(soft["accuracy"]), "weight_per_fold": soft["chosen"]},
        "baseline": {"accuracy": num(threshold_baseline(cos, y, run.cfg.seed)["accuracy"])},
        "same_sense_rate": num(float(hard.mean())) if len(y) else None,
        "named_from_wordnet": num(float(named.mean())) if len(y) else None,
        "note": "annotate's senses (prior weight 0): 'same' when both most probable senses are one synset (or "
        "store sense); soft: same_sense_score of annotate's distributions, fitted two-fold; named_from_wordnet: "
        "the share of pairs whose word annotate named from WordNet (the build did not link it)",
    }


NO_FILE = "no WiC file: pass --wic FILE (WiC JSONL)"


def _compute(run: "StoreRun") -> dict:
    """The WordNet held-out pairs first (they need only WordNet); a WiC file beside them when there is one."""
    path = run.cfg.data_file("wic")
    wic_file = {"status": "skipped", "reason": NO_FILE}
    if path is not None:
        wic_file = {**score_pairs(run, read_wic(path, run.cfg.limit)), "file": path}
    try:
        pairs = run.heldout_pairs()
    except Skip as exc:
        if path is None:
            raise Skip(f"{exc}; and {NO_FILE}") from None
        return {**wic_file, "data": "wic-file", "wordnet_heldout": {"status": "skipped", "reason": str(exc)}}
    out = {**score_pairs(run, pairs.items), "data": "wordnet-heldout", "pair_set": pairs.info}
    out["wic_file"] = wic_file
    return out


def _rows(w: dict) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    parts = [(w, "WordNet held-out pairs" if w.get("data") == "wordnet-heldout" else "WiC file")]
    if isinstance(w.get("wic_file"), dict):
        parts.append((w["wic_file"], "WiC file"))
    for entry, data in parts:
        if entry.get("status") == "skipped":
            rows.append((f"WiC accuracy, {data}", "skipped", entry.get("reason", ""), "-"))
            continue
        rows.append(
            (
                f"WiC accuracy, {data} (nearest sense, state={entry['state']})",
                fmt(entry["accuracy"]),
                f"cosine threshold {fmt(entry['baseline']['accuracy'])}; majority {fmt(entry['majority_class'])}",
                fmt_coverage(entry["coverage"]),
            )
        )
        rows.append(
            (
                f"  {data}, soft same-sense score (weight and threshold fitted two-fold)",
                fmt(entry["soft"]["accuracy"]),
                f"cosine threshold {fmt(entry['baseline']['accuracy'])}",
                fmt_coverage(entry["coverage"]),
            )
        )
        a = entry.get("annotate") or {}
        if a.get("status") == "ok":
            for label, value in (("hard", a["accuracy"]), ("soft (fitted two-fold)", a["soft"]["accuracy"])):
                rows.append(
                    (
                        f"  {data}, annotate's senses, {label}",
                        fmt(value),
                        f"cosine threshold {fmt(a['baseline']['accuracy'])}, same pairs",
                        fmt_coverage(a["coverage"]),
                    )
                )
        c = entry.get("in_store_context")
        if c and c["min_context"]:
            rows.append(
                (
                    f"  {data}, states with >= {c['min_context']} tokens read (the build's rule)",
                    fmt(c["accuracy"]),
                    f"cosine threshold {fmt(c['baseline_accuracy'])}",
                    f"{c['pairs']} pairs",
                )
            )
    return rows


def _headline(w: dict) -> list[Headline]:
    out = []
    for entry in (w, w.get("wic_file")):
        if isinstance(entry, dict) and entry.get("status") == "ok":
            data = (
                f"WordNet held-out pairs (share {entry['pair_set']['share']}, seed {entry['pair_set']['seed']})"
                if entry.get("data") == "wordnet-heldout"
                else f"WiC file {entry['file']}"
            )
            out.append(
                Headline("WiC accuracy", entry["accuracy"], entry["baseline"]["accuracy"], "cosine threshold", data)
            )
            a = entry.get("annotate") or {}
            if a.get("status") == "ok":
                out.append(
                    Headline(
                        "WiC accuracy, annotate's senses",
                        a["accuracy"],
                        a["baseline"]["accuracy"],
                        "cosine threshold",
                        data,
                    )
                )
    return out


register(StoreMetric("wic", "WiC accuracy", _compute, _rows, _headline))
