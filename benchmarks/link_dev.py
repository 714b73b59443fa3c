"""Choices of sense linking on dev data (docs/lexical.md, "Senses with names"): the gloss template, how a
prototype combines examples and gloss, the assignment threshold, and the annotate prior.

    python benchmarks/link_dev.py [--half dev|test] [--lemmas 150] [--layer 9] [--out FILE]

Data: WordNet's held-out example sentences (the default corpus never reads them), one occurrence per
(lemma, sentence) found as eval finds them, for lemmas with >= 2 synsets; halves by a stable hash of
the lemma (sha1, first byte even = dev); `--lemmas` of them, seeded. Each occurrence's candidates are
its lemma's synsets (`wn.synsets(lemma)`), each with a prototype built as the build builds it
(`builder.prototypes.link_items`: tagged examples not held out, else the gloss template). Scores:
synset accuracy of the nearest prototype (z-scored cosine; the z-scoring's mean and std from the
occurrences themselves), beside WordNet's first sense and random; then, for the threshold, the share of
occurrences linked and the accuracy of those linked at each threshold.
"""

from __future__ import annotations

import argparse
import hashlib
import time

from common import RESULTS, log, passive_omp, write_json

passive_omp()

import numpy as np  # noqa: E402


def half_of(text: str) -> str:
    return "dev" if hashlib.sha1(text.encode()).digest()[0] % 2 == 0 else "test"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--half", default="dev")
    ap.add_argument("--lemmas", type=int, default=150)
    ap.add_argument("--layer", type=int, default=9)
    ap.add_argument("--representation", default="repeat")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--templates", default=None, help="comma-separated gloss templates (default: all)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from sensekit.builder import link as L
    from sensekit.builder import wordnet_corpus as W
    from sensekit.builder.prototypes import link_items
    from sensekit.eval.wordnet_pairs import heldout_occurrences
    from sensekit.model.occurrence import GLOSS_TEMPLATES, occurrence_states
    from sensekit.model.teacher import load_teacher

    wn = W.open_wordnet_for_link()
    occ = heldout_occurrences(W.wordnet_synsets(), wn, W.HELDOUT_SHARE)
    lemmas = sorted({w for w in occ.word if half_of(w) == args.half and len(wn.synsets(w)) >= 2})
    rng = np.random.default_rng(args.seed)
    lemmas = sorted(rng.choice(lemmas, min(args.lemmas, len(lemmas)), replace=False).tolist())
    keep = [i for i, w in enumerate(occ.word) if w in set(lemmas)]
    log(f"{len(lemmas)} lemmas, {len(keep)} held-out occurrences ({args.half})")
    teacher = load_teacher()
    t0 = time.perf_counter()
    q, ok = occurrence_states(
        teacher,
        [occ.sentence[i] for i in keep],
        [occ.start[i] for i in keep],
        [occ.end[i] for i in keep],
        args.layer,
        args.representation,
    )
    log(f"occurrences: {time.perf_counter() - t0:.1f} s")
    mean, std = q[ok].mean(0), q[ok].std(0) + 1e-6
    gold = [occ.synset[i] for i in keep]
    words = [occ.word[i] for i in keep]
    results = {"half": args.half, "lemmas": len(lemmas), "occurrences": len(keep), "layer": args.layer}

    first = np.mean([wn.synsets(w)[0].name() == g for w, g in zip(words, gold)])
    rand = np.mean([1 / len(wn.synsets(w)) for w in words])
    results["first_sense"], results["random"] = float(first), float(rand)

    states_cache: dict = {}

    def states_of(texts, starts, ends):
        need = [(t, a, b) for t, a, b in zip(texts, starts, ends) if (t, a, b) not in states_cache]
        if need:
            s, k = occurrence_states(
                teacher,
                [n[0] for n in need],
                [n[1] for n in need],
                [n[2] for n in need],
                args.layer,
                args.representation,
            )
            for n, v, o in zip(need, s, k):
                states_cache[n] = v if o else None
        return [states_cache[(t, a, b)] for t, a, b in zip(texts, starts, ends)]

    def score(template: str, combine: str) -> dict:
        """combine: 'either' (examples, else gloss: the build's rule), 'both' (their mean), 'gloss' (gloss only)."""
        items = link_items(lemmas, wn, W.HELDOUT_SHARE, template)
        gloss_items = link_items_glosses(lemmas, wn, template) if combine in ("both", "gloss") else None
        vec_of = states_of(items.text, items.start, items.end) if combine != "gloss" else None
        protos: dict[str, list] = {}
        for w, syn, _g, _l, idx, tagged in items.protos:
            if combine == "gloss":  # every synset read the same way, whether or not it has examples
                g = gloss_items[(w, syn)]
                if g is not None:
                    protos.setdefault(w, []).append((syn, g))
                continue
            vs = [vec_of[i] for i in idx if vec_of[i] is not None]
            if combine == "both" and tagged:
                g = gloss_items[(w, syn)]
                vs = [np.mean(vs, 0), g] if g is not None else vs
            if vs:
                protos.setdefault(w, []).append((syn, np.mean(vs, 0)))
        pred, sims = [], []
        for j, w in enumerate(words):
            if not ok[j] or w not in protos:
                pred.append(None)
                sims.append(-np.inf)
                continue
            names = [p[0] for p in protos[w]]
            P_ = L._unit((np.stack([p[1] for p in protos[w]]) - mean) / std)
            z = L._unit((q[j] - mean) / std)
            c = P_ @ z
            pred.append(names[int(c.argmax())])
            sims.append(float(c.max()))
        correct = np.asarray([p == g for p, g in zip(pred, gold)])
        sims = np.asarray(sims)
        out = {"accuracy": float(correct.mean())}
        grid = {}
        for t in np.arange(0.0, 0.75, 0.05):
            linked = sims >= t
            grid[f"{t:.2f}"] = {
                "linked": float(linked.mean()),
                "accuracy_linked": float(correct[linked].mean()) if linked.any() else None,
                "gain": int(correct[linked].sum() - (~correct[linked]).sum()),
            }
        out["threshold"] = grid
        return out

    def link_items_glosses(lemmas_, wn_, template):
        """(word, synset) -> the state of the lemma in the synset's gloss sentence, for every synset."""
        items = link_items(lemmas_, wn_, W.HELDOUT_SHARE, template, examples=False)
        vs = states_of(items.text, items.start, items.end)
        return {(w, syn): vs[idx[0]] for w, syn, _g, _l, idx, _t in items.protos}

    templates = args.templates.split(",") if args.templates else list(GLOSS_TEMPLATES)
    for name in templates:
        t1 = time.perf_counter()
        results[f"{name}/examples_else_gloss"] = score(name, "either")
        log(f"{name}: {results[f'{name}/examples_else_gloss']['accuracy']:.3f} ({time.perf_counter() - t1:.0f} s)")
    best = max(templates, key=lambda n: results[f"{n}/examples_else_gloss"]["accuracy"])
    results[f"{best}/examples_and_gloss"] = score(best, "both")
    log(f"{best} both: {results[f'{best}/examples_and_gloss']['accuracy']:.3f}")
    results[f"{best}/gloss_only"] = score(best, "gloss")
    log(f"{best} gloss only: {results[f'{best}/gloss_only']['accuracy']:.3f}")
    results["best_template"] = best
    out = write_json(args.out or RESULTS / f"link_dev_{args.half}.json", results)
    log(f"wrote {out}")


if __name__ == "__main__":
    main()
