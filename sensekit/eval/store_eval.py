"""`evaluate_store`: every metric of a sense store as plain data (the CLI renders it).

Each metric returns a dict with `status` ("ok" or "skipped" with a `reason`), its `coverage`
(how many items it could score, out of how many) and a `baseline` measured in the same run.
A metric whose data (a benchmark file, WordNet, the teacher, the index) is missing is
skipped with the reason; the others still run.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

import numpy as np

from ..errors import SensekitError
from .config import EvalConfig
from .senses import SenseTable, Space, identity

__all__ = ["evaluate_store", "Skip"]

Progress = Callable[[str], None]


class Skip(Exception):
    """A metric cannot run here (missing data); the message is the reason shown to the user."""


def _coverage(scored: int, total: int) -> dict:
    return {"scored": int(scored), "total": int(total), "share": round(scored / total, 4) if total else 0.0}


def _num(x) -> Optional[float]:
    """JSON-safe float: NaN -> None, rounded for reading."""
    x = float(x)
    return None if not np.isfinite(x) else round(x, 4)


class _Run:
    """What the metrics share: the store, its sense table, and the teacher and WordNet, loaded once on demand."""

    def __init__(self, cfg: EvalConfig, store, to_space: Space, teacher=None) -> None:
        self.cfg, self.store, self.to_space = cfg, store, to_space
        self.table = SenseTable.from_store(store)
        self.key_mode = str(store.meta.get("key_mode") or "next")
        self.k = int(store.meta.get("k") or 10)
        self.min_context = int(store.meta.get("min_context") or 0)  # the build's rule for sources (0: older stores)
        self._teacher, self._teacher_error = teacher, None
        self._wn, self._word_tokens, self._token_text, self._embeddings = None, None, None, None

    def teacher(self):
        if self._teacher is None and self._teacher_error is None:
            from ..model.store_check import load_store_teacher

            try:
                self._teacher = load_store_teacher(self.store, self.cfg.teacher, self.cfg.device, self.cfg.dtype)
            except SensekitError as exc:
                if self.cfg.teacher:  # the user named it: a wrong one is an error, not a skip
                    raise
                self._teacher_error = f"the teacher cannot be loaded: {exc}"
        if self._teacher is None:
            raise Skip(self._teacher_error)
        return self._teacher

    def states(self, sentences, starts, ends) -> tuple[np.ndarray, np.ndarray]:
        """The teacher's state for each word span, where the store's key mode files it: (states [N, d], ok [N]).

        The build's --min-context is not applied to these queries (it would drop most words near the start of
        short benchmark sentences); `in_store_context` tells which states meet it."""
        from .states import teacher_prefix_and_pad, word_states

        t = self.teacher()
        prefix, pad = teacher_prefix_and_pad(t.tokenizer)
        return word_states(
            t.final_hidden,
            t.tokenizer,
            sentences,
            starts,
            ends,
            self.key_mode,
            prefix,
            t.hidden_size,
            t.device,
            pad,
            self.cfg.batch_tokens,
        )

    def in_store_context(self, sentences, starts, ends) -> np.ndarray:
        """[N] bool: the state has read at least the build's min_context real tokens (tokenization only)."""
        from .states import locate, teacher_prefix_and_pad

        t = self.teacher()
        return locate(
            t.tokenizer,
            sentences,
            starts,
            ends,
            self.key_mode,
            teacher_prefix_and_pad(t.tokenizer)[0],
            self.min_context,
        )[2]

    def wordnet(self):
        if self._wn is None:
            from ..lexicon.wordnet import open_wordnet

            try:
                self._wn = open_wordnet(self.cfg.wordnet)
            except SensekitError as exc:
                raise Skip(f"WordNet is not available: {exc}") from None
        return self._wn

    def single_tokens(self, words: list[str]) -> np.ndarray:
        """[n] the token of each word (leading space, no specials, as the store tokenizes), -1 unless exactly one."""
        enc = self.store.tokenizer.encode_batch([" " + w.strip() for w in words], add_special_tokens=False)
        return np.asarray([e.ids[0] if len(e.ids) == 1 else -1 for e in enc], np.int64)

    def token_text(self) -> dict[int, str]:
        if self._token_text is None:
            from .. import _sql

            self._token_text = dict(self.store.con.execute(_sql.TOKEN_TEXTS).fetchall())
        return self._token_text

    def input_embeddings(self) -> np.ndarray:
        """The teacher's input embedding matrix [V, d] (the word-similarity baseline)."""
        if self._embeddings is None:
            self._embeddings = self.teacher().model.get_input_embeddings().weight.detach().float().cpu().numpy()
        return self._embeddings

    def word_tokens(self) -> tuple[list[str], np.ndarray]:
        """Tokens with senses whose text is a lower-case word that tokenizes back to that token: (words, token ids)."""
        if self._word_tokens is None:
            from .neighbours import clean_word

            text_of = self.token_text()
            words, ids = [], []
            for tid in self.table.token_ids.tolist():  # per token with senses: a one-off scan, not a hot path
                t = text_of.get(tid, "")
                w = clean_word(t)
                if w is not None and t == " " + w:
                    words.append(w)
                    ids.append(tid)
            back = self.single_tokens(words)
            keep = back == np.asarray(ids, np.int64)
            self._word_tokens = ([w for w, k in zip(words, keep) if k], np.asarray(ids, np.int64)[keep])
        return self._word_tokens


# -- the metrics ----------------------------------------------------------------------------
def _wic(run: _Run) -> dict:
    from .wic import pair_cosines, read_wic, threshold_baseline, wic_accuracy

    path = run.cfg.data_file("wic")
    if path is None:
        raise Skip("no WiC file: pass --wic FILE (WiC JSONL)")
    items = read_wic(path, run.cfg.limit)
    run.teacher()
    tokens = run.single_tokens(items.words)
    n_senses = run.table.n_senses(tokens)
    s1, ok1 = run.states(items.sentences1, items.spans1[:, 0], items.spans1[:, 1])
    s2, ok2 = run.states(items.sentences2, items.spans2[:, 0], items.spans2[:, 1])
    scored = ok1 & ok2 & (tokens >= 0) & (n_senses >= 2)
    a1 = run.table.nearest(s1[scored], tokens[scored], run.to_space)
    a2 = run.table.nearest(s2[scored], tokens[scored], run.to_space)
    y = items.labels[scored]
    cos = pair_cosines(run.to_space(s1), run.to_space(s2))  # [N]
    base = threshold_baseline(cos[scored], y, run.cfg.seed)
    both = ok1 & ok2
    base_all = threshold_baseline(cos[both], items.labels[both], run.cfg.seed)
    # the pairs whose two states meet the build's --min-context: the states the store's senses are made of
    ctx = (
        run.in_store_context(items.sentences1, items.spans1[:, 0], items.spans1[:, 1])
        & run.in_store_context(items.sentences2, items.spans2[:, 0], items.spans2[:, 1])
    )[scored]
    return {
        "status": "ok",
        "file": path,
        "state": run.key_mode,
        "accuracy": _num(wic_accuracy(a1, a2, y)),
        "coverage": _coverage(int(scored.sum()), len(items)),
        "baseline": {
            "method": "cosine of the two raw states, threshold fitted on one half, scored on the other (two-fold)",
            "accuracy": _num(base["accuracy"]),
            "threshold": _num(base["threshold"]),
        },
        "majority_class": _num(max(y.mean(), 1 - y.mean())) if len(y) else None,
        "same_sense_rate": _num(np.mean(a1 == a2)) if len(y) else None,
        "baseline_all_pairs": {"accuracy": _num(base_all["accuracy"]), "pairs": int(both.sum())},
        "in_store_context": {
            "min_context": run.min_context,
            "pairs": int(ctx.sum()),
            "accuracy": _num(wic_accuracy(a1[ctx], a2[ctx], y[ctx])),
            "baseline_accuracy": _num(threshold_baseline(cos[scored][ctx], y[ctx], run.cfg.seed)["accuracy"]),
        },
        "excluded": {
            "word_not_one_token": int((tokens < 0).sum()),
            "under_2_senses": int(((tokens >= 0) & (n_senses < 2)).sum()),
            "no_state": int((~both).sum()),
        },
        "note": (
            "pairs whose word is one token with >= 2 senses; the sense inventory is the lemma's token "
            "(' ' + word), the state is taken from the sentence as written (the word may be inflected); "
            "with key=next a word that opens its sentence has no state; in_store_context: the pairs whose "
            "states have read at least the build's min_context tokens"
        ),
    }


def _similarity_one(run: _Run, name: str, path: str) -> dict:
    from .similarity import SIMILARITIES, pair_similarities, read_pairs, spearman

    w1, w2, gold = read_pairs(path, run.cfg.limit)
    t1, t2 = run.single_tokens(w1), run.single_tokens(w2)
    covered = (run.table.n_senses(t1) > 0) & (run.table.n_senses(t2) > 0) & (t1 >= 0) & (t2 >= 0)
    a, ma = run.table.padded(t1[covered], run.to_space)
    b, mb = run.table.padded(t2[covered], run.to_space)
    sims = pair_similarities(a, ma, b, mb)
    out = {
        "status": "ok",
        "file": path,
        "coverage": _coverage(int(covered.sum()), len(gold)),
        **{k: _num(spearman(sims[k], gold[covered])) for k in SIMILARITIES},
    }
    try:
        from .senses import unit

        emb = run.input_embeddings()
        cos = (unit(emb[t1[covered]]) * unit(emb[t2[covered]])).sum(1)
        out["baseline"] = {
            "method": "cosine of the teacher's input embeddings of the two tokens, same pairs",
            "spearman": _num(spearman(cos, gold[covered])),
        }
    except Skip as exc:
        out["baseline"] = {"method": "teacher input embeddings", "spearman": None, "reason": str(exc)}
    return out


def _similarity(run: _Run) -> dict:
    out = {}
    for name, flag in (("simlex999", "simlex"), ("wordsim353", "wordsim")):
        path = run.cfg.data_file(flag)
        out[name] = (
            _similarity_one(run, name, path)
            if path
            else {"status": "skipped", "reason": f"no {name} file: pass --{flag} FILE"}
        )
    if all(v["status"] == "skipped" for v in out.values()):
        raise Skip("no word-similarity file: pass --simlex FILE or --wordsim FILE")
    return {"status": "ok", **out, "note": "pairs whose two words are single tokens with senses; Spearman rho"}


def _purity(run: _Run) -> dict:
    from .purity import collect_occurrences, grouped_scores, one_cluster_scores, permuted_scores

    wn = run.wordnet()
    run.teacher()
    words, ids = run.word_tokens()
    multi = run.table.n_senses(ids) >= 2
    words, ids = [w for w, m in zip(words, multi) if m], ids[multi]
    eligible = [i for i, w in enumerate(words) if len(wn.synsets(w)) >= 2]
    order = np.random.default_rng(run.cfg.seed).permutation(len(eligible))
    cap = min([c for c in (run.cfg.limit, run.cfg.purity_words) if c] or [len(eligible)])
    occ = collect_occurrences(wn, [words[eligible[i]] for i in order], max_words=cap)
    token_of = dict(zip(words, ids.tolist()))
    tokens = np.asarray([token_of[w] for w in occ.word], np.int64)
    states, ok = run.states(occ.sentence, occ.start, occ.end)
    word_id = np.unique(np.asarray(occ.word), return_inverse=True)[1].ravel() if len(occ) else np.zeros(0, np.int64)
    gold = np.unique(np.asarray(occ.synset), return_inverse=True)[1].ravel() if len(occ) else np.zeros(0, np.int64)
    # a word keeps its place only with >= 4 located states over >= 2 synsets
    keep = ok.copy()
    for w in np.unique(word_id[ok]):
        sel = ok & (word_id == w)
        if sel.sum() < 4 or len(np.unique(gold[sel])) < 2:
            keep &= word_id != w
    pred = run.table.nearest(states[keep], tokens[keep], run.to_space)
    g, y = word_id[keep], gold[keep]
    if len(g) == 0:
        raise Skip("no word had 4 located WordNet examples over 2 synsets")
    ari, pur = grouped_scores(g, pred, y)
    p_ari, p_pur = permuted_scores(g, pred, y, run.cfg.seed)
    o_ari, o_pur = one_cluster_scores(g, y)
    return {
        "status": "ok",
        "ari": _num(ari.mean()),
        "purity": _num(pur.mean()),
        "coverage": {**_coverage(len(ari), len(eligible)), "occurrences": int(len(g)), "sample_cap": int(cap)},
        "baseline": {
            "method": "each word's sense assignment shuffled among its occurrences (same cluster sizes), 20 rounds",
            "ari": _num(p_ari),
            "purity": _num(p_pur),
        },
        "one_cluster": {"ari": _num(o_ari), "purity": _num(o_pur)},
        "senses_used_per_word": _num(np.mean([len(np.unique(pred[g == w])) for w in np.unique(g)])),
        "note": (
            "words: single tokens with >= 2 senses and >= 2 WordNet synsets (eligible), a seeded sample up to "
            "the cap; scored when >= 4 examples containing the word span >= 2 synsets. A store built on "
            "WordNet's glosses has seen these examples."
        ),
    }


def _neighbours(run: _Run) -> dict:
    from .neighbours import WordNetRelatives, related_share

    if run.store.index is None:
        raise Skip("the store has no HNSW index")
    rel = WordNetRelatives(run.wordnet())
    words, ids = run.word_tokens()
    pool = [i for i, w in enumerate(words) if rel.is_lemma(w)]
    rng = np.random.default_rng(run.cfg.seed)
    n = min(run.cfg.limit or run.cfg.neighbour_words, run.cfg.neighbour_words, len(pool))
    sample = [words[pool[i]] for i in np.sort(rng.choice(len(pool), n, replace=False))] if n else []
    if not sample:
        raise Skip("no token with senses is a WordNet lemma")
    k = run.cfg.neighbours_k
    found = [run.store.neighbors(w, k=k) for w in sample]  # the index's own query path, one call per word
    texts = [[nb.text for nb in f] for f in found]
    dists = np.asarray([nb.distance for f in found for nb in f], np.float64)
    share, judged = related_share(rel, sample, texts)
    token_text = run.token_text()
    random_texts = [[token_text.get(int(t), "") for t in rng.choice(run.table.token_ids, k)] for _ in sample]
    base, base_judged = related_share(rel, sample, random_texts)
    return {
        "status": "ok",
        "related_share": _num(share),
        "k": k,
        "coverage": {**_coverage(len(sample), len(pool)), "neighbours_judged": judged},
        "baseline": {
            "method": f"{k} random tokens with senses per word, same words",
            "related_share": _num(base),
            "neighbours_judged": base_judged,
        },
        "zero_distance_share": _num(np.mean(dists < 1e-4)) if len(dists) else None,
        "mean_distance": _num(dists.mean()) if len(dists) else None,
        "note": (
            "a seeded sample of tokens whose text is a lower-case WordNet lemma; related = same lemma in another "
            "form (morphy), synonym, hypernym or hyponym (cosine distance in the index's space)"
        ),
    }


def _index_knn(store, table: SenseTable):
    """knn(raw queries [m, d], k) -> candidate rows of `table` [m, k], from the store's HNSW index (which is
    built in the store's similarity space: the queries are mapped into it, as `neighbors` does)."""
    index = store.index
    if index is None:
        return None
    by_id = np.argsort(table.sense_ids)
    ids_sorted = table.sense_ids[by_id]

    def knn(queries: np.ndarray, k: int) -> np.ndarray:
        old = index.ef
        index.set_ef(max(2 * k, 16))  # near-identical vectors sit at the very top: a short beam finds them
        try:
            labels, _ = index.knn_query(
                np.ascontiguousarray(store.space.apply(queries), np.float32), k=min(k, index.get_current_count())
            )
        finally:
            index.set_ef(old)
        labels = labels.astype(np.int64)
        pos = np.minimum(np.searchsorted(ids_sorted, labels), len(ids_sorted) - 1)
        return np.where(ids_sorted[pos] == labels, by_id[pos], -1)

    return knn


def _health(run: _Run) -> dict:
    from .health import anisotropy, duplicate_senses, raw_tokens

    t = run.table
    if len(t.owner) == 0:
        raise Skip("the store has no token senses")
    dup = duplicate_senses(t.vectors, t.owner, run.cfg.duplicate_cos, knn=_index_knn(run.store, t))
    raw = raw_tokens(t.indptr, t.counts, run.k)  # [U]
    raw_sense = np.repeat(raw, np.diff(t.indptr))  # [S]
    seed, pairs = run.cfg.seed, run.cfg.anisotropy_pairs
    return {
        "status": "ok",
        "duplicates": {
            "senses": int(dup.sum()),
            "share": _num(dup.mean()),
            "cos_above": run.cfg.duplicate_cos,
            "tokens_affected": int(len(np.unique(t.owner[dup]))),
            "share_among_raw_token_senses": _num(dup[raw_sense].mean()) if raw_sense.any() else None,
            "share_among_clustered_senses": _num(dup[~raw_sense].mean()) if (~raw_sense).any() else None,
        },
        "raw_tokens": {
            "tokens": int(raw.sum()),
            "share": _num(raw.mean()),
            "k": run.k,
            "senses": int(raw_sense.sum()),
            "sense_share": _num(raw_sense.mean()),
        },
        "anisotropy": {
            "mean_cosine": _num(anisotropy(t.vectors, pairs, seed)),
            "pairs": pairs,
            "baseline_centred": _num(anisotropy(t.vectors, pairs, seed, centre=True)),
            "in_similarity_space": _num(anisotropy(t.in_space(run.to_space), pairs, seed)),
        },
        "coverage": _coverage(len(t.owner), len(t.owner)),
        "baseline": {
            "method": "a healthy store has no duplicates; isotropic vectors have mean cosine ~0 "
            "(the centred senses' mean cosine is measured beside it)"
        },
        "note": "token senses only (span clouds are derived from them); raw = a token's senses' counts sum to <= k",
    }


METRICS = {"wic": _wic, "similarity": _similarity, "purity": _purity, "neighbours": _neighbours, "health": _health}


def evaluate_store(
    cfg: EvalConfig, progress: Optional[Progress] = None, *, teacher=None, to_space: Optional[Space] = None
) -> dict:
    """Run the selected metrics on `cfg.store`. `teacher`: an already loaded Teacher (tests, benchmarks).
    `to_space`: a similarity transform [n, d] -> [n, d'] overriding `cfg.space` (the store's own, or raw)."""
    from ..store import open_store

    report = progress or (lambda name: None)
    t0 = time.perf_counter()
    with open_store(cfg.store) as store:
        space = (
            {"kind": "custom"}
            if to_space is not None
            else (store.space.describe() if cfg.space == "store" else {"kind": "identity"})
        )
        if to_space is None:
            to_space = store.space.apply if cfg.space == "store" else identity
        run = _Run(cfg, store, to_space, teacher)
        results: dict[str, dict] = {}
        for name in cfg.selected:
            report(name)
            t = time.perf_counter()
            try:
                results[name] = METRICS[name](run)
            except Skip as exc:
                results[name] = {"status": "skipped", "reason": str(exc)}
            results[name]["seconds"] = round(time.perf_counter() - t, 2)
        info = {
            "path": str(store.path),
            "teacher": store.meta.get("teacher"),
            "key_mode": run.key_mode,
            "k": run.k,
            "min_context": run.min_context,
            "space": space,
            "tokens_with_senses": int(len(run.table.token_ids)),
            "token_senses": int(len(run.table.owner)),
        }
    return {"store": info, "config": cfg.to_dict(), "metrics": results, "seconds": round(time.perf_counter() - t0, 2)}
