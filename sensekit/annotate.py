"""Which sense does each word have in this sentence? `annotate(texts)` and `sensekit annotate`.

For every word of a line (letters, with inner hyphens or apostrophes) that is one key token of the store
with lexical senses, the teacher's state of that word in the line (at the lexical view's layer, in the
representation the build used: `meta.lexical_representation`, else the first token of one copy) is compared
with each of the word's senses in the view's similarity space:

    score(sense) = softmax over the word's senses of (cosine(query, sense) / temperature + prior_weight * log prior)

where the log prior is, with `prior="samples"`, the log of the sense's share of its word's corpus samples
(its `count`) or, with `prior="wordnet"`, log(1 + the SemCor count of the sense's lemma in its synset)
(WordNet's cntlist; 0 for a sense with no synset). `prior_weight` 0 (the default) turns it off. Each record carries the
best sense, its synset and gloss when the sense is linked to WordNet, and its score.

A store built with linking names only the words inside its --link-budget, and has senses only for the
words that are one key token with enough corpus samples. With `name_from_wordnet` (on by default), a
word whose store senses name no synset, or that has no store senses at all (a word the tokenizer
splits, or one the corpus rarely holds), is named from WordNet on first use: its synsets' prototypes,
computed by the build's code (`builder.prototypes`) and cached with the build's, become its candidates.
Such a candidate is not a sense of the store: its `sense_id` is None. A prototype is the state of the
lemma in the synset's gloss sentence (`wordnet_prototypes="gloss"`, the default, chosen on the WSD dev
half) or the build's rule, the tagged examples else the gloss (`"examples"`; 0.05 lower on that dev
half: a held-out example's own synset rarely has another example, and an example's state sits nearer
any occurrence than a gloss's). The first use of a word costs a teacher pass over its synsets'
sentences (about 15 tokens each, twice, to the lexical layer); later uses read the cache. A word with
neither store senses nor WordNet synsets (with `name_from_wordnet` off: without store senses) is
skipped and counted (`unknown`).

All the words of a line come from one forward pass of the line (a causal LM's state at a word does not
depend on later words; with the repeated representation, the line is read twice and every word is taken
in the second copy), truncated after the lexical layer. This module loads the teacher: the query path
(store, serve) never imports it; `sensekit serve --annotate` receives an `Annotator` from the CLI.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .errors import InputError

__all__ = [
    "Annotator",
    "Occurrence",
    "annotate",
    "same_sense",
    "same_best",
    "sense_agreement",
    "cosine",
    "same_sense_score",
    "DEFAULT_TEMPERATURE",
    "DEFAULT_PRIOR",
    "DEFAULT_PRIOR_WEIGHT",
    "WORD_FIELDS",
]

WORD = re.compile(r"[A-Za-z]+(?:['-][A-Za-z]+)*")
DEFAULT_TEMPERATURE = 0.1  # cosine units per nat: the softmax's sharpness (docs/lexical.md)
DEFAULT_SAME_SENSE_WEIGHT = 0.5  # same_sense: the sense agreement's share against the raw cosine (not tuned)
DEFAULT_PRIOR_WEIGHT = 0.0  # weight of log(sense's share of its word's samples); chosen on dev (docs/lexical.md)
WORD_FIELDS = ("start", "end", "text", "sense_id", "synset", "gloss", "score")  # one annotated word, in --json
MAX_LINE_CHARS = 20_000
PRIORS = ("samples", "wordnet")  # what the log prior counts: corpus samples, or WordNet's SemCor counts
DEFAULT_PRIOR = "samples"
# a WordNet-named synset's prototype: its tagged examples, else its gloss (the build's rule), or always its gloss
WORDNET_PROTOTYPES = ("examples", "gloss")
DEFAULT_WORDNET_PROTOTYPES = "gloss"  # chosen on the WSD dev half (docs/lexical.md)


@dataclass
class Occurrence:
    """One annotated word: where it is, its state in the similarity space, and its sense distribution."""

    start: int
    end: int
    text: str
    sense_ids: np.ndarray  # [k] the word's senses (< 0: a synset named from WordNet, not a store sense)
    probs: np.ndarray  # [k] their probabilities
    vector: np.ndarray = field(repr=False)  # [d] the query state in the view's similarity space
    similarity: np.ndarray = field(repr=False, default=None)  # [k] cosine(query, sense) / temperature
    log_prior: np.ndarray = field(repr=False, default=None)  # [k] the annotator's log prior of each sense
    synsets: list = field(default_factory=list)  # [k] synset name or None
    glosses: list = field(default_factory=list)
    labels: list = field(default_factory=list)

    @property
    def best(self) -> int:
        return int(np.argmax(self.probs))

    @property
    def keys(self) -> list:
        """[k] what names each sense across words: its synset where it has one (a word and its inflection
        name the same synsets), else its store sense id."""
        synsets = self.synsets or [None] * len(self.sense_ids)
        return [syn if syn is not None else ("sense", int(i)) for syn, i in zip(synsets, self.sense_ids)]

    def rescored(self, prior_weight: float) -> np.ndarray:
        """[k] the sense probabilities at this prior weight (no teacher pass): softmax of similarity + weight x log prior."""
        logit = self.similarity + prior_weight * self.log_prior
        p = np.exp(logit - logit.max())
        return p / p.sum()

    def record(self) -> dict[str, Any]:
        """The JSON record of this word (WORD_FIELDS)."""
        b = self.best
        return {
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "sense_id": int(self.sense_ids[b]) if self.sense_ids[b] >= 0 else None,  # < 0: named from WordNet
            "synset": self.synsets[b],
            "gloss": self.glosses[b],
            "score": round(float(self.probs[b]), 4),
        }


def same_sense_score(p_same, cosine, weight: float = DEFAULT_SAME_SENSE_WEIGHT):
    """The soft same-sense score in [0, 1] (scalars or arrays): `weight` x the probability that both
    occurrences take the same sense + (1 - weight) x their states' cosine mapped to [0, 1]."""
    return weight * np.asarray(p_same) + (1.0 - weight) * (np.asarray(cosine) + 1.0) / 2.0


def sense_agreement(a: Occurrence, b: Occurrence) -> float:
    """The chance two occurrences take the same sense: the dot product of their sense distributions over
    the senses they share (matched by `Occurrence.keys`)."""
    pb = dict(zip(b.keys, b.probs))
    return float(sum(p * pb.get(key, 0.0) for key, p in zip(a.keys, a.probs)))


def same_best(a: Occurrence, b: Occurrence) -> bool:
    """The hard answer: are both occurrences' most probable senses the same (synset, or store sense)?"""
    return a.keys[a.best] == b.keys[b.best]


def cosine(a: Occurrence, b: Occurrence) -> float:
    """The cosine of the two occurrences' states in the view's similarity space."""
    na, nb = np.linalg.norm(a.vector), np.linalg.norm(b.vector)
    return float(a.vector @ b.vector / max(na * nb, 1e-12))


def same_sense(a: Occurrence, b: Occurrence, weight: float = DEFAULT_SAME_SENSE_WEIGHT) -> float:
    """`same_sense_score` of two occurrences of one word: their `sense_agreement` beside their `cosine`."""
    return float(same_sense_score(sense_agreement(a, b), cosine(a, b), weight))


class Annotator:
    """A store's lexical view and its teacher, ready to annotate lines. Build with `Annotator.open`."""

    def __init__(
        self,
        store,
        teacher,
        *,
        view: str = "lexical",
        temperature: float = DEFAULT_TEMPERATURE,
        prior_weight: float = DEFAULT_PRIOR_WEIGHT,
        prior: str = DEFAULT_PRIOR,
        wordnet=None,
        name_from_wordnet: bool = True,
        wordnet_prototypes: str = DEFAULT_WORDNET_PROTOTYPES,
    ) -> None:
        if view not in store.views:
            raise InputError(
                f"{store.path} has no {view} view (it holds {', '.join(store.views)}); annotate reads a store "
                "built with --lexical-layer auto"
            )
        if prior not in PRIORS:
            raise InputError(f"prior must be one of {', '.join(PRIORS)}, got {prior!r}")
        if wordnet_prototypes not in WORDNET_PROTOTYPES:
            raise InputError(
                f"wordnet_prototypes must be one of {', '.join(WORDNET_PROTOTYPES)}, got {wordnet_prototypes!r}"
            )
        self.wordnet_prototypes = wordnet_prototypes
        self.store, self.teacher, self.view, self.prior = store, teacher, view, prior
        self._wordnet = wordnet  # opened on first use when prior="wordnet" (NLTK's data path, /usr/share/wordnet)
        self.temperature, self.prior_weight = float(temperature), float(prior_weight)
        v = store.view(view)
        self.layer = v.hidden_layer
        self.space = v.space
        # the build's representation of the lexical states (a store without the record read the first copy)
        self.representation = str(store.meta.get("lexical_representation") or "first")
        from .model.occurrence import tokenizer_prefix_and_pad

        self.prefix, self.pad_id = tokenizer_prefix_and_pad(teacher.tokenizer)
        self._senses: dict[str, tuple | None] = {}  # word -> (sense ids, unit vectors, log prior, synsets, ...)
        # only a build that linked says which WordNet examples it held out, and read them as prototypes do
        self.name_from_wordnet = bool(name_from_wordnet and store.meta.get("link"))
        self._named: set[str] = set()  # words offered to WordNet already (named or not)

    @classmethod
    def open(cls, store_path: str | Path, teacher: str | None = None, device: str | None = None, **kw) -> "Annotator":
        """Open the store and load its teacher (the one the store records, unless `teacher` names another)."""
        from .model.teacher import load_teacher
        from .store import open_store

        store = open_store(store_path)
        name = teacher or store.meta.get("teacher") or "smollm2-135m"
        return cls(store, load_teacher(str(name), device), **kw)

    # -- the word's senses, from memory after the first time -----------------------------------------
    def _word_senses(self, word: str):
        if word in self._senses:
            return self._senses[word]
        entry = None
        try:
            ids = self.store.token_ids(word)
        except InputError:
            ids = []
        if len(ids) == 1:
            senses = self.store.senses_of_token(ids[0], view=self.view)
            if senses:
                emb = self.space.apply(np.stack([s.embedding for s in senses]))  # [k, d]
                unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
                entry = (
                    np.asarray([s.sense_id for s in senses], np.int64),
                    unit.astype(np.float32),
                    self._log_prior(senses),
                    [s.synset for s in senses],
                    [s.gloss for s in senses],
                    [s.label for s in senses],
                )
        self._senses[word] = entry
        return entry

    def _log_prior(self, senses) -> np.ndarray:
        """[k] the log prior of a word's senses (module docstring)."""
        if self.prior == "samples":
            counts = np.asarray([max(s.count, 1) for s in senses], np.float64)
            return np.log(counts / counts.sum())
        return np.log1p([_semcor_count(self.wordnet, s.synset, s.lemma) for s in senses])

    @property
    def wordnet(self):
        """The WordNet reader: the one given, else the process's (opened once: reading WordNet takes seconds)."""
        if self._wordnet is None:
            self._wordnet = _process_wordnet()
        return self._wordnet

    def _name_from_wordnet(self, words: Sequence[str]) -> None:
        """Give each word without store senses, or whose store senses name no synset, its WordNet synsets'
        prototypes as its senses (module docstring), all the words in one teacher pass."""
        todo = [w for w in dict.fromkeys(words) if w not in self._named]
        # no store senses (a subword-split or rare word), or none linked: [3] holds the senses' synsets
        todo = [w for w in todo if self._word_senses(w) is None or not any(self._word_senses(w)[3])]
        self._named.update(todo)
        if not todo:
            return
        from .builder.prototypes import build_prototypes
        from .builder.wordnet_corpus import HELDOUT_SHARE

        share = (self.store.meta.get("corpus_heldout") or {}).get("share", HELDOUT_SHARE)
        try:
            wn = self.wordnet
        except InputError as exc:
            raise InputError(f"{exc}; or keep to the store's senses (--store-senses-only)") from None
        protos, _ = build_prototypes(
            self.teacher,
            np.arange(len(todo)),  # the prototypes' key: the word's index in todo
            [" " + w for w in todo],  # as a key token's text reads
            range(len(todo)),
            layer=self.layer,
            representation=self.representation,
            budget=np.iinfo(np.int64).max,
            heldout_share=float(share),
            wn=wn,
            examples=self.wordnet_prototypes == "examples",
        )
        for i, word in enumerate(todo):
            rows = np.flatnonzero(protos.key == i)
            if not len(rows):  # no synset, or none WordNet can place in a sentence: keep the store's senses
                continue
            emb = self.space.apply(protos.vectors[rows])  # [k, d]
            synsets = [protos.synset[r] for r in rows]
            glosses = [protos.gloss[r] for r in rows]
            if self.prior == "wordnet":
                log_prior = np.log1p([_semcor_count(wn, protos.synset[r], protos.lemma[r]) for r in rows])
            else:  # no corpus samples: a flat prior
                log_prior = np.zeros(len(rows))
            self._senses[word] = (
                -1 - np.arange(len(rows), dtype=np.int64),  # negative: not senses of the store
                (emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)).astype(np.float32),
                log_prior,
                synsets,
                glosses,
                [f"{n}: {g}" for n, g in zip(synsets, glosses)],
            )

    # -- states of every word of a batch of lines -------------------------------------------------------
    def _states(self, lines: Sequence[str], spans: Sequence[list[tuple[int, int]]]) -> list[np.ndarray]:
        """Per line, the raw states [w, d] of its words' spans: one forward per batch of lines."""
        import torch

        from .model.occurrence import forward_layers, second_copy_heads

        tok = self.teacher.tokenizer
        enc = tok(list(lines), add_special_tokens=False, return_offsets_mapping=True, return_attention_mask=False)
        pre = np.asarray(self.prefix, np.int64)
        repeat = self.representation == "repeat"
        # the repeated row as model.occurrence builds it: [prefix] body head body[1:], `head` the body's first
        # token re-read after a space (as the text "S S" tokenizes)
        heads = second_copy_heads(tok, [ids[0] if ids else 0 for ids in enc["input_ids"]]) if repeat else []
        rows, weights = [], []
        for i, (ids, offs, sp) in enumerate(zip(enc["input_ids"], enc["offset_mapping"], spans)):  # per line
            body = np.asarray(ids, np.int64)
            offs = np.asarray(offs, np.int64).reshape(-1, 2)
            a = np.asarray([s[0] for s in sp], np.int64)[:, None]  # [w, 1]
            b = np.asarray([s[1] for s in sp], np.int64)[:, None]
            touch = ((offs[None, :, 1] > a) & (offs[None, :, 0] < b)).astype(np.float32)  # [w, t] each word's tokens
            if self.representation == "first":
                touch *= np.cumsum(touch, 1) == 1
            if repeat:
                m, base = len(heads[i]), len(pre) + len(body)
                row = np.concatenate([pre, body, heads[i], body[1:]])
                w = np.zeros((len(sp), len(row)), np.float32)
                w[:, base : base + m] = touch[:, :1]  # body token 0 is read as the head's ids
                w[:, base + m :] = touch[:, 1:]
            else:
                row = np.concatenate([pre, body])
                w = np.zeros((len(sp), len(row)), np.float32)
                w[:, len(pre) :] = touch
            w /= np.maximum(w.sum(1, keepdims=True), 1)
            rows.append(row)
            weights.append(w)
        out: list[np.ndarray] = [np.zeros((0, self.store.dim), np.float32)] * len(lines)
        order = np.argsort([-len(r) for r in rows], kind="stable")
        budget = 4096
        start = 0
        while start < len(order):
            width = len(rows[order[start]])
            chunk = order[start : start + max(1, budget // max(width, 1))]
            ids = np.full((len(chunk), width), self.pad_id, np.int64)  # [B, T] right-padded
            mask = np.zeros((len(chunk), width), np.int64)
            for r, i in enumerate(chunk):  # per line
                ids[r, : len(rows[i])], mask[r, : len(rows[i])] = rows[i], 1
            (h,) = forward_layers(
                self.teacher.model,
                torch.from_numpy(ids).to(self.teacher.device),
                torch.from_numpy(mask).to(self.teacher.device),
                [self.layer],
            )  # [B, T, d]
            h = h.float().cpu().numpy()
            for r, i in enumerate(chunk):
                out[i] = weights[i] @ h[r, : weights[i].shape[1]]  # [w, d]
            start += len(chunk)
        return out

    # -- the public surface --------------------------------------------------------------------------
    def occurrences(
        self, lines: Sequence[str], targets: Sequence[tuple[int, int]] | None = None
    ) -> tuple[list[list[Occurrence]], list[int]]:
        """Per line, its annotated words (Occurrence) and the count of words without senses (unknown).
        `targets` (one (start, end) per line): annotate only the words that overlap it."""
        lines = [_check_line(t) for t in lines]
        spans = [
            [
                (m.start(), m.end(), m.group())
                for m in WORD.finditer(line)
                if targets is None or (m.start() < targets[i][1] and m.end() > targets[i][0])
            ]
            for i, line in enumerate(lines)
        ]
        if self.name_from_wordnet:
            self._name_from_wordnet([w for words in spans for _, _, w in words])
        # per word: a dictionary lookup, cached per word
        found_senses = [[(a, b, w, self._word_senses(w)) for a, b, w in words] for words in spans]
        unknown = [sum(e is None for *_, e in words) for words in found_senses]
        found_senses = [[x for x in words if x[3] is not None] for words in found_senses]
        todo = [i for i, w in enumerate(found_senses) if w]
        states = self._states([lines[i] for i in todo], [[(a, b) for a, b, _, _ in found_senses[i]] for i in todo])
        out: list[list[Occurrence]] = [[] for _ in lines]
        for i, raw in zip(todo, states):
            q = self.space.apply(raw)  # [w, d]
            qu = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
            for (a, b, text, (ids, unit, log_prior, syn, gloss, label)), v, u in zip(found_senses[i], q, qu):
                o = Occurrence(a, b, text, ids, None, v, (unit @ u) / self.temperature, log_prior, syn, gloss, label)
                o.probs = o.rescored(self.prior_weight)  # [k]
                out[i].append(o)
        return out, unknown

    def annotate(self, texts: Iterable[str]) -> list[dict[str, Any]]:
        """Per line: {"text", "words": [WORD_FIELDS records], "unknown": words without senses}."""
        lines = list(texts)
        occ, unknown = self.occurrences(lines)
        return [
            {"text": t, "words": [o.record() for o in words], "unknown": u} for t, words, u in zip(lines, occ, unknown)
        ]

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Annotator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@functools.lru_cache(maxsize=1)
def _process_wordnet():
    from .lexicon.wordnet import open_wordnet

    return open_wordnet(None)


def _semcor_count(wn, synset: str | None, lemma: str | None) -> int:
    """WordNet's tagged-corpus count of `lemma` in `synset` (0 when either is missing)."""
    if not synset or not lemma:
        return 0
    from nltk.corpus.reader.wordnet import WordNetError

    try:
        lemmas = wn.synset(synset).lemmas()
    except WordNetError:  # a synset name this WordNet does not have
        return 0
    return sum(lem.count() for lem in lemmas if lem.name().lower() == lemma.lower())


def _check_line(text: Any) -> str:
    if not isinstance(text, str):
        raise InputError(f"annotate reads text, got {type(text).__name__}")
    if len(text) > MAX_LINE_CHARS:
        raise InputError(f"a line of {len(text)} characters is longer than {MAX_LINE_CHARS}; split the text into lines")
    return text


def annotate(
    texts: str | Iterable[str], store: str | Path = "senses.sensekit", *, teacher: str | None = None, **kw
) -> list[dict[str, Any]]:
    """One-shot: open the store and its teacher, annotate `texts` (a string or lines), close. For many calls,
    keep an `Annotator`."""
    lines = [texts] if isinstance(texts, str) else list(texts)
    with Annotator.open(store, teacher, **kw) as a:
        return a.annotate(lines)
