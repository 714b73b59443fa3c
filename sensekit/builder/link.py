"""Lexical senses linked to WordNet synsets (docs/lexical.md, "Senses with names").

The lexical view's samples of a key token are first offered to the token's WordNet synsets, then
what is left is clustered as before:

- **Prototypes** (`Prototypes`): one vector per (key token, synset) at the lexical layer, in the
  representation of the store's samples. A synset's prototype is the mean state of its lemma in
  the synset's own example sentences (the tagged occurrences, minus the held-out ones); a synset
  without one gets the state of its lemma in a sentence made of its gloss (`model.occurrence.gloss_text`).
  `builder/prototypes.py` runs the teacher; this module is numpy only, except the induced
  clustering it hands to `lexical_cluster.cluster_adaptive`.
- **Assignment** (`assign`): every sample joins its key's nearest prototype when their cosine in
  the z-scored space (per-dimension mean and standard deviation of all samples) is at least
  `threshold`; the rest stay unassigned.
- **Senses** (`link_senses`): every prototype becomes a linked sense of its key. Its centroid is the
  mean of its members and its prototype (the prototype counts as one member, so a sense of one sample
  still leans towards its synset); a synset no sample joined keeps its prototype, with count 0. The unassigned samples are clustered by
  `cluster_adaptive` (min size as the build says) into induced senses without a synset. A key's
  senses are ordered by count, largest first; `LinkResult.proto` says which prototype (if any)
  each sense carries.
- **Labels** (`sense_labels`): a linked sense reads "synset: gloss"; an induced sense lists the
  words that are most distinctive of its contexts against the token's other senses.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

__all__ = [
    "DEFAULT_LINK_THRESHOLD",
    "Prototypes",
    "LinkResult",
    "assign",
    "link_senses",
    "sense_labels",
    "distinctive_words",
]

DEFAULT_LINK_THRESHOLD = 0.3  # z-scored cosine a sample needs to join a synset (docs/lexical.md)
_WORD = re.compile(r"[A-Za-z]+(?:['-][A-Za-z]+)*")
_STOP = frozenset(
    """a an the and or but if of to in on at by for with from as into onto over under about than then so that this
    these those it its is are was were be been being has have had do does did not no nor can could will would
    shall should may might must there their they them he she his her him we our you your i me my who whom which
    what when where why how all any some each every one two other such only own same very more most much many
    also just up down out off s t used especially something someone someones usually often""".split()
)


@dataclass
class Prototypes:
    """Synset prototypes of key tokens, sorted by key. key [P] int64; vectors [P, d] float32;
    synset / gloss / lemma [P] str; tagged [P] int64: example states averaged (0: the gloss state)."""

    key: np.ndarray
    vectors: np.ndarray
    synset: list[str]
    gloss: list[str]
    lemma: list[str]
    tagged: np.ndarray

    def __post_init__(self) -> None:
        order = np.argsort(np.asarray(self.key, np.int64), kind="stable")
        self.key = np.asarray(self.key, np.int64)[order]
        vectors = np.asarray(self.vectors, np.float32)
        self.vectors = vectors.reshape(len(order), vectors.shape[-1] if vectors.ndim > 1 else -1)[order]
        self.synset = [self.synset[i] for i in order]
        self.gloss = [self.gloss[i] for i in order]
        self.lemma = [self.lemma[i] for i in order]
        self.tagged = np.asarray(self.tagged, np.int64)[order]

    def __len__(self) -> int:
        return len(self.key)

    @classmethod
    def empty(cls, d: int) -> "Prototypes":
        return cls(np.zeros(0, np.int64), np.zeros((0, d), np.float32), [], [], [], np.zeros(0, np.int64))


@dataclass
class LinkResult:
    """The lexical senses (a `cluster.ClusterResult`) and, per sense, the prototype it carries (-1: induced)."""

    clusters: object  # cluster.ClusterResult
    proto: np.ndarray  # [N] int64 index into the Prototypes, -1 for an induced sense
    assigned: int  # samples that joined a prototype
    samples: int  # all samples


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def assign(
    keys: np.ndarray,
    indptr: np.ndarray,
    vectors: np.ndarray,
    protos: Prototypes,
    threshold: float,
    mean: np.ndarray,
    std: np.ndarray,
    chunk: int = 4096,
) -> tuple[np.ndarray, np.ndarray]:
    """-> (proto [S] int64: the prototype each sample joins, -1 if none; sim [S] float32: its z-scored cosine
    to the nearest prototype of its key, -inf when the key has none). CSR samples: keys [R], indptr [R+1],
    vectors [S, d]; mean/std [d] the z-scoring. One padded [chunk, Pmax] similarity block at a time."""
    keys = np.asarray(keys, np.int64)
    lengths = np.diff(np.asarray(indptr, np.int64))
    S = int(lengths.sum())
    sample_key = np.repeat(keys, lengths)  # [S]
    lo = np.searchsorted(protos.key, sample_key, "left")  # [S] first prototype of the sample's key
    n_p = np.searchsorted(protos.key, sample_key, "right") - lo  # [S] its key's prototype count
    best = np.full(S, -1, np.int64)
    sim = np.full(S, -np.inf, np.float32)
    if len(protos) == 0 or S == 0:
        return best, sim
    pz = _unit((protos.vectors - mean) / std).astype(np.float32)  # [P, d]
    p_max = int(n_p.max())
    if p_max == 0:
        return best, sim
    slots = np.arange(p_max)
    for a in range(0, S, chunk):
        b = min(S, a + chunk)
        has = n_p[a:b] > 0
        if not has.any():
            continue
        z = _unit((np.asarray(vectors[a:b], np.float32) - mean) / std)  # [c, d]
        idx = lo[a:b, None] + np.minimum(slots[None, :], np.maximum(n_p[a:b, None] - 1, 0))  # [c, Pmax]
        idx = np.minimum(idx, len(protos) - 1)
        cos = np.einsum("cd,cpd->cp", z, pz[idx])  # [c, Pmax]
        cos[slots[None, :] >= n_p[a:b, None]] = -np.inf
        j = cos.argmax(1)
        s = cos[np.arange(b - a), j]
        sim[a:b] = s
        best[a:b] = np.where(has & (s >= threshold), idx[np.arange(b - a), j], -1)
    return best, sim


def link_senses(
    keys: np.ndarray,
    indptr: np.ndarray,
    vectors: np.ndarray,
    protos: Prototypes,
    *,
    threshold: float,
    contexts_per_sense: int,
    cluster: Callable[[np.ndarray, np.ndarray, np.ndarray], object],
    mean: np.ndarray | None = None,
    std: np.ndarray | None = None,
    keep_unjoined: bool = True,
) -> LinkResult:
    """Linked senses (samples that joined a prototype) plus induced senses (`cluster(keys, indptr, vectors)`
    of the rest, a ClusterResult such as `cluster_adaptive` returns). CSR samples as in `assign`.
    `keep_unjoined`: a prototype no sample joined is still a sense of its key (count 0, its prototype as
    centroid), so every synset of a linked word can be named by `annotate`, not only those the corpus
    sample happened to hold."""
    from .cluster import ClusterResult
    from .lexical_cluster import standardiser

    keys = np.asarray(keys, np.int64)
    indptr = np.asarray(indptr, np.int64)
    lengths = np.diff(indptr)
    S, d = int(indptr[-1]), vectors.shape[1]
    if mean is None or std is None:
        mean, std = standardiser(vectors)
    proto_of, _ = assign(keys, indptr, vectors, protos, threshold, mean, std)  # [S]
    E = int(contexts_per_sense)

    # -- linked senses: one per prototype with members
    members = np.flatnonzero(proto_of >= 0)  # [m] sample rows
    mp = proto_of[members]
    used, inverse, n_mem = np.unique(mp, return_inverse=True, return_counts=True)  # [L] prototypes with members
    raw = np.asarray(vectors[members], np.float64)
    sums = np.zeros((len(used), d))
    np.add.at(sums, inverse, raw)
    link_cent = ((sums + protos.vectors[used]) / (n_mem + 1)[:, None]).astype(np.float32)  # [L, d]
    zc = (link_cent - mean) / std
    zm = (raw.astype(np.float32) - mean) / std
    dist = np.linalg.norm(zm - zc[inverse], axis=1).astype(np.float32)  # [m] z-space distance to the centroid
    order = np.lexsort((dist, inverse))
    starts = np.cumsum(n_mem) - n_mem
    rank = np.arange(len(order)) - starts[inverse[order]]
    keep = order[rank < E] if E > 0 else order[:0]
    idle = np.setdiff1d(np.arange(len(protos)), used) if keep_unjoined else np.zeros(0, np.int64)  # [I]

    # -- induced senses: the unassigned samples, clustered as before
    rest = np.flatnonzero(proto_of < 0)  # [u] sample rows, in key order
    sample_key = np.repeat(keys, lengths)
    rest_keys, rest_len = np.unique(sample_key[rest], return_counts=True)
    rest_ptr = np.concatenate([[0], np.cumsum(rest_len)]).astype(np.int64)
    if len(rest):
        induced = cluster(rest_keys, rest_ptr, np.asarray(vectors[rest]))
    else:
        induced = ClusterResult(
            np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, d), np.float32),
            np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32), 0.0,
        )  # fmt: skip

    # -- one table of senses: linked then induced, sorted by (key, count desc, linked first)
    s_key = np.concatenate([protos.key[used], protos.key[idle], induced.sense_key]).astype(np.int64)
    s_cnt = np.concatenate([n_mem, np.zeros(len(idle), np.int64), induced.sense_count]).astype(np.int64)
    s_cent = np.concatenate([link_cent, protos.vectors[idle], induced.centroids.astype(np.float32)])
    s_proto = np.concatenate([used, idle, np.full(len(induced.sense_key), -1, np.int64)])
    L = len(used) + len(idle)
    perm = np.lexsort((np.arange(len(s_key)), -s_cnt, s_key))  # new order -> old sense
    new_of_old = np.empty(len(perm), np.int64)
    new_of_old[perm] = np.arange(len(perm))
    key_sorted = s_key[perm]
    first = np.searchsorted(key_sorted, key_sorted, "left")
    sense_index = np.arange(len(perm)) - first

    c_sense = np.concatenate([new_of_old[inverse[keep]], new_of_old[L + induced.ctx_sense]]).astype(np.int64)
    c_rank = np.concatenate([rank[rank < E] if E > 0 else rank[:0], induced.ctx_rank]).astype(np.int64)
    c_sample = np.concatenate([members[keep], rest[induced.ctx_sample]]).astype(np.int64)
    c_dist = np.concatenate([dist[keep], induced.ctx_distance]).astype(np.float32)
    co = np.lexsort((c_rank, c_sense))
    result = ClusterResult(
        sense_key=key_sorted,
        sense_index=sense_index.astype(np.int64),
        sense_count=s_cnt[perm],
        centroids=s_cent[perm],
        ctx_sense=c_sense[co],
        ctx_rank=c_rank[co],
        ctx_sample=c_sample[co],
        ctx_distance=c_dist[co],
        inertia=float(induced.inertia),
    )
    return LinkResult(result, s_proto[perm], int(len(members)), S)


def distinctive_words(
    sense_key: np.ndarray, ctx_sense: np.ndarray, snippets: Sequence[str], marks: np.ndarray, n_words: int = 3
) -> list[list[str]]:
    """Per sense [N], the words of its contexts most distinctive against its key's other senses.

    ctx_sense [C] the sense of each context, snippets [C] its text, marks [C, 2] the key token's span in it
    (left out). A word scores its count in the sense's contexts times log((senses of the key + 1) /
    (senses of the key whose contexts hold it + 0.5)): a tf-idf over the key's senses; stop words and
    the key's own word are skipped; ties by first appearance."""
    N = len(sense_key)
    bags: list[Counter] = [Counter() for _ in range(N)]
    own: list[set] = [set() for _ in range(N)]
    for c in range(len(ctx_sense)):  # per context (E per sense), not per token of the corpus
        text = snippets[c]
        m0, m1 = int(marks[c][0]), int(marks[c][1])
        own[ctx_sense[c]].add(text[m0:m1].strip().lower())
        for w in _WORD.findall(text[:m0] + " " + text[m1:]):
            w = w.lower()
            if len(w) > 2 and w not in _STOP:
                bags[ctx_sense[c]][w] += 1
    keys = np.asarray(sense_key, np.int64)
    out: list[list[str]] = [[] for _ in range(N)]
    for key in np.unique(keys):  # per key with senses
        senses = np.flatnonzero(keys == key)
        df = Counter(w for s in senses for w in bags[s])
        for s in senses:
            skip = own[s]
            scored = [
                (-n * np.log((len(senses) + 1) / (df[w] + 0.5)), i, w)
                for i, (w, n) in enumerate(bags[s].items())
                if w not in skip
            ]
            out[s] = [w for _, _, w in sorted(scored)[:n_words]]
    return out


def sense_labels(
    proto: np.ndarray,
    protos: Prototypes,
    words: list[list[str]],
) -> tuple[list, list, list, list]:
    """-> (synset, gloss, lemma, label) per sense: a linked sense (proto >= 0) reads "bank.n.01: sloping land
    ..."; an induced one "~ river, water, slope" (its distinctive words), or None when it has none."""
    synset, gloss, lemma, label = [], [], [], []
    for s, p in enumerate(np.asarray(proto, np.int64)):
        if p >= 0:
            synset.append(protos.synset[p])
            gloss.append(protos.gloss[p])
            lemma.append(protos.lemma[p])
            label.append(f"{protos.synset[p]}: {protos.gloss[p]}")
        else:
            synset.append(None)
            gloss.append(None)
            lemma.append(None)
            label.append(("~ " + ", ".join(words[s])) if words[s] else None)
    return synset, gloss, lemma, label
