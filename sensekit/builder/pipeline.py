"""`build(config)`: corpus -> teacher hidden states -> per-token reservoirs -> k-means -> store.

A plain function: it returns a `BuildResult` and prints nothing. Progress goes through the
`progress(stage, done, total)` callback (stages: load, harvest, merge, cluster, contexts,
write, relations); only the CLI draws it.

`build()` reads top to bottom as the recipe; each step is a function below it, or lives in
its own module: `distributed` (ranks, the merge tree), `checkpoint` (save / resume),
`contexts` (snippets of the chosen samples). Multi-process (WORLD_SIZE > 1): every rank
harvests its shard, the reservoirs are merged to rank 0, and rank 0 clusters and writes.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from .._hooks import pause_point
from ..errors import InputError, MissingDependency
from ..fs import DB_FILE
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


def build(config: BuildConfig, progress: Optional[Progress] = None, *, teacher=None) -> BuildResult:
    """Run a whole build. `teacher`: an already loaded `Teacher` (tests, benchmarks) instead of config.teacher."""
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
    ranks = init_ranks(teacher.device)
    check_seq_len(cfg.seq_len, teacher)
    vocab = _KeyVocabulary.of(teacher)
    cap = ranks.token_cap(cfg.max_tokens)
    _check_reservoir_memory(cfg, teacher, vocab, cap)  # before any work

    settings = build_settings(cfg, corpus.fingerprint, teacher, ranks.world)  # a refused --resume names what changed
    ckpt = Checkpoint.for_rank(
        store, ranks.rank, build_fingerprint(cfg, corpus.fingerprint, teacher, ranks.world), settings
    )
    resumed = ckpt.load() if cfg.resume else None
    reservoir, start = resumed or (
        Reservoir(teacher.vocab_size, teacher.hidden_size, cfg.samples_per_token, seed=cfg.seed, stream=ranks.rank),
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
    tokens_done, harvest_s = _harvest(cfg, teacher, stream, reservoir, vocab, ckpt, ranks, start, report)

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
    contexts = _collect_contexts(samples, clusters, stream, corpus, report)
    provenance = _provenance(cfg, teacher, corpus, tokens_all, positions_all, ranks.world)
    provenance["shared_states_dropped"] = shared_dropped
    _write_store(store, teacher, samples, clusters, contexts, provenance, report)
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


def _open_corpus(cfg: BuildConfig) -> _Corpus:
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
        lambda select=None: W.iter_wordnet(lemmas=cfg.gloss_lemmas),
        W.wordnet_fingerprint(),
        [W.WORDNET_CORPUS + ("+lemmas" if cfg.gloss_lemmas else "")],
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


def _check_reservoir_memory(cfg: BuildConfig, teacher, vocab: _KeyVocabulary, cap: Optional[int]) -> None:
    """Refuse a build whose reservoirs could outgrow --reservoir-memory (worst case: every key fills up)."""
    from .reservoir import reservoir_bytes

    V, d, G = teacher.vocab_size, teacher.hidden_size, cfg.samples_per_token
    need = reservoir_bytes(V - vocab.n_special, G, d, cap)
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
    vocab: _KeyVocabulary,
    ckpt: Checkpoint,
    ranks: Ranks,
    start: Optional[dict],
    report: Progress,
) -> tuple[int, float]:
    """Feed every batch through the teacher into the reservoirs. Returns (this rank's tokens, seconds)."""
    import torch

    from .harvest import key_positions, prefetch

    tokens_done = start["tokens_done"] if start else 0
    batches = 0
    t_h = time.perf_counter()
    report("harvest", tokens_done, cfg.max_tokens)
    checked = False
    for batch in prefetch(stream):
        if not checked:  # cheap runtime guard: lm_head(final_hidden) == the model's logits (one short row)
            teacher.check_post_norm(batch.ids[:1, :32], batch.mask[:1, :32])
            checked = True
        keys, vecs, meta = key_positions(
            teacher, batch, key=cfg.key, next_token=cfg.next_token, min_context=cfg.min_context, special=vocab.special
        )  # keys [P], vecs [P, d], meta [P, 3]
        sel, dest = reservoir.admit(keys)
        if len(sel):  # only the kept rows leave the device
            idx = torch.from_numpy(sel).to(vecs.device)
            reservoir.write(dest, vecs.index_select(0, idx).to(torch.float16).cpu().numpy(), meta[sel])
        tokens_done = batch.state["tokens_done"]
        batches += 1
        report("harvest", tokens_done * ranks.world if ranks.world > 1 else tokens_done, cfg.max_tokens)
        if cfg.checkpoint_every and batches % cfg.checkpoint_every == 0:
            ckpt.save(reservoir, batch.state)
            pause_point("harvest")  # tests SIGKILL the build here (sensekit/_hooks.py)
    return tokens_done, time.perf_counter() - t_h


def _cluster(cfg: BuildConfig, samples, teacher, report: Progress):
    """k-means over every key's samples at once, on the teacher's device."""
    from .cluster import cluster_samples

    report("cluster", 0, int(samples.indptr[-1]))
    pause_point("cluster")
    return cluster_samples(
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


def _collect_contexts(samples, clusters, stream, corpus: _Corpus, report: Progress) -> dict[str, Any]:
    """The contexts table's text columns, fetching only the documents the chosen contexts come from."""
    origins = samples.meta[clusters.ctx_sample]  # [C, 3] doc ordinal, char span
    need_docs = np.unique(origins[:, 0])
    report("contexts", 0, len(need_docs))
    texts = fetch_documents(need_docs, stream.texts, corpus.docs, lambda done, total: report("contexts", done, total))
    return context_columns(origins, texts)


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
        "sensekit_version": __version__,
        "tokenizer_sha256": hashlib.sha256(Path(teacher.tokenizer_json).read_bytes()).hexdigest(),
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "build_config": cfg.to_dict(),
    }


def _write_store(
    store: Path, teacher, samples, clusters, contexts: dict[str, Any], provenance: dict, report: Progress
) -> None:
    """Tokens, senses and contexts into a new bundle, renamed into place when complete."""
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
    ) as w:
        w.add_tokens(samples.keys.tolist(), token_texts, samples.counts.tolist())
        sense_ids = w.add_senses(
            clusters.centroids, clusters.sense_index, clusters.sense_count, token_ids=clusters.sense_key
        )
        pause_point("write")  # the new bundle half-written
        if len(clusters.ctx_sense):
            w.add_contexts(
                {
                    "sense_id": sense_ids[clusters.ctx_sense].astype(np.int32),
                    "rank": clusters.ctx_rank.astype(np.int16),
                    **contexts,
                    "distance": clusters.ctx_distance.astype(np.float32),
                    "vector": _vector_column(samples.vectors[clusters.ctx_sample]),
                }
            )  # for `sensekit plot`
    report("write", 1, 1)


def _vector_column(vectors: np.ndarray):
    """Sampled vectors [n, d] (fp16 in the reservoirs) as a FLOAT[d] arrow column."""
    import pyarrow as pa

    flat = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat), vectors.shape[1])


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
    report("relations", 0, None)
    relations = attach_relations(str(store), list(cfg.relations))
    report("relations", 1, 1)
    return relations
