"""WiC-style pairs from WordNet's held-out example sentences: word in context on a user's machine.

WiC itself (Pilehvar & Camacho-Collados 2019) was built from WordNet example sentences; these
pairs are built the same way from the WordNet that `make demo` installs, using only the example
sentences that the default corpus never reads (`sensekit.builder.wordnet_corpus.is_heldout`):

- an *occurrence* is a held-out example sentence of a synset with one of that synset's one-word
  lemmas found in it (the lemma itself or an inflection, by WordNet's morphy: the span is the
  word as written);
- a *pair* is two occurrences of the same lemma in two different sentences; the label is
  whether the two come from the same synset;
- per lemma at most `PER_LEMMA` pairs of each label (seeded), so a lemma with many examples
  does not dominate; then as many "different" pairs as "same" ones (balanced), in a seeded order.

The pairs depend only on WordNet, the held-out share and the seed: not on the store or the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from .items import Occurrences, WicItems, find_occurrence

__all__ = ["PER_LEMMA", "heldout_occurrences", "wordnet_pairs", "PairSet"]

PER_LEMMA = 4  # most pairs of each label per lemma


def heldout_occurrences(synsets, wn, share: float) -> Occurrences:
    """Every (lemma, held-out example, span, synset), from `wordnet_synsets()` rows
    (name, definition, examples, lemma names); `wn` is an NLTK WordNet reader (for morphy)."""
    from ..builder.wordnet_corpus import is_heldout

    out = Occurrences()
    for name, _definition, examples, names in synsets:  # per synset (117k): a cheap hash per example
        held = [e.strip() for e in examples if is_heldout(e, share)]
        if not held:
            continue
        pos = name.split(".")[-2]
        lemmas = sorted({n.lower() for n in names if "_" not in n})
        for sentence in held:
            for lemma in lemmas:
                span = find_occurrence(sentence, lemma, pos, wn)
                if span is not None:
                    out.word.append(lemma)
                    out.sentence.append(sentence)
                    out.start.append(span[0])
                    out.end.append(span[1])
                    out.synset.append(name)
    return out


@dataclass
class PairSet:
    items: WicItems
    info: dict  # what the JSON records about the pairs


def wordnet_pairs(synsets, wn, share: float, seed: int = 0, limit: int | None = None) -> PairSet:
    """Balanced, seeded WiC-style pairs from the held-out examples (see the module docstring)."""
    from ..builder.wordnet_corpus import HELDOUT_RULE

    occ = heldout_occurrences(synsets, wn, share)
    rng = np.random.default_rng(seed)
    by_lemma: dict[str, list[int]] = {}
    for i, w in enumerate(occ.word):
        by_lemma.setdefault(w, []).append(i)
    same, different = [], []
    for lemma in sorted(by_lemma):  # per lemma (thousands), a few pairs each
        pairs = [(a, b) for a, b in combinations(by_lemma[lemma], 2) if occ.sentence[a] != occ.sentence[b]]
        for same_synset, out in ((True, same), (False, different)):
            mine = [p for p in pairs if (occ.synset[p[0]] == occ.synset[p[1]]) == same_synset]
            if len(mine) > PER_LEMMA:
                mine = [mine[j] for j in np.sort(rng.choice(len(mine), PER_LEMMA, replace=False))]
            out.extend(mine)
    n = min(len(same), len(different))
    chosen = [same[j] for j in np.sort(rng.choice(len(same), n, replace=False))] + [
        different[j] for j in np.sort(rng.choice(len(different), n, replace=False))
    ]
    labels = [True] * n + [False] * n
    order = rng.permutation(2 * n)
    if limit is not None:
        order = order[:limit]
    chosen = [chosen[j] for j in order]
    labels = [labels[j] for j in order]
    items = WicItems(
        [occ.word[a] for a, _ in chosen],
        [occ.sentence[a] for a, _ in chosen],
        [occ.sentence[b] for _, b in chosen],
        np.asarray([(occ.start[a], occ.end[a]) for a, _ in chosen], np.int64).reshape(-1, 2),
        np.asarray([(occ.start[b], occ.end[b]) for _, b in chosen], np.int64).reshape(-1, 2),
        np.asarray(labels, bool),
    )
    info = {
        "source": "WordNet example sentences held out of the default corpus",
        "rule": HELDOUT_RULE,
        "share": share,
        "seed": seed,
        "pairs": len(items),
        "same_synset": int(items.labels.sum()),
        "lemmas": len(set(items.words)),
        "heldout_occurrences": len(occ),
        "per_lemma_cap": PER_LEMMA,
    }
    return PairSet(items, info)
