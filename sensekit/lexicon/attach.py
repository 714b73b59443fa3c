"""Attach lexical relations to a sense store: read sources, normalise, map to tokens, build
span clouds, and write it all atomically.

The SOURCE strings `attach_relations` and `sensekit relations add` take are parsed by the
registry of relation sources (sources.py: `wordnet`, `wordnet:DIR`, kaikki JSONL, Wiktionary
dumps, `pairs:FILE`, each optionally as `NAME=SPEC`); each source is one reader module registered
there. Rows are stored per source name (`wordnet`, `wiktionary`, `pairs:<file name>` unless NAME=
says otherwise), and attaching a source again replaces exactly its rows.

What happens (docs/method.md section 1, steps 4-5):
1. each source is read into pairs (word1, word2, syn|ant, provenance);
2. pairs are made symmetric, self-pairs dropped, optionally polarity-normalised (`polarity`);
3. words are tokenized with the store's tokenizer (' word', no special tokens): heads must
   be one token of >= `head_min_chars` characters, related words 1..`max_span_tokens` tokens;
   with `require_senses`, pairs whose head or related word has no senses (or cloud) go too;
4. `words` is rebuilt from every relation in the store (all sources), and every multi-token
   related word whose tokens all have senses gets a span cloud (tokens.span_clouds); only
   the senses of tokens inside such words are read into memory, never the whole store;
5. everything goes through `StoreWriter.update(...)`: the store changes all at once or not at all.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from ..errors import InputError
from .config import RelationsConfig
from .pairs import Pair, ReadReport, normalize
from .sources import Source, parse_source, sources
from .tokens import is_head, is_related

__all__ = ["attach_relations", "resolve_config", "parse_source", "read_source", "Source", "RelationsConfig", "map_rows"]


def resolve_config(config: RelationsConfig | None = None, **overrides: Any) -> RelationsConfig:
    """`config` (default: RelationsConfig()) with `overrides` applied; unknown names raise InputError."""
    config = config if config is not None else RelationsConfig()
    known = [f.name for f in dataclasses.fields(RelationsConfig)]
    unknown = set(overrides) - set(known)
    if unknown:
        raise InputError(f"unknown relation option(s) {', '.join(sorted(unknown))}; known: {', '.join(known)}")
    return dataclasses.replace(config, **overrides) if overrides else config


def read_source(source: Source, config: RelationsConfig | None = None) -> tuple[list[Pair], ReadReport, set[str]]:
    """(pairs, report, vocabulary) of one source, read by its registered reader (sources.py); vocabulary = the
    words polarity may map to."""
    cfg = config if config is not None else RelationsConfig()
    report = ReadReport(source.name)
    vocab: set[str] = set()
    pairs = sources()[source.source_type].read(source.path, cfg, report, vocab)
    for a, b, _, _ in pairs:
        vocab.add(a)
        vocab.add(b)
    return pairs, report, vocab


def map_rows(
    rows: dict[str, list], token_of: dict[str, tuple[int, ...]], config: RelationsConfig, has_senses=None
) -> tuple[dict[str, list], dict[str, int]]:
    """Keep the rows whose head is one token of >= head_min_chars characters and whose related
    word has 1..max_span_tokens tokens (and, with `has_senses`, whose words have senses)."""
    hm, mx = config.head_min_chars, config.max_span_tokens
    keep = []
    stats = {"dropped_head": 0, "dropped_related": 0, "dropped_no_senses": 0}
    for i, (h, r) in enumerate(zip(rows["head"], rows["related"])):
        th, tr = token_of[h], token_of[r]
        if not is_head(h, th, hm):
            stats["dropped_head"] += 1
        elif not is_related(tr, mx):
            stats["dropped_related"] += 1
        elif has_senses is not None and not (has_senses(th) and has_senses(tr)):
            stats["dropped_no_senses"] += 1
        else:
            keep.append(i)
    return {k: [v[i] for i in keep] for k, v in rows.items()}, stats


def attach_relations(
    store_path: str | os.PathLike,
    sources: list[str],
    config: RelationsConfig | None = None,
    wordnet=None,
    **overrides: Any,
) -> dict[str, Any]:
    """Read `sources`, normalise, map to the store's tokens, build span clouds, and replace
    those sources' relation rows in the store at `store_path`, atomically.

    `config` (default: RelationsConfig()) holds the options; keyword `overrides` replace single
    fields of it, e.g. `attach_relations(path, ["wordnet"], polarity=True)`. `wordnet`: the reader
    whose synsets attach the relations of linked senses (None: NLTK's WordNet when one is installed).

    Returns {"sources": {name: counts}, "words": n, "spans": n, "span_rows": n} where counts
    has read / used / pairs / bad / errors (first bad lines) / rows / syn / ant / derived /
    dropped_head / dropped_related / dropped_no_senses.
    """
    from ..store import open_store
    from ..writer import StoreWriter
    from .tokens import tokenize_words

    cfg = resolve_config(config, **overrides)
    parsed = _parse_sources(sources)
    with open_store(store_path) as store:
        tokenizer = store.tokenizer
        _ = tokenizer.get_vocab_size()  # fail now, before reading sources, if tokenizer.json is missing
        sense_count = store.sense_counts()  # [max token id + 1]; only span tokens' senses are loaded later

    def has_senses(ids: tuple[int, ...]) -> bool:
        return all(0 <= t < len(sense_count) and sense_count[t] > 0 for t in ids)

    # Read every source before the first tokenization: a dump is parsed in forked worker
    # processes, which must not inherit the tokenizer's thread pool.
    normalized: list[tuple[Source, dict[str, list], ReadReport]] = []
    for src in parsed:
        pairs, report, vocab = read_source(src, cfg)
        normalized.append((src, normalize(pairs, polarity=cfg.polarity, known=vocab), report))
        del pairs, vocab
    results: dict[str, dict[str, Any]] = {}
    all_rows: dict[str, dict[str, list]] = {}
    for src, rows, report in normalized:
        words = sorted(set(rows["head"]) | set(rows["related"]))
        token_of = dict(zip(words, tokenize_words(tokenizer, words)))
        rows, stats = map_rows(rows, token_of, cfg, has_senses if cfg.require_senses else None)
        all_rows[src.name] = rows
        counts = report.as_dict()
        counts.update(stats)
        counts.update(
            rows=len(rows["head"]),
            syn=sum(k == "syn" for k in rows["kind"]),
            ant=sum(k == "ant" for k in rows["kind"]),
            derived=sum(map(bool, rows["derived"])),
        )
        results[src.name] = counts

    writer = StoreWriter.update(store_path)
    try:
        for name, rows in all_rows.items():
            writer.replace_relations(name, rows)
        store_counts = _rebuild_words_and_spans(writer, tokenizer, has_senses, cfg)
        store_counts["attached"], _ = attach_head_senses(writer, tokenizer)
        for view in writer.views[1:]:  # each other view's senses get their own attachment
            linked = bool(writer.linked_senses(view))
            wn = (wordnet or _wordnet_or_none()) if linked else None
            attached, by_synset = attach_head_senses(writer, tokenizer, view=view, wordnet=wn)
            store_counts[f"attached_{view}"] = attached
            if linked:
                store_counts[f"attached_{view}_by_synset"] = by_synset
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return {"sources": results, **store_counts}


def _parse_sources(sources: list[str] | str) -> list[Source]:
    """Parsed SOURCE strings, refusing none and two that would share a name."""
    if isinstance(sources, str):
        sources = [sources]
    parsed = [parse_source(s) for s in sources]
    if not parsed:
        raise InputError("no relation sources given")
    names = [s.name for s in parsed]
    if len(set(names)) != len(names):
        raise InputError(
            f"two sources would be stored under the same name ({', '.join(names)}); give one a NAME= prefix"
        )
    return parsed


def _span_sense_table(writer, tokens: list[int], view: str | None = None):
    """A SenseTable of just `tokens` (the senses span clouds need) in `view` (None: the bundle's first view), read
    from the bundle being written."""
    from .tokens import SenseTable

    return SenseTable(*writer.token_senses(sorted(set(tokens)), view))


def _rebuild_words_and_spans(writer, tokenizer, has_senses, cfg: RelationsConfig) -> dict[str, int]:
    """Rewrite `words` from every relation in the store, and every span cloud."""
    from .tokens import SenseTable, span_clouds, tokenize_words

    words = writer.relation_words()
    ids = tokenize_words(tokenizer, words)
    writer.delete_span_senses()
    writer.clear_words()
    span_of_tokens: dict[tuple[int, ...], int] = {}
    span_tokens: list[tuple[int, ...]] = []
    span_texts: list[str] = []
    for w, t in zip(words, ids):
        if len(t) >= 2 and t not in span_of_tokens and has_senses(t):
            span_of_tokens[t] = len(span_tokens)
            span_tokens.append(t)
            span_texts.append(w)
    if span_tokens:
        table = _span_sense_table(writer, [x for t in span_tokens for x in t])
    else:
        table = SenseTable(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, writer.dim), np.float32))
    span_index, row, emb = span_clouds(table, span_tokens, cfg.cloud_rows)
    base = writer.next_span_id()
    has_cloud = np.zeros(len(span_tokens), bool)
    has_cloud[span_index] = True
    keep = np.nonzero(has_cloud)[0]
    new_id = np.full(len(span_tokens), -1, np.int64)
    new_id[keep] = base + np.arange(len(keep))
    if len(keep):
        writer.add_spans(new_id[keep].tolist(), [span_tokens[i] for i in keep], [span_texts[i] for i in keep])
        writer.add_senses(emb, row, np.zeros(len(row), np.int32), span_ids=new_id[span_index])
        for view in writer.views[1:]:  # the same spans' clouds in the other views
            spans = [span_tokens[i] for i in keep]
            v_index, v_row, v_emb = span_clouds(
                _span_sense_table(writer, [x for t in spans for x in t], view), spans, cfg.cloud_rows
            )
            if len(v_row):
                v_ids = new_id[keep][v_index]
                writer.add_senses(v_emb, v_row, np.zeros(len(v_row), np.int32), span_ids=v_ids, view=view)
    span_ids = [
        int(new_id[span_of_tokens[t]]) if t in span_of_tokens and new_id[span_of_tokens[t]] >= 0 else None for t in ids
    ]
    if words:
        writer.add_words(words, ids, span_ids)
    return {"words": len(words), "spans": int(len(keep)), "span_rows": int(len(row))}


def _owner_rows(owner: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of each wanted owner in a table sorted by owner: (start [n], count [n]); count 0 if absent."""
    lo = np.searchsorted(owner, wanted, side="left")
    hi = np.searchsorted(owner, wanted, side="right")
    return lo, hi - lo


def nearest_head_senses(
    vectors: np.ndarray,
    heads: tuple[np.ndarray, np.ndarray],
    related: tuple[np.ndarray, np.ndarray],
    forced: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """For each pair, the head's sense (its position among the head's rows) whose best cosine to any of the
    related word's senses is highest, or `forced` where >= 0; and that cosine. `vectors`: [rows, d], unit;
    `heads`, `related`: (start, count) of each pair's rows, [n] each. A pair with no rows on either side
    gets -1. Returns (pick [n], cos [n])."""
    (h_start, h_count), (r_start, r_count) = heads, related
    pick = np.full(len(h_start), -1, np.int64)
    best_cos = np.zeros(len(h_start), np.float32)
    live = np.flatnonzero((h_count > 0) & (r_count > 0))  # pairs with senses on both sides
    live = live[np.argsort(h_start[live], kind="stable")]
    # One matrix product per head word against all its related words' senses: a loop over the distinct
    # heads (thousands), where padding every pair to the widest word cost 10-20x (benchmarks/attach.py).
    for at in np.split(live, np.flatnonzero(np.diff(h_start[live])) + 1) if len(live) else ():
        counts = r_count[at]  # [n] senses of each related word
        offsets = np.concatenate(([0], np.cumsum(counts)[:-1]))  # [n] each word's first column
        rows = np.repeat(r_start[at] - offsets, counts) + np.arange(counts.sum())  # [sum counts]
        head = vectors[h_start[at[0]] : h_start[at[0]] + h_count[at[0]]]  # [hw, d]
        cos = np.maximum.reduceat(head @ vectors[rows].T, offsets, axis=1)  # [hw, n] best related sense
        chosen = np.where(forced[at] >= 0, forced[at], cos.argmax(0))  # [n] the synset's sense, else the nearest
        pick[at] = chosen
        best_cos[at] = cos[chosen, np.arange(len(at))]
    return pick, best_cos


def _wordnet_or_none():
    """WordNet for the relations of linked senses; None (nearest-sense attachment only) when it is absent."""
    from ..errors import SensekitError
    from .wordnet import open_wordnet

    try:
        return open_wordnet(None)
    except SensekitError:
        return None


def synset_senses(linked: list[tuple[int, int, str]], wordnet) -> dict[tuple[int, str], int]:
    """(head token, related word) -> the head token's sense (sense_index) whose synset names the related
    word: one of the synset's lemmas (a synonym) or a WordNet antonym of one of them. `linked`: (token_id,
    sense_index, synset) rows of one view; multi-word lemmas read with spaces. The first linked sense wins
    a tie."""
    from nltk.corpus.reader.wordnet import WordNetError

    out: dict[tuple[int, str], int] = {}
    for token_id, sense_index, name in linked:  # per linked sense (thousands), WordNet look-ups
        try:
            lemmas = wordnet.synset(name).lemmas()
        except WordNetError:
            continue
        named = {x.name() for x in lemmas} | {a.name() for x in lemmas for a in x.antonyms()}
        for word in named:
            out.setdefault((int(token_id), word.replace("_", " ").lower()), int(sense_index))
    return out


def attach_head_senses(writer, tokenizer, view: str | None = None, wordnet=None) -> tuple[int, int]:
    """For every (head, related) pair, record which of the head's senses the related word's senses
    (token senses, or span cloud rows) are nearest to, by cosine in the view's similarity space.

    A thesaurus says "light ~ illumination" but not which sense of light; the teacher's own
    senses decide. With `wordnet`, a head sense linked to a synset that names the related word
    (`synset_senses`) takes the pair instead, whatever the cosine. Pairs whose words have no senses
    stay unattached (no row). Returns (pairs attached, of them by synset).
    """
    from .tokens import tokenize_words

    heads, related = writer.relation_pairs()
    if not heads:
        return 0
    view = view or writer.views[0]  # the bundle's first view unless told
    rows = writer.sense_rows(view)
    space = writer.spaces.get(view)
    vectors = rows["embedding"] if space is None else space.apply(rows["embedding"])
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    # Owner keys: token t -> t, span s -> -(s + 1); rows sorted by (owner, sense_index).
    owner = np.where(rows["span_id"] >= 0, -(rows["span_id"] + 1), rows["token_id"])
    order = np.lexsort((rows["sense_index"], owner))
    owner, vectors, sense_index = owner[order], vectors[order], rows["sense_index"][order]
    span_of = {w: s for w, _, s in writer.words_rows() if s is not None}
    words = sorted(set(heads) | set(related))
    ids = dict(zip(words, tokenize_words(tokenizer, words)))
    key_of = {
        w: (-(span_of[w] + 1) if w in span_of else (t[0] if len(t) == 1 else np.iinfo(np.int64).min))
        for w, t in ids.items()
    }
    h_start, h_count = _owner_rows(owner, np.asarray([key_of[h] for h in heads], np.int64))
    r_start, r_count = _owner_rows(owner, np.asarray([key_of[r] for r in related], np.int64))
    named = synset_senses(writer.linked_senses(view), wordnet) if wordnet is not None else {}
    # [n] the head sense a synset names for each pair (-1: none); sense_index is the position in the head's rows
    forced = np.asarray([named.get((key_of[h], r), -1) for h, r in zip(heads, related)], np.int64)  # per pair
    forced = np.where(forced < h_count, forced, -1)
    pick, cos = nearest_head_senses(vectors, (h_start, h_count), (r_start, r_count), forced)
    ok = pick >= 0
    best = np.full(len(heads), -1, np.int64)
    best[ok] = sense_index[h_start[ok] + pick[ok]]
    dist = np.where(ok, 1.0 - cos, 0.0).astype(np.float32)
    writer.set_head_senses(heads, related, best, dist, view=view)
    return int((best >= 0).sum()), int(((best >= 0) & (forced >= 0)).sum())
