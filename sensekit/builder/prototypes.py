"""Synset prototypes for the store's key tokens: WordNet's examples and glosses run through the teacher.

For each key token that is a word WordNet knows (its text, stripped and lowercased, or its morphy base
form), every synset of that word gets one prototype at the lexical layer (`link.Prototypes`):

- the mean state of the word in the synset's example sentences that the default corpus reads (the
  tagged occurrences: the held-out ones never enter), found as `wordnet_corpus.find_occurrence` finds them;
- or, for a synset without such an example, the state of the lemma at the end of its gloss
  (`model.occurrence.gloss_text`, the default template: "<definition>. In short: <lemma>").

States come from `model.occurrence.occurrence_states` (the store's lexical representation), and are
cached per teacher, layer and representation under `sensekit_home()/link/`, keyed by the text and the
span: a second build, or another corpus, pays only for what is new. `budget` bounds the teacher
tokens a build spends on states that are not cached yet; words are taken in the order given (the
--focus words first, then by corpus occurrences) and a word is linked whole or not at all.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..paths import sensekit_home
from .link import Prototypes

__all__ = ["LinkItems", "link_items", "build_prototypes", "PrototypeReport", "cache_path", "word_of_token"]

_ALPHA = re.compile(r"[A-Za-z]+(?:-[A-Za-z]+)*")


def word_of_token(text: str) -> str | None:
    """A key token's text as a WordNet word: ' bank' -> 'bank'; None for subwords and non-words
    (a token without its leading space continues a word)."""
    word = text.strip()
    if not text.startswith(" ") or not _ALPHA.fullmatch(word) or len(word) < 2:
        return None
    return word.lower()


@dataclass
class LinkItems:
    """What the teacher must read: per item a text and the lemma's span in it; per prototype, its items."""

    text: list[str] = field(default_factory=list)
    start: list[int] = field(default_factory=list)
    end: list[int] = field(default_factory=list)
    # prototypes: (word, synset name, gloss, lemma, item indices, tagged example count)
    protos: list[tuple[str, str, str, str, list[int], int]] = field(default_factory=list)


def link_items(
    words: Sequence[str], wn, heldout_share: float, template: str | None = None, examples: bool = True
) -> LinkItems:
    """Per word, its synsets' tagged examples (not held out) or, without one (or with `examples` False), its
    gloss sentence (`model.occurrence.gloss_text`, `template` or the default)."""
    from ..model.occurrence import DEFAULT_GLOSS_TEMPLATE, gloss_text
    from .wordnet_corpus import find_occurrence, is_heldout

    template = template or DEFAULT_GLOSS_TEMPLATE

    items = LinkItems()
    where: dict[tuple[str, int, int], int] = {}

    def item(text: str, span: tuple[int, int]) -> int:
        k = (text, span[0], span[1])
        if k not in where:
            where[k] = len(items.text)
            items.text.append(text)
            items.start.append(span[0])
            items.end.append(span[1])
        return where[k]

    for word in words:
        for syn in wn.synsets(word):
            names = [n.lower() for n in syn.lemma_names()]
            lemma = word if word in names else (wn.morphy(word, syn.pos()) or word)
            pos = syn.pos()
            idx = []
            for ex in syn.examples() if examples else ():
                if is_heldout(ex, heldout_share):
                    continue
                span = find_occurrence(ex.strip(), lemma, pos, wn)
                if span is not None:
                    idx.append(item(ex.strip(), span))
            tagged = len(idx)
            definition = syn.definition().strip()
            if not idx:
                text, a, b = gloss_text(definition, lemma, template)
                idx.append(item(text, (a, b)))
            items.protos.append((word, syn.name(), definition, lemma, idx, tagged))
    return items


@dataclass
class PrototypeReport:
    """What the build records about the linking pass."""

    words: int = 0  # key words with WordNet synsets
    words_linked: int = 0  # of them, with prototypes (within the budget)
    prototypes: int = 0
    items: int = 0  # texts the prototypes read
    computed: int = 0  # of them run through the teacher in this build (the rest were cached)
    teacher_tokens: int = 0  # tokens fed to the teacher for them
    budget: int = 0
    seconds: float = 0.0
    cache: str = ""

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def cache_path(teacher_name: str, revision: str, layer: int, representation: str) -> Path:
    """Where the states of one teacher, layer and representation are cached."""
    tag = hashlib.sha1(f"{teacher_name}\n{revision}".encode()).hexdigest()[:12]
    return sensekit_home() / "link" / f"{tag}-L{layer}-{representation}.npz"


def _item_keys(items: LinkItems) -> np.ndarray:
    return np.asarray(
        [
            hashlib.sha1(f"{t}\0{a}\0{b}".encode()).hexdigest()[:24]
            for t, a, b in zip(items.text, items.start, items.end)
        ],
        dtype="U24",
    )


def _load_cache(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        return {}
    try:
        with np.load(path) as z:
            return dict(zip(z["keys"].tolist(), z["vectors"]))
    except (OSError, ValueError, KeyError):  # a damaged cache is rebuilt, not fatal
        return {}


def _save_cache(path: Path, cache: dict[str, np.ndarray]) -> None:
    from ..fs import write_atomic

    if not cache:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = np.asarray(list(cache.keys()), dtype="U24")
    vectors = np.stack(list(cache.values())).astype(np.float16)
    import io

    buf = io.BytesIO()
    np.savez(buf, keys=keys, vectors=vectors)
    write_atomic(path, buf.getvalue())


def build_prototypes(
    teacher,
    token_ids: np.ndarray,
    token_texts: Sequence[str],
    priority: Sequence[int],
    *,
    layer: int,
    representation: str,
    budget: int,
    heldout_share: float,
    wn=None,
    examples: bool = True,
) -> tuple[Prototypes, PrototypeReport]:
    """Prototypes for the key tokens (token_ids [R], token_texts [R]), words taken in `priority` order (indices
    into the tokens), spending at most `budget` teacher tokens on states not cached yet. `examples` False:
    every synset's prototype is its gloss sentence's state (`link_items`)."""
    from ..model.occurrence import locate_occurrences, occurrence_states, tokenizer_prefix_and_pad
    from .wordnet_corpus import open_wordnet_for_link

    t0 = time.perf_counter()
    wn = wn if wn is not None else open_wordnet_for_link()
    path = cache_path(teacher.name, teacher.revision, layer, representation)
    report = PrototypeReport(budget=int(budget), cache=str(path))
    words_of = [word_of_token(t) for t in token_texts]
    order = [i for i in priority if words_of[i] is not None]
    words = list(dict.fromkeys(words_of[i] for i in order))  # distinct, in priority order
    items = link_items(words, wn, heldout_share, examples=examples)
    report.words = len({p[0] for p in items.protos})
    keys = _item_keys(items)
    cache = _load_cache(path)
    missing = np.asarray([k not in cache for k in keys], bool)
    # the teacher's cost of each missing item: its row's length (the prefix and the copies included)
    prefix, _ = tokenizer_prefix_and_pad(teacher.tokenizer)
    loc = locate_occurrences(teacher.tokenizer, items.text, items.start, items.end, representation, prefix)
    cost = np.asarray([len(r) for r in loc.rows], np.int64) * missing
    # whole words within the budget, in priority order
    word_items: dict[str, set] = {}
    for w, _, _, _, idx, _ in items.protos:
        word_items.setdefault(w, set()).update(idx)
    chosen_words, spent, paid = set(), 0, set()
    for w in words:
        if w not in word_items:
            continue
        new = [i for i in word_items[w] if i not in paid]
        c = int(cost[new].sum()) if new else 0
        if spent + c > budget:
            continue  # a cheaper (or cached) word later may still fit
        spent += c
        paid.update(new)
        chosen_words.add(w)
    todo = np.asarray(sorted(i for i in paid if missing[i]), np.int64)
    if len(todo):
        states, ok = occurrence_states(
            teacher,
            [items.text[i] for i in todo],
            [items.start[i] for i in todo],
            [items.end[i] for i in todo],
            layer,
            representation,
        )  # [n, d]
        for j, i in enumerate(todo):
            if ok[j]:
                cache[keys[i]] = states[j].astype(np.float16)
        _save_cache(path, cache)
    report.computed = int(len(todo))
    report.teacher_tokens = int(spent)

    # prototypes per (key token, synset) for the chosen words
    by_word: dict[str, list[int]] = {}
    for r, w in enumerate(words_of):
        if w is not None and w in chosen_words:
            by_word.setdefault(w, []).append(r)
    p_key, p_vec, p_syn, p_gloss, p_lemma, p_tag = [], [], [], [], [], []
    used_items = set()
    for w, syn, gloss, lemma, idx, tagged in items.protos:
        if w not in by_word:
            continue
        vecs = [cache[keys[i]] for i in idx if keys[i] in cache]
        if not vecs:
            continue
        used_items.update(idx)
        proto = np.mean(np.asarray(vecs, np.float32), 0)
        for r in by_word[w]:
            p_key.append(int(token_ids[r]))
            p_vec.append(proto)
            p_syn.append(syn)
            p_gloss.append(gloss)
            p_lemma.append(lemma)
            p_tag.append(tagged)
    d = int(teacher.hidden_size)
    protos = (
        Prototypes(np.asarray(p_key), np.asarray(p_vec).reshape(-1, d), p_syn, p_gloss, p_lemma, np.asarray(p_tag))
        if p_key
        else Prototypes.empty(d)
    )
    report.words_linked = len(chosen_words)
    report.prototypes = len(protos)
    report.items = len(used_items)
    report.seconds = round(time.perf_counter() - t0, 2)
    return protos, report
