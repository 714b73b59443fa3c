"""`build(config)`: corpus -> teacher hidden states -> per-token reservoirs -> k-means -> store.

A plain function: it returns a `BuildResult` and prints nothing. Progress goes through the
`progress(stage, done, total)` callback (stages: load, harvest, merge, cluster, contexts,
write, relations); only the CLI draws it.

Multi-process (torchrun / accelerate launch: WORLD_SIZE > 1): every rank harvests its shard
of the documents (ordinal % world == rank), the reservoirs are merged pairwise in a tree with
the weighted reservoir merge over a gloo group, and rank 0 clusters and writes the store.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..errors import InputError, MissingDependency

__all__ = ["BuildConfig", "BuildResult", "build", "parse_bytes", "Progress"]

Progress = Callable[[str, int, Optional[int]], None]
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "g": 1 << 30, "gb": 1 << 30,
          "t": 1 << 40, "tb": 1 << 40, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}


def parse_bytes(text: str | int) -> int:
    """'4GB', '512M', '1.5g', 1000 -> bytes (binary units)."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise InputError(f"--reservoir-memory {text!r} is not a size like 4GB or 512MB")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class BuildConfig:
    """Everything a build depends on. Each field's help text is the CLI flag's help."""

    corpus: tuple[str, ...] = _f((), "Corpus files, folders, globs or HF datasets folders (default: WordNet glosses and examples).")
    store: str = _f("senses.sensekit", "Output store bundle (a directory; replaced atomically).")
    teacher: str = _f("smollm2-135m", "Teacher: 'smollm2-135m' (bundled, offline), a Hugging Face id or a local folder.")
    device: Optional[str] = _f(None, "Device (cpu, cuda, cuda:1, ...). Default: cuda if available, else cpu.")
    dtype: Optional[str] = _f(None, "Teacher dtype (float32, bfloat16, float16). Default: bf16 on CUDA, fp32 on CPU.")
    key: str = _f("next", "Key token: 'next' (the token position t predicts; DSKD) or 'input' (x_t; SKD).")
    next_token: str = _f("gold", "With --key next: 'gold' (the corpus' x_{t+1}) or 'pred' (the teacher's argmax).")
    senses_per_token: int = _f(10, "k: senses (k-means clusters) per key token.", min=1, max=1000)
    samples_per_token: int = _f(50, "G: reservoir cap, vectors kept per key token.", min=1, max=100000)
    contexts_per_sense: int = _f(3, "E: most central contexts kept per sense.", min=0, max=100)
    max_tokens: Optional[int] = _f(None, "Stop after this many corpus tokens (all ranks together). Default: the whole corpus.", min=1)
    seq_len: int = _f(256, "Tokens per teacher window (long documents are cut into windows).", min=8, max=1 << 20)
    batch_size: int = _f(16, "Windows per forward pass.", min=1, max=1 << 16)
    text_field: str = _f("text", "Text field of JSONL lines and HF datasets.")
    seed: int = _f(0, "Seed for reservoir sampling and k-means.", min=0)
    resume: bool = _f(False, "Continue from the last checkpoint of an interrupted build with the same settings.")
    checkpoint_every: int = _f(500, "Checkpoint reservoirs and corpus position every N batches (0: never).", min=0)
    reservoir_memory: str = _f("8GB", "Upper bound on reservoir memory; the build refuses to start if the worst case exceeds it.")
    relations: tuple[str, ...] = _f((), "Relation sources to attach after the senses are written (see `sensekit relations`).")
    kmeans_iters: int = _f(300, "Maximum Lloyd iterations per token.", min=1, max=100000)
    kmeans_tol: float = _f(1e-4, "k-means tolerance, relative to the mean per-dimension variance (as scikit-learn).", min=0.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "corpus", tuple(str(c) for c in (self.corpus or ())))
        object.__setattr__(self, "relations", tuple(str(r) for r in (self.relations or ())))
        if self.key not in ("next", "input"):
            raise InputError(f"--key must be 'next' or 'input', got {self.key!r}")
        if self.next_token not in ("gold", "pred"):
            raise InputError(f"--next-token must be 'gold' or 'pred', got {self.next_token!r}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            lo, hi = f.metadata.get("min"), f.metadata.get("max")
            if value is None or isinstance(value, (str, tuple, bool)):
                continue
            flag = "--" + f.name.replace("_", "-")
            if lo is not None and value < lo:
                raise InputError(f"{flag} must be >= {lo}, got {value}")
            if hi is not None and value > hi:
                raise InputError(f"{flag} must be <= {hi}, got {value}")
        if not str(self.store).strip():
            raise InputError("--store must be a path")
        parse_bytes(self.reservoir_memory)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in dataclasses.fields(self)}

    @staticmethod
    def help(name: str) -> str:
        return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(BuildConfig)}[name]


@dataclass
class BuildResult:
    store: Optional[Path]          # None on ranks other than 0
    tokens: int                    # distinct key tokens
    senses: int
    contexts: int
    tokens_processed: int          # corpus tokens fed to the teacher (all ranks)
    key_positions: int             # positions filed under a key (all ranks)
    seconds: float
    harvest_seconds: float
    tokens_per_s: float            # teacher throughput during the harvest (all ranks)
    relations: Optional[dict] = None
    meta: dict = field(default_factory=dict)


# -- distributed --------------------------------------------------------------------------
def _dist_setup(device) -> tuple[int, int, Any]:
    """(rank, world, gloo group) from torchrun/accelerate env; (0, 1, None) when single-process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, None
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if device is not None and str(device).startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend)
    group = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else dist.group.WORLD
    return dist.get_rank(), dist.get_world_size(), group


def _send_samples(s, dst: int, group) -> None:
    import torch
    import torch.distributed as dist

    arrays = [s.keys, s.counts, s.indptr, s.meta, s.vectors]
    header = torch.tensor([len(s.keys), len(s.vectors), s.vectors.shape[1] if s.vectors.ndim == 2 else 0], dtype=torch.int64)
    dist.send(header, dst, group=group)
    for a in arrays:
        if a.size:
            dist.send(torch.from_numpy(np.ascontiguousarray(a)), dst, group=group)


def _recv_samples(src: int, group):
    import torch
    import torch.distributed as dist

    from .reservoir import SampleSet

    header = torch.zeros(3, dtype=torch.int64)
    dist.recv(header, src, group=group)
    R, S, d = (int(x) for x in header)
    shapes = [((R,), torch.int64), ((R,), torch.int64), ((R + 1,), torch.int64), ((S, 3), torch.int64), ((S, d), torch.float16)]
    out = []
    for shape, dt in shapes:
        t = torch.zeros(shape, dtype=dt)
        if t.numel():
            dist.recv(t, src, group=group)
        out.append(t.numpy())
    return SampleSet(out[0], out[1], out[2], out[4], out[3])


def _merge_tree(samples, rank: int, world: int, group, cap: int, seed: int):
    """Pairwise tree merge to rank 0 (log2(world) rounds); other ranks end with None."""
    from .reservoir import merge_samples

    step = 1
    while step < world:
        if rank % (2 * step) == step:
            _send_samples(samples, rank - step, group)
            return None
        if rank % (2 * step) == 0 and rank + step < world:
            other = _recv_samples(rank + step, group)
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 1 << 20, step, rank])))
            samples = merge_samples(samples, other, cap, rng)
        step *= 2
    return samples


# -- checkpoints --------------------------------------------------------------------------
def _ckpt_dir(store: Path, rank: int) -> Path:
    return store.parent / f".{store.name}.ckpt" / f"rank-{rank}"


def _ckpt_fingerprint(cfg: BuildConfig, corpus_fp: str, teacher, world: int) -> str:
    keep = {k: v for k, v in cfg.to_dict().items() if k not in ("resume", "checkpoint_every", "relations", "store", "device")}
    blob = json.dumps([keep, corpus_fp, teacher.name, teacher.revision, world], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _save_checkpoint(folder: Path, reservoir, state: dict, fingerprint: str) -> None:
    tmp = folder.parent / f".{folder.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    reservoir.save(tmp)
    (tmp / "state.json").write_text(json.dumps({"fingerprint": fingerprint, "state": state}))
    old = folder.parent / f".{folder.name}.old"
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


# -- contexts -----------------------------------------------------------------------------
SNIPPET_CHARS = 80  # characters of context on each side of the key token


def _snippet(text: str, cs: int, ce: int) -> tuple[str, int, int, int, int]:
    """(snippet, mark_start, mark_end, char_start, char_end) with the key span trimmed of whitespace."""
    cs, ce = max(0, min(cs, len(text))), max(0, min(ce, len(text)))
    while cs < ce and text[cs].isspace():
        cs += 1
    while ce > cs and text[ce - 1].isspace():
        ce -= 1
    a, b = max(0, cs - SNIPPET_CHARS), min(len(text), ce + SNIPPET_CHARS)
    if a > 0:  # start and end on word boundaries
        sp = text.find(" ", a, cs)
        a = sp + 1 if sp >= 0 else a
    if b < len(text):
        sp = text.rfind(" ", ce, b)
        b = sp if sp >= 0 else b
    snip = text[a:b].replace("\n", " ").replace("\t", " ").replace("\r", " ")  # same length: marks stay valid
    return snip, cs - a, ce - a, cs, ce


# -- the build ----------------------------------------------------------------------------
def _corpus(cfg: BuildConfig):
    """(documents factory, fingerprint, description)."""
    from . import corpus as C

    if cfg.corpus:
        paths = C.resolve_paths(cfg.corpus)
        return ((lambda select=None: C.iter_documents(list(cfg.corpus), cfg.text_field, select)),
                C.corpus_fingerprint(paths, cfg.text_field), [str(p) for p in paths])
    docs = C.iter_wordnet()
    first = next(docs, None)  # fail fast (no WordNet) before loading the teacher
    if first is None:
        raise InputError("the default corpus (WordNet) is empty; pass a corpus path")
    return (lambda select=None: C.iter_wordnet()), C.wordnet_fingerprint(), [C.WORDNET_CORPUS]


def build(config: BuildConfig, progress: Optional[Progress] = None, *, teacher=None) -> BuildResult:
    """Run a whole build. `teacher`: an already loaded `Teacher` (tests, benchmarks) instead of config.teacher."""
    import torch

    from .. import __version__
    from .cluster import cluster_samples
    from .harvest import BatchStream, check_seq_len, key_positions, prefetch
    from .reservoir import Reservoir, reservoir_bytes
    from .teacher import load_teacher

    cfg = config
    report = progress or (lambda stage, done, total: None)
    t_start = time.perf_counter()
    store = Path(cfg.store).expanduser()
    if store.exists() and not (store / "store.duckdb").is_file() and (store.is_file() or any(store.iterdir())):
        # the writer replaces the bundle directory: never let it replace something else
        raise InputError(f"--store {store} exists and is not a sensekit store; choose another path or remove it")
    docs, corpus_fp, corpus_desc = _corpus(cfg)

    report("load", 0, None)
    if teacher is None:
        device = cfg.device
        if int(os.environ.get("WORLD_SIZE", "1")) > 1 and device in (None, "", "auto", "cuda") and torch.cuda.is_available():
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"  # one GPU per rank
            torch.cuda.set_device(torch.device(device))
        teacher = load_teacher(cfg.teacher, device, cfg.dtype)
    rank, world, group = _dist_setup(teacher.device)
    check_seq_len(cfg.seq_len, teacher)
    tok = teacher.tokenizer
    V, d, G = teacher.vocab_size, teacher.hidden_size, cfg.samples_per_token
    special_ids = [i for i in teacher.special_ids if i < V]
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else (special_ids[0] if special_ids else 0)
    special = torch.zeros(V, dtype=torch.bool)
    special[special_ids] = True
    special = special.to(teacher.device)                                    # [V]
    from .corpus import special_prefix
    prefix = special_prefix(tok)

    # per-rank token cap; memory bound checked before any work
    cap = None
    if cfg.max_tokens is not None:
        cap = cfg.max_tokens // world + (1 if rank < cfg.max_tokens % world else 0)
    need = reservoir_bytes(V - len(special_ids), G, d, cap)
    bound = parse_bytes(cfg.reservoir_memory)
    if need > bound:
        raise InputError(f"reservoirs may need up to {need / 2**30:.2f} GiB (vocab {V} x G={G} x d={d}, fp16) but "
                         f"--reservoir-memory is {bound / 2**30:.2f} GiB; raise it, lower --samples-per-token or set --max-tokens")

    ckpt = _ckpt_dir(store, rank)
    fingerprint = _ckpt_fingerprint(cfg, corpus_fp, teacher, world)
    start_state = None
    reservoir = None
    if cfg.resume and (ckpt / "state.json").is_file():
        saved = json.loads((ckpt / "state.json").read_text())
        if saved["fingerprint"] != fingerprint:
            raise InputError(f"the checkpoint in {ckpt.parent} was made with other settings, corpus or teacher; "
                             "rerun with the same ones, or without --resume to start over")
        reservoir = Reservoir.load(ckpt)
        start_state = saved["state"]
    if reservoir is None:
        reservoir = Reservoir(V, d, G, seed=cfg.seed, stream=rank)

    stream = BatchStream(docs, tok, seq_len=cfg.seq_len, batch_size=cfg.batch_size,
                         overlap=1 if cfg.key == "next" else 0, prefix=prefix, pad_id=pad_id, max_tokens=cap,
                         rank=rank, world=world, start=start_state)
    tokens_done = start_state["tokens_done"] if start_state else 0
    batches = 0
    t_h = time.perf_counter()
    report("harvest", tokens_done, cfg.max_tokens)
    checked = False
    for batch in prefetch(stream):
        if not checked:  # cheap runtime guard: lm_head(final_hidden) == the model's logits (one short row)
            teacher.check_post_norm(batch.ids[:1, :32], batch.mask[:1, :32])
            checked = True
        keys, vecs, meta = key_positions(teacher, batch, key=cfg.key, next_token=cfg.next_token, special=special)
        sel, dest = reservoir.admit(keys)
        if len(sel):
            idx = torch.from_numpy(sel).to(vecs.device)
            reservoir.write(dest, vecs.index_select(0, idx).to(torch.float16).cpu().numpy(), meta[sel])  # only kept rows leave the device
        tokens_done = batch.state["tokens_done"]
        batches += 1
        report("harvest", tokens_done * world if world > 1 else tokens_done, cfg.max_tokens)
        if cfg.checkpoint_every and batches % cfg.checkpoint_every == 0:
            _save_checkpoint(ckpt, reservoir, batch.state, fingerprint)
    harvest_s = time.perf_counter() - t_h

    # merge across ranks
    totals = torch.tensor([tokens_done, int(reservoir.counts.sum())], dtype=torch.int64)
    if world > 1:
        import torch.distributed as dist

        dist.all_reduce(totals, group=group)
    tokens_all, positions_all = int(totals[0]), int(totals[1])
    if tokens_all == 0:
        raise InputError(f"the corpus is empty: no text in {', '.join(corpus_desc)}")
    samples = reservoir.export()
    if world > 1:
        report("merge", 0, None)
        samples = _merge_tree(samples, rank, world, group, G, cfg.seed)
    if rank != 0:
        if world > 1:
            import torch.distributed as dist

            dist.barrier(group=group)
        shutil.rmtree(ckpt, ignore_errors=True)
        return BuildResult(None, 0, 0, 0, tokens_all, positions_all, time.perf_counter() - t_start, harvest_s,
                           tokens_all / max(harvest_s, 1e-9))
    if len(samples.keys) == 0:
        raise InputError(f"the corpus gave no key tokens ({tokens_all} tokens read from {', '.join(corpus_desc)}); "
                         "give a larger corpus or --max-tokens")

    # cluster on the teacher's device
    report("cluster", 0, int(samples.indptr[-1]))
    clusters = cluster_samples(samples.keys, samples.indptr, samples.vectors, cfg.senses_per_token,
                               cfg.contexts_per_sense, seed=cfg.seed, device=teacher.device,
                               max_iter=cfg.kmeans_iters, tol=cfg.kmeans_tol,
                               progress=lambda done, total: report("cluster", done, total))

    # contexts: a second pass over the corpus fetches only the documents the chosen contexts come from
    cmeta = samples.meta[clusters.ctx_sample]                                  # [C, 3]
    need_docs = np.unique(cmeta[:, 0])
    report("contexts", 0, len(need_docs))
    texts: dict[int, tuple[str, str]] = {o: stream.texts[o] for o in need_docs.tolist() if o in stream.texts}
    missing = np.asarray([o for o in need_docs.tolist() if o not in texts], np.int64)
    if len(missing):  # documents not kept in memory (other ranks', or past the cache): read them again
        wanted = set(missing.tolist())
        last = int(missing[-1])
        for ordinal, (doc_id, text) in enumerate(docs(wanted.__contains__)):
            if ordinal in wanted:
                texts[ordinal] = (doc_id, text)
                report("contexts", len(texts), len(need_docs))
            if ordinal >= last:
                break
    rows: dict[str, list] = {k: [] for k in ("doc_id", "char_start", "char_end", "snippet", "mark_start", "mark_end")}
    for o, cs, ce in cmeta.tolist():  # one row per stored context (k x E per token), not per corpus position
        doc_id, text = texts.get(o, (str(o), ""))
        snip, ms, me, cs2, ce2 = _snippet(text, cs, ce)
        for k_, v in zip(rows, (doc_id, cs2, ce2, snip, ms, me)):
            rows[k_].append(v)

    # write the bundle
    report("write", 0, None)
    from ..writer import StoreWriter

    token_texts = tok.batch_decode([[int(k)] for k in samples.keys], clean_up_tokenization_spaces=False)
    tok_sha = hashlib.sha256(Path(teacher.tokenizer_json).read_bytes()).hexdigest()
    provenance = {
        "teacher": teacher.name, "teacher_revision": teacher.revision, "hidden_size": d,
        "layer": "final_norm", "num_layers": int(getattr(teacher.model.config, "num_hidden_layers", 0) or 0),
        "key_mode": cfg.key, "next_token": cfg.next_token if cfg.key == "next" else None,
        "k": cfg.senses_per_token, "samples_per_token": G, "contexts_per_sense": cfg.contexts_per_sense,
        "corpus": corpus_desc, "corpus_fingerprint": corpus_fp, "text_field": cfg.text_field,
        "seq_len": cfg.seq_len, "max_tokens": cfg.max_tokens, "tokens_processed": tokens_all,
        "key_positions": positions_all, "seed": cfg.seed, "world_size": world,
        "dtype": str(teacher.dtype).replace("torch.", ""), "device": str(teacher.device),
        "kmeans": {"init": "k-means++ (greedy)", "max_iter": cfg.kmeans_iters, "tol": cfg.kmeans_tol},
        "sensekit_version": __version__, "tokenizer_sha256": tok_sha,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "build_config": cfg.to_dict(),
    }
    with StoreWriter(store, dim=d, tokenizer_json=teacher.tokenizer_json, provenance=provenance) as w:
        w.add_tokens(samples.keys.tolist(), token_texts, samples.counts.tolist())
        sense_ids = w.add_senses(clusters.centroids, clusters.sense_index, clusters.sense_count,
                                 token_ids=clusters.sense_key)
        if len(clusters.ctx_sense):
            w.add_contexts({"sense_id": sense_ids[clusters.ctx_sense].astype(np.int32),
                            "rank": clusters.ctx_rank.astype(np.int16),
                            "doc_id": rows["doc_id"], "char_start": np.asarray(rows["char_start"], np.int32),
                            "char_end": np.asarray(rows["char_end"], np.int32), "snippet": rows["snippet"],
                            "mark_start": np.asarray(rows["mark_start"], np.int32),
                            "mark_end": np.asarray(rows["mark_end"], np.int32),
                            "distance": clusters.ctx_distance.astype(np.float32)})
    report("write", 1, 1)

    relations = None
    if cfg.relations:
        try:
            from ..lexicon.attach import attach_relations
        except ImportError:
            raise MissingDependency("--relations needs sensekit.lexicon.attach, which is not installed; "
                                    f"the senses are written to {store}, attach relations later") from None
        report("relations", 0, None)
        relations = attach_relations(str(store), list(cfg.relations))
        report("relations", 1, 1)

    if world > 1:
        import torch.distributed as dist

        dist.barrier(group=group)
    shutil.rmtree(ckpt, ignore_errors=True)
    try:
        ckpt.parent.rmdir()
    except OSError:
        pass
    return BuildResult(store, len(samples.keys), len(clusters.sense_key), len(clusters.ctx_sense), tokens_all,
                       positions_all, time.perf_counter() - t_start, harvest_s, tokens_all / max(harvest_s, 1e-9),
                       relations, provenance)
