"""Word sense disambiguation on WordNet's held-out example sentences: which synset is this occurrence?

The items are the held-out occurrences of `wordnet_pairs.heldout_occurrences` (a one-word lemma of a
synset inside one of that synset's example sentences that the default corpus never reads), kept when
the lemma is ambiguous: two or more synsets of the example's part of speech (adjective satellites
count as adjectives). The candidates are those synsets in WordNet's order; the answer is the
example's own synset. Items split into dev and test halves by the lemma (`halves`), so nothing
chosen on dev saw a test word.

Methods, each scored on both halves:
- `first sense`: WordNet's first candidate (its SemCor-frequency order);
- `random`: the expected accuracy of a uniform choice, the mean of 1/candidates;
- `gloss prototypes`: each candidate's prototype is the lemma's state in a sentence made from the
  synset's definition (`sensekit.model.occurrence.gloss_states`); the occurrence goes to the
  candidate with the highest z-scored cosine, plus `prior_weight` x log(1 + the lemma's SemCor count
  in that synset); the weight is chosen on the dev half;
- a store disambiguator, when one is registered in `DISAMBIGUATORS` (`annotate`'s): any callable
  `disambiguate(sentences, starts, ends, candidates) -> predict`, `predict(prior_weight) -> [synset name]`
  over a batch; scored without its prior (weight 0) and with the weight of `STORE_PRIOR_WEIGHTS` that is
  best on the dev half (`NAME_prior`).

States: the store's lexical layer and representation (`StoreRun.occurrence_states`); a store without
a lexical view uses the `auto` layer of its teacher and the default representation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional, Sequence

import numpy as np

from .registry import Headline, Skip, StoreMetric, fmt, num, register

if TYPE_CHECKING:
    from .run import StoreRun

__all__ = [
    "WsdItems",
    "wsd_items",
    "Disambiguate",
    "DISAMBIGUATORS",
    "GlossPrototypes",
    "segment_argmax",
    "accuracy_by_half",
    "PRIOR_WEIGHTS",
]

_POS = {"s": "a"}  # WordNet's adjective satellites are adjectives for the candidates
PRIOR_WEIGHTS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2)  # the dev grid of the log-count prior's weight

STORE_PRIOR_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)  # a store disambiguator's prior weights (its logit units)
# disambiguate(sentences, starts, ends, candidates) -> predict(prior_weight) -> the chosen synset of each item
Disambiguate = Callable[
    [Sequence[str], np.ndarray, np.ndarray, Sequence[Sequence[str]]], Callable[[float], Sequence[str]]
]
# name -> factory(run) -> Disambiguate; a factory raises Skip when the store cannot disambiguate
DISAMBIGUATORS: dict[str, Callable[["StoreRun"], Disambiguate]] = {}


@dataclass
class WsdItems:
    words: list[str]  # [N] the lemma
    sentences: list[str]  # [N] the held-out example
    starts: np.ndarray  # [N] int64 char span of the lemma's occurrence
    ends: np.ndarray
    gold: list[str]  # [N] the example's synset
    candidates: list[list[str]]  # [N][k_i] the lemma's synsets of that part of speech, WordNet order
    counts: list[list[int]]  # [N][k_i] the lemma's SemCor count in each candidate (WordNet's cntlist)
    dev: np.ndarray  # [N] bool, the dev half (by lemma)

    def __len__(self) -> int:
        return len(self.words)


def wsd_items(synset_rows, wn, share: float, limit: Optional[int] = None, seed: int = 0) -> WsdItems:
    """The ambiguous held-out occurrences (module docstring); `limit`: a seeded sample of that many."""
    from .halves import dev_mask
    from .wordnet_pairs import heldout_occurrences

    occ = heldout_occurrences(synset_rows, wn, share)
    keep, cands, counts = [], [], []
    cache: dict[tuple[str, str], tuple[list[str], list[int]]] = {}
    for i, (word, gold) in enumerate(zip(occ.word, occ.synset)):  # per occurrence (thousands), WordNet look-ups
        pos = gold.split(".")[-2]
        key = (word, _POS.get(pos, pos))
        if key not in cache:
            syns = wn.synsets(word, pos=key[1])
            cache[key] = (
                [s.name() for s in syns],
                [sum(lem.count() for lem in s.lemmas() if lem.name().lower() == word) for s in syns],
            )
        names, cnt = cache[key]
        if len(names) >= 2 and gold in names:
            keep.append(i)
            cands.append(names)
            counts.append(cnt)
    if limit is not None and len(keep) > limit:
        pick = np.sort(np.random.default_rng(seed).choice(len(keep), limit, replace=False))
        keep, cands, counts = [keep[j] for j in pick], [cands[j] for j in pick], [counts[j] for j in pick]
    words = [occ.word[i] for i in keep]
    return WsdItems(
        words,
        [occ.sentence[i] for i in keep],
        np.asarray([occ.start[i] for i in keep], np.int64),
        np.asarray([occ.end[i] for i in keep], np.int64),
        [occ.synset[i] for i in keep],
        cands,
        counts,
        dev_mask(words),
    )


def segment_argmax(scores: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """[sum k] scores in consecutive segments of `lengths` -> [n] the index of each segment's maximum within it."""
    lengths = np.asarray(lengths, np.int64)
    owner = np.repeat(np.arange(len(lengths)), lengths)  # [sum k]
    order = np.lexsort((-scores, owner))  # per segment, best first
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return order[starts] - starts


def accuracy_by_half(pred: Sequence[str], items: WsdItems) -> dict:
    """{"dev": accuracy, "test": accuracy} of predicted synset names."""
    hit = np.asarray([p == g for p, g in zip(pred, items.gold)], bool)
    return {h: num(hit[m].mean()) if m.any() else None for h, m in (("dev", items.dev), ("test", ~items.dev))}


class GlossPrototypes:
    """Gloss-prototype disambiguation (module docstring): candidates scored by z-scored cosine plus a log prior."""

    def __init__(self, teacher, wn, layer: Optional[int], representation: str, template: str, batch_tokens: int):
        self.teacher, self.wn, self.layer = teacher, wn, layer
        self.representation, self.template, self.batch_tokens = representation, template, batch_tokens

    def scores(self, items: WsdItems) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """-> (cosine [sum k] z-scored, log prior [sum k], lengths [N]); items without a state score 0."""
        from ..model.occurrence import gloss_states, occurrence_states

        q, ok = occurrence_states(
            self.teacher,
            items.sentences,
            items.starts,
            items.ends,
            self.layer,
            self.representation,
            tokens_per_batch=self.batch_tokens,
        )  # [N, d]
        pairs = sorted({(s, w) for c, w in zip(items.candidates, items.words) for s in c})  # (synset, lemma)
        index = {p: j for j, p in enumerate(pairs)}
        defs = [self.wn.synset(s).definition() for s, _ in pairs]
        proto, _ = gloss_states(
            self.teacher,
            defs,
            [w for _, w in pairs],
            self.layer,
            self.representation,
            self.template,
            tokens_per_batch=self.batch_tokens,
        )  # [M, d]
        # z-scoring statistics from the prototypes and the dev half's states: nothing from the test half
        fit = np.concatenate([proto, q[ok & items.dev]]).astype(np.float64)
        mean, std = fit.mean(0), np.maximum(fit.std(0), 1e-6)
        qz, pz = _unit((q - mean) / std), _unit((proto - mean) / std)
        lengths = np.asarray([len(c) for c in items.candidates], np.int64)
        owner = np.repeat(np.arange(len(items)), lengths)  # [sum k]
        flat = np.asarray([index[(s, w)] for c, w in zip(items.candidates, items.words) for s in c], np.int64)
        cos = (qz[owner] * pz[flat]).sum(1) * ok[owner]  # [sum k]
        prior = np.log1p(np.asarray([n for c in items.counts for n in c], np.float64))
        return cos, prior, lengths

    def predict(self, items: WsdItems, cos, prior, lengths, weight: float) -> list[str]:
        best = segment_argmax(cos + weight * prior, lengths)
        return [c[b] for c, b in zip(items.candidates, best)]


def _subset(items: WsdItems, keep: np.ndarray) -> WsdItems:
    """The items where `keep` [N] is true (the fields accuracy_by_half reads)."""
    pick = np.flatnonzero(keep)
    return WsdItems(
        [items.words[i] for i in pick],
        [items.sentences[i] for i in pick],
        items.starts[pick],
        items.ends[pick],
        [items.gold[i] for i in pick],
        [items.candidates[i] for i in pick],
        [items.counts[i] for i in pick],
        items.dev[pick],
    )


def store_method_scores(name: str, chosen: dict[float, list], items: WsdItems, gloss: list[str]) -> dict:
    """A store disambiguator's rows: `chosen` maps each prior weight to its [N] picks (None where the store
    names no candidate), `gloss` is [N] the gloss prototypes' picks at their dev-chosen weight.

    - NAME: its picks, WordNet's first sense where it has none, without the prior;
    - NAME_prior: the same at the prior weight best on dev (ties: the smaller weight);
    - NAME_covered: only the items it names a candidate of, where NAME, NAME_prior, the first sense and
      the gloss prototypes are compared on the same items (coverage, not skill, is what the first two mix)."""
    first = [c[0] for c in items.candidates]
    by_weight = {w: accuracy_by_half([p or f for p, f in zip(picks, first)], items) for w, picks in chosen.items()}
    weight = max(chosen, key=lambda w: (by_weight[w]["dev"] or 0.0, -w))
    covered = np.asarray([p is not None for p in chosen[min(chosen)]], bool)  # [N] the same for every weight
    sub = _subset(items, covered)

    def on_covered(picks: list) -> dict:
        return accuracy_by_half([p for p, c in zip(picks, covered) if c], sub)

    return {
        name: by_weight[min(chosen)],
        f"{name}_prior": {**by_weight[weight], "prior_weight": weight},
        f"{name}_covered": {
            "items": {"dev": int((covered & items.dev).sum()), "test": int((covered & ~items.dev).sum())},
            name: on_covered(chosen[min(chosen)]),
            f"{name}_prior": on_covered(chosen[weight]),
            "first_sense": on_covered(first),
            "gloss_prototypes_prior": on_covered(gloss),
        },
    }


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


# -- the registered store metric ------------------------------------------------------------
def _compute(run: "StoreRun") -> dict:
    from ..builder.wordnet_corpus import wordnet_synsets
    from ..model.occurrence import DEFAULT_GLOSS_TEMPLATE

    wn = run.wordnet()
    teacher = run.teacher()
    items = wsd_items(wordnet_synsets(run.cfg.wordnet), wn, run.heldout_share, run.cfg.limit, run.cfg.seed)
    if not len(items) or items.dev.all() or not items.dev.any():
        raise Skip("this WordNet has no held-out examples of ambiguous lemmas on both halves")
    layer, representation = run.occurrence_setting()
    gloss = GlossPrototypes(teacher, wn, layer, representation, DEFAULT_GLOSS_TEMPLATE, run.cfg.batch_tokens)
    cos, prior, lengths = gloss.scores(items)
    # the prior's weight: the best on the dev half (ties: the smaller weight)
    by_weight = {w: accuracy_by_half(gloss.predict(items, cos, prior, lengths, w), items) for w in PRIOR_WEIGHTS}
    gloss_weight = max(PRIOR_WEIGHTS, key=lambda w: (by_weight[w]["dev"] or 0.0, -w))
    methods = {
        "gloss_prototypes": by_weight[0.0],
        "gloss_prototypes_prior": {**by_weight[gloss_weight], "prior_weight": gloss_weight},
        "first_sense": accuracy_by_half([c[0] for c in items.candidates], items),
        "random": {
            h: num(np.mean([1 / len(c) for c, d in zip(items.candidates, items.dev) if d == (h == "dev")]))
            for h in ("dev", "test")
        },
    }
    for name, factory in DISAMBIGUATORS.items():
        try:
            predict = factory(run)(items.sentences, items.starts, items.ends, items.candidates)
        except Skip as exc:
            methods[name] = {"status": "skipped", "reason": str(exc)}
            continue
        chosen = {w: list(predict(w)) for w in STORE_PRIOR_WEIGHTS}  # None: the store names no candidate
        methods.update(
            store_method_scores(name, chosen, items, gloss.predict(items, cos, prior, lengths, gloss_weight))
        )
    return {
        "status": "ok",
        "methods": methods,
        "occurrences": {"dev": int(items.dev.sum()), "test": int((~items.dev).sum()), "all": len(items)},
        "lemmas": len(set(items.words)),
        "candidates_mean": num(np.mean(lengths)),
        "layer": layer,
        "representation": representation,
        "gloss_template": DEFAULT_GLOSS_TEMPLATE,
        "data": f"WordNet example sentences held out of the default corpus (share {run.heldout_share:g}), "
        "ambiguous lemmas",
        "note": (
            "synset accuracy; candidates: the lemma's WordNet synsets of the example's part of speech; dev and "
            "test halves by a hash of the lemma; the prior's weight (log SemCor count) chosen on dev"
        ),
    }


def _rows(w: dict) -> list[tuple[str, str, str, str]]:
    m = w["methods"]
    occ = w["occurrences"]
    cov = f"{occ['dev']:,} / {occ['test']:,} occurrences (dev / test)"
    base = (
        f"first sense {fmt(m['first_sense']['test'])}; random {fmt(m['random']['test'])} "
        f"(dev {fmt(m['first_sense']['dev'])} / {fmt(m['random']['dev'])})"
    )
    rows = []
    names = [n for n in m if n not in ("first_sense", "random")]
    labels = {
        "gloss_prototypes": "WSD, held-out WordNet examples: gloss prototypes (test / dev)",
        "gloss_prototypes_prior": "WSD: gloss prototypes + log-count prior (test / dev)",
    }
    for name in names:
        e = m[name]
        label = labels.get(name, f"WSD: {name} (test / dev)")
        if name.endswith("_covered"):  # the items the store names a candidate of: each method there
            store = name[: -len("_covered")]
            rows.append(
                (
                    f"  where {store} names a candidate: {store} / + prior (test)",
                    f"{fmt(e[store]['test'])} / {fmt(e[store + '_prior']['test'])}",
                    f"first sense {fmt(e['first_sense']['test'])}; gloss prototypes + prior "
                    f"{fmt(e['gloss_prototypes_prior']['test'])}",
                    f"{e['items']['dev']:,} / {e['items']['test']:,} occurrences (dev / test)",
                )
            )
            continue
        if e.get("status") == "skipped":
            rows.append((label, "skipped", e.get("reason", ""), "-"))
            continue
        extra = f", weight {e['prior_weight']:g}" if "prior_weight" in e else ""
        rows.append((label, f"{fmt(e['test'])} / {fmt(e['dev'])}", base + extra, cov))
    return rows


def _headline(w: dict) -> list[Headline]:
    m = w["methods"]
    store = [f"{n}_prior" for n in DISAMBIGUATORS]  # a store's own answer, its prior weight chosen on dev
    best = next((n for n in store if m.get(n, {}).get("test") is not None), "gloss_prototypes_prior")
    return [
        Headline(
            f"WSD accuracy ({best}, test half)", m[best]["test"], m["first_sense"]["test"], "first sense", w["data"]
        )
    ]


register(StoreMetric("wsd", "WSD (WordNet held-out examples)", _compute, _rows, _headline))


def _annotate_disambiguator(run: "StoreRun") -> Disambiguate:
    """`sensekit annotate` as a disambiguator: the occurrence's sense probabilities (the store's lexical view;
    the prior: WordNet's SemCor counts), summed per linked synset; the candidate with the most wins. An
    occurrence none of whose senses links to a candidate falls back to WordNet's first sense (the share of
    such items is what linking leaves out)."""
    annotator = run.annotator()

    def disambiguate(sentences, starts, ends, candidates):
        occ, _ = annotator.occurrences(list(sentences), list(zip(starts, ends)))  # the item's word alone
        hits = [
            next((o for o in words if o.start < b and o.end > a), None)
            for words, a, b in zip(occ, starts, ends)  # per item: its annotated word
        ]

        def predict(prior_weight: float) -> list[str]:
            out = []
            for hit, cands in zip(hits, candidates):  # per item: a dictionary over its senses
                mass = {c: 0.0 for c in cands}
                if hit is not None:
                    for syn, p in zip(hit.synsets, hit.rescored(prior_weight)):
                        if syn in mass:
                            mass[syn] += float(p)
                best = max(cands, key=lambda c: mass[c])
                out.append(best if mass[best] > 0 else None)  # None: no sense of the word names a candidate
            return out

        return predict

    return disambiguate


DISAMBIGUATORS["annotate"] = _annotate_disambiguator
