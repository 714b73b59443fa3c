"""`build(config)`: corpus -> teacher hidden states -> per-token reservoirs -> k-means -> store.

A plain function: it returns a `BuildResult` and prints nothing. Progress goes through the
`progress(stage, done, total)` callback (stages: load, harvest, merge, cluster, contexts,
write, relations); only the CLI draws it.

`build()` reads top to bottom as the recipe; each step is a function below it, or lives in
its own module: `distributed` (ranks, the merge tree), `checkpoint` (save / resume),
`contexts` (snippets of the chosen samples). Multi-process (WORLD_SIZE > 1): every rank
harvests its shard, the reservoirs are merged to rank 0, and rank 0 clusters and writes.

Two views of every sample (docs/lexical.md): the *loss* view (post-norm state,
clustered by docs/method.md's k-means: what distill reads) and, unless `--lexical-layer none`, the
*lexical* view (layer N's state at the key token itself, captured by a hook in the same forward,
clustered by `lexical_cluster.cluster_adaptive` into 1..k senses of >= --min-sense-size samples).
Both views share the samples (one reservoir slot holds both vectors), the tokens and the contexts'
origins; each has its own senses, contexts, similarity space and HNSW index.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..errors import InputError, MissingDependency
from ..fs import DB_FILE
from ..pause_points import pause_point
from ..progress import Progress, no_progress
from .checkpoint import Checkpoint, build_fingerprint, build_settings
from .config import BuildConfig, parse_bytes
from .contexts import context_columns, fetch_documents
from .distributed import Ranks, init_ranks, merge_tree, teacher_device

__all__ = ["BuildConfig", "BuildResult", "build", "parse_bytes"]


@dataclass
class BuildResult:
    store: Optional[Path]  # None on ranks other than 0
    tokens: int  # distinct key tokens
    senses: int
    contexts: int
    tokens_processed: int  # corpus tokens fed to the teacher (all ranks)
    key_positions: int  # positions filed under a key (all ranks)
    seconds: float
    harvest_seconds: float
    tokens_per_s: float  # teacher throughput during the harvest (all ranks)
    relations: Optional[dict] = None
    meta: dict = field(default_factory=dict)
    lexical_senses: int = 0  # senses of the lexical view (0: none)
    warnings: list = field(default_factory=list)  # one line each, for the CLI to print (unmatched focus words)


def build(config: BuildConfig, progress: Optional[Progress] = None, *, teacher=None) -> BuildResult:
    """Run a whole build. `teacher`: an already loaded `Teacher` (tests, benchmarks) instead of config.teacher."""
    from ..model.layers import layer_count
    from ..model.lexical import resolve_lexical_layer
    from ..model.teacher import load_teacher
    from .harvest import BatchStream, check_seq_len
    from .reservoir import Reservoir

    cfg, report = config, progress or no_progress
    t_start = time.perf_counter()
    store = _store_path(cfg.store)
    corpus = _open_corpus(cfg)  # before the teacher loads: a missing corpus fails fast

    report("load", 0, None)
    if teacher is None:
        teacher = load_teacher(cfg.teacher, teacher_device(cfg.device), cfg.dtype)
    lexical_layer = resolve_lexical_layer(cfg.lexical_layer, layer_count(teacher.model.config))
    lexical_dim = teacher.hidden_size if lexical_layer is not None else 0
    ranks = init_ranks(teacher.device)
    check_seq_len(cfg.seq_len, teacher, repeated=lexical_layer is not None and cfg.lexical_representation == "repeat")
    vocab = _KeyVocabulary.of(teacher)
    cap = ranks.token_cap(cfg.max_tokens)
    _check_reservoir_memory(cfg, teacher, vocab, cap, lexical_dim)  # before any work

    settings = build_settings(cfg, corpus.fingerprint, teacher, ranks.world)  # a refused --resume names what changed
    ckpt = Checkpoint.for_rank(
        store, ranks.rank, build_fingerprint(cfg, corpus.fingerprint, teacher, ranks.world), settings
    )
    resumed = ckpt.load() if cfg.resume else None
    reservoir, start = resumed or (
        Reservoir(
            teacher.vocab_size,
            teacher.hidden_size,
            cfg.samples_per_token,
            seed=cfg.seed,
            stream=ranks.rank,
            lexical_dim=lexical_dim,
        ),
        None,
    )
    stream = BatchStream(
        corpus.docs,
        teacher.tokenizer,
        seq_len=cfg.seq_len,
        batch_size=cfg.batch_size,
        overlap=cfg.window_overlap,
        prefix=vocab.prefix,
        pad_id=vocab.pad_id,
        max_tokens=cap,
        rank=ranks.rank,
        world=ranks.world,
        start=start,
    )
    tokens_done, harvest_s = _harvest(
        cfg,
        teacher,
        stream,
        reservoir,
        vocab=vocab,
        ckpt=ckpt,
        ranks=ranks,
        start=start,
        report=report,
        lexical_layer=lexical_layer,
    )

    tokens_all, positions_all = ranks.total(tokens_done, int(reservoir.counts.sum()))
    if tokens_all == 0:
        raise InputError(f"the corpus is empty: no text in {', '.join(corpus.description)}")
    samples = reservoir.export()
    if ranks.world > 1:
        report("merge", 0, None)
        samples = merge_tree(samples, ranks, cfg.samples_per_token, cfg.seed)
    if ranks.rank != 0:  # rank 0 clusters and writes
        ranks.barrier()
        ckpt.remove()
        return BuildResult(
            None,
            0,
            0,
            0,
            tokens_all,
            positions_all,
            time.perf_counter() - t_start,
            harvest_s,
            tokens_all / max(harvest_s, 1e-9),
        )
    samples, shared_dropped = samples.without_shared_states()  # context-free states say nothing of their key
    if len(samples.keys) == 0:
        raise InputError(
            f"the corpus gave no key tokens ({tokens_all} tokens read from "
            f"{', '.join(corpus.description)}); give a larger corpus or --max-tokens"
        )
    clusters = _cluster(cfg, samples, teacher, report)
    lexical, link = (
        _cluster_lexical(cfg, samples, teacher, report, lexical_layer, corpus)
        if samples.lexical is not None
        else (None, None)
    )
    contexts = _collect_contexts(samples, [clusters, lexical], stream, corpus, report)
    labels = _lexical_labels(link, lexical, contexts[1])
    provenance = _provenance(cfg, teacher, corpus, tokens_all, positions_all, ranks.world)
    provenance["shared_states_dropped"] = shared_dropped
    provenance["lexical_layer"] = lexical_layer
    provenance["lexical_representation"] = cfg.lexical_representation if lexical_layer is not None else None
    if link is not None:
        provenance["link"] = link.report
    warnings = _focus_warnings(corpus, teacher)
    if corpus.focus is not None:
        provenance["focus"] = {"words": list(corpus.focus.words), "unmatched": _unmatched_focus(corpus, teacher)}
    _write_store(store, teacher, samples, clusters, contexts, provenance, report, lexical, labels)
    relations = _attach_relations(cfg, store, report)

    ranks.barrier()
    ckpt.remove(with_parent=True)
    return BuildResult(
        store,
        len(samples.keys),
        len(clusters.sense_key),
        len(clusters.ctx_sense),
        tokens_all,
        positions_all,
        time.perf_counter() - t_start,
        harvest_s,
        tokens_all / max(harvest_s, 1e-9),
        relations,
        provenance,
        0 if lexical is None else len(lexical.sense_key),
        warnings,
    )


# -- the steps, in the order build() takes them -------------------------------------------
def _store_path(store: str) -> Path:
    """The output bundle's path; refuses one that holds something other than a sensekit store."""
    path = Path(store).expanduser()
    if path.exists() and not (path / DB_FILE).is_file() and (path.is_file() or any(path.iterdir())):
        # the writer replaces the bundle directory: never let it replace something else
        raise InputError(f"--store {path} exists and is not a sensekit store; choose another path or remove it")
    return path


@dataclass(frozen=True)
class _Corpus:
    docs: Callable[..., Any]  # docs(select=None) -> iterator of (doc_id, text), a fresh pass each call
    fingerprint: str
    description: list[str]  # what the provenance records as the corpus
    focus: Any = None  # focus.FocusedDocs when --focus is given (it is then `docs`)
    heldout: Any = None  # the default WordNet corpus's held-out rule (wordnet_corpus.heldout_provenance)


def _open_corpus(cfg: BuildConfig) -> _Corpus:
    """The corpus (`_plain_corpus`), its documents with the --focus words read first."""
    from .focus import FocusedDocs, parse_focus

    words = parse_focus(cfg.focus)  # a missing --focus file fails here, before the teacher loads
    corpus = _plain_corpus(cfg)
    if not words:
        return corpus
    # enough occurrences that the reservoirs fill (several per document are not all keys): 2 G
    focused = FocusedDocs(corpus.docs, words, enough=2 * cfg.samples_per_token)
    return _Corpus(focused, corpus.fingerprint, corpus.description, focused, corpus.heldout)  # the rule stays recorded


def _unmatched_focus(corpus: _Corpus, teacher) -> list[str]:
    """Focus words that cannot fill a reservoir: not one token with a leading space, or not in the corpus."""
    from .focus import untokenizable

    bad = set(untokenizable(corpus.focus.words, teacher.tokenizer)) | set(corpus.focus.missing())
    return [w for w in corpus.focus.words if w in bad]


def _focus_warnings(corpus: _Corpus, teacher) -> list[str]:
    if corpus.focus is None:
        return []
    from .focus import untokenizable

    split = untokenizable(corpus.focus.words, teacher.tokenizer)
    missing = [w for w in corpus.focus.missing() if w not in split]
    parts = []
    if split:
        parts.append(f"not a single token of the teacher: {', '.join(split)}")
    if missing:
        parts.append(f"not found in the corpus read: {', '.join(missing)}")
    return [f"focus words without senses ({'; '.join(parts)})"] if parts else []


def _plain_corpus(cfg: BuildConfig) -> _Corpus:
    """The given corpus paths, or WordNet's glosses when none are given."""
    from . import corpus as C
    from . import wordnet_corpus as W

    if cfg.corpus:
        paths = C.resolve_paths(cfg.corpus)
        return _Corpus(
            lambda select=None: C.iter_documents(list(cfg.corpus), cfg.text_field, select),
            C.corpus_fingerprint(paths, cfg.text_field),
            [str(p) for p in paths],
        )
    if next(W.iter_wordnet(), None) is None:  # fail fast (no WordNet) before loading the teacher
        raise InputError("the default corpus (WordNet) is empty; pass a corpus path")
    return _Corpus(
        lambda select=None: W.iter_wordnet(lemmas=cfg.gloss_lemmas, heldout_share=cfg.heldout_share),
        W.wordnet_fingerprint(heldout_share=cfg.heldout_share),
        [W.WORDNET_CORPUS + ("+lemmas" if cfg.gloss_lemmas else "")],
        heldout=W.heldout_provenance(cfg.heldout_share),  # eval's WordNet pairs come from these held-out sentences
    )


@dataclass(frozen=True)
class _KeyVocabulary:
    """Which token ids may be keys, and how windows are padded and prefixed."""

    special: Any  # [V] bool tensor on the teacher's device: never a key
    n_special: int
    pad_id: int
    prefix: list[int]  # the ids the tokenizer puts before a text (a BOS, or nothing)

    @classmethod
    def of(cls, teacher) -> "_KeyVocabulary":
        import torch

        from .corpus import special_prefix

        tok, V = teacher.tokenizer, teacher.vocab_size
        special_ids = [i for i in teacher.special_ids if i < V]
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else (special_ids[0] if special_ids else 0)
        special = torch.zeros(V, dtype=torch.bool)
        special[special_ids] = True
        return cls(special.to(teacher.device), len(special_ids), pad_id, special_prefix(tok))


def _check_reservoir_memory(
    cfg: BuildConfig, teacher, vocab: _KeyVocabulary, cap: Optional[int], lexical_dim: int = 0
) -> None:
    """Refuse a build whose reservoirs could outgrow --reservoir-memory (worst case: every key fills up)."""
    from .reservoir import reservoir_bytes

    V, d, G = teacher.vocab_size, teacher.hidden_size, cfg.samples_per_token
    need = reservoir_bytes(V - vocab.n_special, G, d, cap, lexical_dim)
    bound = parse_bytes(cfg.reservoir_memory)
    if need > bound:
        raise InputError(
            f"reservoirs may need up to {need / 2**30:.2f} GiB (vocab {V} x G={G} x d={d}, fp16) but "
            f"--reservoir-memory is {bound / 2**30:.2f} GiB; raise it, lower --samples-per-token "
            "or set --max-tokens"
        )


def _harvest(
    cfg: BuildConfig,
    teacher,
    stream,
    reservoir,
    *,
    vocab: _KeyVocabulary,
    ckpt: Checkpoint,
    ranks: Ranks,
    start: Optional[dict],
    report: Progress,
    lexical_layer: Optional[int] = None,
) -> tuple[int, float]:
    """Feed every batch through the teacher into the reservoirs. Returns (this rank's tokens, seconds).
    With a lexical layer, a hook keeps that layer's output of the same forward (no second pass)."""
    from contextlib import ExitStack

    import torch

    from .harvest import capture_layer, harvest_positions, prefetch

    tokens_done = start["tokens_done"] if start else 0
    batches = 0
    t_h = time.perf_counter()
    report("harvest", tokens_done, cfg.max_tokens)
    checked = False
    with ExitStack() as forward_hooks:
        captured = None
        for batch in prefetch(stream):
            if not checked:  # cheap runtime guard: lm_head(final_hidden) == the model's logits (one short row)
                teacher.check_post_norm(batch.ids[:1, :32], batch.mask[:1, :32])
                checked = True
                # after the check's forward; the repeat view reads its layer from a second forward instead
                hooked = lexical_layer if cfg.lexical_representation == "first" else None
                captured = forward_hooks.enter_context(capture_layer(teacher, hooked))
            keys, vecs, meta, lex = harvest_positions(
                teacher,
                batch,
                key_mode=cfg.key,
                next_token=cfg.next_token,
                min_context=cfg.min_context,
                special=vocab.special,
                lexical_layer=lexical_layer,
                captured=captured,
                lexical_representation=cfg.lexical_representation,
            )  # keys [P], vecs [P, d], meta [P, 3], lex [P, d] or None
            sel, dest = reservoir.admit(keys)
            if len(sel):  # only the kept rows leave the device
                idx = torch.from_numpy(sel).to(vecs.device)
                lex_kept = None if lex is None else lex.index_select(0, idx).to(torch.float16).cpu().numpy()
                reservoir.write(dest, vecs.index_select(0, idx).to(torch.float16).cpu().numpy(), meta[sel], lex_kept)
            tokens_done = batch.state["tokens_done"]
            batches += 1
            report("harvest", tokens_done * ranks.world if ranks.world > 1 else tokens_done, cfg.max_tokens)
            if cfg.checkpoint_every and batches % cfg.checkpoint_every == 0:
                ckpt.save(reservoir, batch.state)
                pause_point("harvest")  # tests SIGKILL the build here (sensekit/pause_points.py)
    return tokens_done, time.perf_counter() - t_h


def _cluster(cfg: BuildConfig, samples, teacher, report: Progress):
    """k-means over every key's samples at once, on the teacher's device."""
    from .cluster import cluster_samples

    report("cluster", 0, int(samples.indptr[-1]))
    pause_point("cluster")
    clusters = cluster_samples(
        samples.keys,
        samples.indptr,
        samples.vectors,
        cfg.senses_per_token,
        cfg.contexts_per_sense,
        seed=cfg.seed,
        device=teacher.device,
        max_iter=cfg.kmeans_iters,
        tol=cfg.kmeans_tol,
        progress=lambda done, total: report("cluster", done, total),
    )
    if cfg.raw_small:
        return clusters
    return _centroids_for_small(clusters, samples, cfg.senses_per_token, cfg.contexts_per_sense)


def _centroids_for_small(clusters, samples, k: int, E: int):
    """--no-raw-small: a token with n <= k samples gets one sense, the centroid of its samples, with its
    sample nearest to that centroid as its context (instead of its n raw samples)."""
    from .cluster import ClusterResult

    lengths = samples.lengths
    small_key = samples.keys[lengths <= k]
    raw = np.isin(clusters.sense_key, small_key)  # [S] the raw-sample senses to replace
    if not raw.any():
        return clusters
    rows = np.flatnonzero(lengths <= k)  # [r] rows of samples
    starts, ln = samples.indptr[rows], lengths[rows]
    owner = np.repeat(np.arange(len(rows)), ln)
    sample = np.repeat(starts, ln) + (np.arange(ln.sum()) - np.repeat(np.cumsum(ln) - ln, ln))
    vec = samples.vectors[sample].astype(np.float32)
    cent = np.zeros((len(rows), vec.shape[1]), np.float32)
    np.add.at(cent, owner, vec)
    cent /= ln[:, None]
    dist = np.linalg.norm(vec - cent[owner], axis=1)
    order = np.lexsort((dist, owner))
    first = order[np.r_[True, owner[order][1:] != owner[order][:-1]]]  # nearest sample of each row
    keep = ~raw
    sense_key = np.concatenate([clusters.sense_key[keep], samples.keys[rows]])
    sense_index = np.concatenate([clusters.sense_index[keep], np.zeros(len(rows), np.int64)])
    sense_count = np.concatenate([clusters.sense_count[keep], ln.astype(np.int64)])
    centroids = np.concatenate([clusters.centroids[keep], cent])
    perm = np.lexsort((sense_index, sense_key))
    new_pos = np.empty(len(perm), np.int64)
    new_pos[perm] = np.arange(len(perm))
    old_to_new = np.full(len(clusters.sense_key), -1, np.int64)
    old_to_new[np.flatnonzero(keep)] = new_pos[: int(keep.sum())]
    ctx_keep = keep[clusters.ctx_sense] if len(clusters.ctx_sense) else np.zeros(0, bool)
    ctx_sense = np.concatenate([old_to_new[clusters.ctx_sense[ctx_keep]], new_pos[int(keep.sum()) :]])
    ctx_rank = np.concatenate([clusters.ctx_rank[ctx_keep], np.zeros(len(rows), np.int64)])
    ctx_sample = np.concatenate([clusters.ctx_sample[ctx_keep], sample[first]])
    ctx_distance = np.concatenate([clusters.ctx_distance[ctx_keep], dist[first].astype(np.float32)])
    if E == 0:  # --contexts-per-sense 0
        ctx_sense = ctx_rank = ctx_sample = np.zeros(0, np.int64)
        ctx_distance = np.zeros(0, np.float32)
    co = np.lexsort((ctx_rank, ctx_sense))
    return ClusterResult(
        sense_key=sense_key[perm],
        sense_index=sense_index[perm],
        sense_count=sense_count[perm],
        centroids=centroids[perm],
        ctx_sense=ctx_sense[co],
        ctx_rank=ctx_rank[co],
        ctx_sample=ctx_sample[co],
        ctx_distance=ctx_distance[co],
        inertia=clusters.inertia,
    )


def _cluster_lexical(cfg: BuildConfig, samples, teacher, report: Progress, layer=None, corpus=None):
    """The lexical view's senses: samples linked to WordNet synsets (builder/link.py, within --link-budget),
    the rest clustered into 1..k induced senses per token of >= --min-sense-size samples (lexical_cluster).
    -> (ClusterResult, _Linked or None)."""
    from .lexical_cluster import cluster_adaptive

    report("cluster lexical", 0, int(samples.indptr[-1]))

    def induce(keys, indptr, vectors):
        return cluster_adaptive(
            keys,
            indptr,
            vectors,
            cfg.senses_per_token,
            cfg.contexts_per_sense,
            min_sense_size=cfg.min_sense_size,
            threshold=cfg.lexical_merge,
            seed=cfg.seed,
            device=teacher.device,
            progress=lambda done, total: report("cluster lexical", done, total),
        )

    protos = _link_prototypes(cfg, samples, teacher, report, layer, corpus)
    if protos is None:
        return induce(samples.keys, samples.indptr, samples.lexical), None
    from .link import link_senses

    prototypes, link_report = protos
    result = link_senses(
        samples.keys,
        samples.indptr,
        samples.lexical,
        prototypes,
        threshold=cfg.link_threshold,
        contexts_per_sense=cfg.contexts_per_sense,
        cluster=induce,
    )
    link_report["threshold"] = cfg.link_threshold
    link_report["samples_linked"] = result.assigned
    link_report["senses_linked"] = int((result.proto >= 0).sum())
    link_report["senses"] = int(len(result.proto))
    return result.clusters, _Linked(result.proto, prototypes, link_report)


@dataclass
class _Linked:
    proto: Any  # [N] int64 per lexical sense: its prototype, -1 for an induced sense
    prototypes: Any  # link.Prototypes
    report: dict  # what the provenance records ("link")


def _link_prototypes(cfg: BuildConfig, samples, teacher, report: Progress, layer, corpus):
    """(link.Prototypes, report dict) of the key tokens' WordNet synsets, or None: --link-budget 0, or no WordNet."""
    if not cfg.link_budget or layer is None:
        return None
    from ..errors import InputError as _InputError
    from .prototypes import build_prototypes
    from .wordnet_corpus import open_wordnet_for_link

    try:
        wn = open_wordnet_for_link()
    except (_InputError, MissingDependency):
        return None  # linking is an addition: a corpus build on a machine without WordNet still builds
    report("link", 0, None)
    texts = teacher.tokenizer.batch_decode([[int(k)] for k in samples.keys], clean_up_tokenization_spaces=False)
    focus = {w.lower() for w in (corpus.focus.words if corpus is not None and corpus.focus is not None else ())}
    # the --focus words first, then the most frequent keys
    priority = sorted(range(len(texts)), key=lambda i: (texts[i].strip().lower() not in focus, -int(samples.counts[i])))
    protos, rep = build_prototypes(
        teacher,
        samples.keys,
        texts,
        priority,
        layer=layer,
        representation=cfg.lexical_representation,  # prototypes read as the samples they are compared with
        budget=cfg.link_budget,
        heldout_share=cfg.heldout_share,
        wn=wn,
    )
    report("link", 1, 1)
    return protos, {**rep.to_dict(), "representation": cfg.lexical_representation}


def _lexical_labels(link: Optional[_Linked], lexical, text: Optional[dict]) -> Optional[dict]:
    """Per lexical sense: synset, gloss, lemma and label (link.sense_labels), or None without a lexical view."""
    if lexical is None:
        return None
    from .link import Prototypes, distinctive_words, sense_labels

    n = len(lexical.sense_key)
    words = (
        distinctive_words(
            lexical.sense_key,
            lexical.ctx_sense,
            text["snippet"],
            np.stack([text["mark_start"], text["mark_end"]], 1),
        )
        if text is not None and len(lexical.ctx_sense)
        else [[] for _ in range(n)]
    )
    if link is None:
        proto, protos = np.full(n, -1, np.int64), Prototypes.empty(lexical.centroids.shape[1])
    else:
        proto, protos = link.proto, link.prototypes
    synset, gloss, lemma, label = sense_labels(proto, protos, words)
    return {"synset": synset, "gloss": gloss, "lemma": lemma, "label": label}


def _collect_contexts(samples, views: list, stream, corpus: _Corpus, report: Progress) -> list[dict[str, Any]]:
    """Per view (ClusterResult or None), the contexts table's text columns, fetching only the documents the
    chosen contexts come from (once for all views)."""
    origins = [samples.meta[c.ctx_sample] if c is not None else None for c in views]  # [C, 3] doc, char span
    need_docs = np.unique(np.concatenate([o[:, 0] for o in origins if o is not None]))
    report("contexts", 0, len(need_docs))
    texts = fetch_documents(need_docs, stream.texts, corpus.docs, lambda done, total: report("contexts", done, total))
    return [context_columns(o, texts) if o is not None else None for o in origins]


def _provenance(
    cfg: BuildConfig, teacher, corpus: _Corpus, tokens_all: int, positions_all: int, world: int
) -> dict[str, Any]:
    """What the store's meta table records about how it was built."""
    from .. import __version__

    return {
        "teacher": teacher.name,
        "teacher_revision": teacher.revision,
        "hidden_size": teacher.hidden_size,
        "layer": "final_norm",
        "num_layers": int(getattr(teacher.model.config, "num_hidden_layers", 0) or 0),
        "key_mode": cfg.key,
        "next_token": cfg.next_token if cfg.key == "next" else None,
        "k": cfg.senses_per_token,
        "samples_per_token": cfg.samples_per_token,
        "contexts_per_sense": cfg.contexts_per_sense,
        "corpus": corpus.description,
        "corpus_fingerprint": corpus.fingerprint,
        "corpus_heldout": corpus.heldout,
        "text_field": cfg.text_field,
        "seq_len": cfg.seq_len,
        "min_context": cfg.min_context,
        "window_overlap": cfg.window_overlap,
        "max_tokens": cfg.max_tokens,
        "tokens_processed": tokens_all,
        "key_positions": positions_all,
        "seed": cfg.seed,
        "world_size": world,
        "dtype": str(teacher.dtype).replace("torch.", ""),
        "device": str(teacher.device),
        "kmeans": {"init": "k-means++ (greedy)", "max_iter": cfg.kmeans_iters, "tol": cfg.kmeans_tol},
        "loss_small_tokens": "raw samples (n <= k)" if cfg.raw_small else "one centroid (n <= k)",
        "sensekit_version": __version__,
        "tokenizer_sha256": hashlib.sha256(Path(teacher.tokenizer_json).read_bytes()).hexdigest(),
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "build_config": cfg.to_dict(),
    }


def _write_store(
    store: Path,
    teacher,
    samples,
    clusters,
    contexts: list,
    provenance: dict,
    report: Progress,
    lexical=None,
    labels: Optional[dict] = None,
) -> None:
    """Tokens, and each view's senses and contexts, into a new bundle, renamed into place when complete."""
    from ..view import LEXICAL, LOSS
    from ..writer import StoreWriter

    report("write", 0, None)
    token_texts = teacher.tokenizer.batch_decode([[int(k)] for k in samples.keys], clean_up_tokenization_spaces=False)
    build_cfg = provenance["build_config"]
    with StoreWriter(
        store,
        dim=teacher.hidden_size,
        tokenizer_json=teacher.tokenizer_json,
        provenance=provenance,
        space=build_cfg["space"],
        space_components=build_cfg["space_components"],
        dtype=build_cfg.get("store_dtype") or "float32",
    ) as w:
        w.add_tokens(samples.keys.tolist(), token_texts, samples.counts.tolist())
        views = [  # each view's record (sensekit/view.py), senses, sampled vectors and context texts
            (dataclasses.replace(LOSS, key_mode=provenance["key_mode"]), clusters, samples.vectors, contexts[0]),
            (dataclasses.replace(LEXICAL, layer=provenance["lexical_layer"]), lexical, samples.lexical, contexts[1]),
        ]
        for record, c, vectors, text in views:
            if c is None:
                continue
            view = record.name
            w.declare_view(record)
            extra = labels if view == LEXICAL.name and labels is not None else {}
            sense_ids = w.add_senses(
                c.centroids, c.sense_index, c.sense_count, token_ids=c.sense_key, view=view, **extra
            )
            pause_point("write")  # the new bundle half-written
            if len(c.ctx_sense):
                w.add_contexts(
                    {
                        "sense_id": sense_ids[c.ctx_sense].astype(np.int32),
                        "rank": c.ctx_rank.astype(np.int16),
                        **text,
                        "distance": c.ctx_distance.astype(np.float32),
                        "vector": vectors[c.ctx_sample],  # [n, d]
                    }
                )  # for `sensekit plot`
    report("write", 1, 1)


def _attach_relations(cfg: BuildConfig, store: Path, report: Progress) -> Optional[dict]:
    """The --relations sources, attached to the finished store (None when none are given)."""
    if not cfg.relations:
        return None
    try:
        from ..lexicon.attach import attach_relations
    except ImportError:
        raise MissingDependency(
            "--relations needs sensekit.lexicon.attach, which is not installed; "
            f"the senses are written to {store}, attach relations later"
        ) from None
    from .wordnet_corpus import open_wordnet_for_link

    try:  # the synsets of linked senses attach their own relations (lexicon/attach.py synset_senses)
        wordnet = open_wordnet_for_link()
    except (InputError, MissingDependency):
        wordnet = None
    report("relations", 0, None)
    relations = attach_relations(str(store), list(cfg.relations), wordnet=wordnet)
    report("relations", 1, 1)
    return relations
