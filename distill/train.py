"""The DSKD training loop (METHOD.md section 2), readable top to bottom.

    L = L_KD + L_CE + lambda * (L_sense_pos + L_sense_neg)

`train(cfg)` loads the store and the teacher (refusing a mismatch), turns the store into
`SenseTargets`, builds the student, prepares the windows, then runs AdamW with a cosine
schedule and warm-up on `accelerate`: one CPU process here, DDP on GPUs with
`accelerate launch -m distill.cli --store ... --data ...`. lambda = 0 is the KD baseline:
the same data order, seeds and code path, only the sense term is skipped (its sampling has
its own generator, so nothing else changes). Progress goes to a callback; nothing prints.

Files in the output folder: config.toml (resolved), run.json, metrics.jsonl (one line per
optimizer step: every loss term, lr, grad norm), eval.jsonl, checkpoints/step-N/state.pt,
student/ (save_pretrained + tokenizer), summary.json, cache/ (with --cache), tensorboard/ (if installed).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from sensekit.errors import InputError, SensekitError, TeacherMismatch

from .config import DistillConfig
from .data import Windows, prepare_windows
from .losses import ce_loss, kd_loss, sense_loss
from .student import DistillStudent, build_truncated, load_hf_student, save_student
from .targets import SenseTargets

__all__ = ["train", "Stepper", "check_store_matches", "NonFiniteLoss", "Callback", "TERMS"]

Callback = Callable[[str, dict[str, Any]], None]
TERMS = ("kd", "ce", "sense_pos", "sense_neg", "total")
# Settings a resumed run may change; everything else must equal the checkpoint's config.
RESUMABLE_CHANGES = {"save_every", "eval_every", "eval_batches", "keep_checkpoints", "device"}
SENSE_SEED_OFFSET = 0x5E45E


class NonFiniteLoss(SensekitError):
    """A loss term became NaN or inf."""


# -- the store must come from this teacher ------------------------------------------------
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_store_matches(store, teacher) -> None:
    """Refuse a store built with another teacher id, hidden size or tokenizer, naming both."""
    meta = store.meta
    built = meta.get("teacher")
    if isinstance(built, dict):
        built = built.get("name") or built.get("id")
    if built and str(built) != str(teacher.name):
        raise TeacherMismatch(f"store {store.path} was built with teacher {built!r} but this run's teacher is "
                              f"{teacher.name!r}; pass --teacher {built} or rebuild the store with this teacher")
    hidden = int(meta.get("hidden_size", meta.get("dim", store.dim)))
    if hidden != int(teacher.hidden_size) or int(store.dim) != int(teacher.hidden_size):
        raise TeacherMismatch(f"store {store.path} holds {hidden}-dim senses but teacher {teacher.name!r} has hidden "
                              f"size {teacher.hidden_size}; use the store built with this teacher")
    store_tok = store.path / "tokenizer.json"
    want = meta.get("tokenizer_sha256") or (_sha256(store_tok) if store_tok.is_file() else None)
    have = _sha256(Path(teacher.tokenizer_json)) if teacher.tokenizer_json else None
    if want and have and want == have:
        return
    # different bytes can still be the same vocabulary (a re-saved tokenizer.json): compare ids
    if store_tok.is_file():
        from tokenizers import Tokenizer

        if Tokenizer.from_file(str(store_tok)).get_vocab(with_added_tokens=True) == teacher.tokenizer.get_vocab():
            return
    raise TeacherMismatch(f"store {store.path} was built with another tokenizer (sha256 {str(want)[:12]}) than teacher "
                          f"{teacher.name!r} (sha256 {str(have)[:12]}); use the store built with this teacher")


# -- small helpers ----------------------------------------------------------------------
def _mixed_precision(cfg: DistillConfig) -> str:
    if cfg.mixed_precision != "auto":
        return cfg.mixed_precision
    if cfg.device != "cpu" and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "no"


def _permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _checkpoints(out: Path) -> list[Path]:
    folder = out / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.glob("step-*") if (p / "state.pt").is_file()), key=lambda p: int(p.name[5:]))


def _truncate_jsonl(path: Path, last_step: int) -> None:
    if not path.is_file():
        return
    keep = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip() and json.loads(ln)["step"] <= last_step]
    path.write_text("".join(ln + "\n" for ln in keep), encoding="utf-8")


class _Logger:
    """metrics.jsonl / eval.jsonl, plus TensorBoard when it is installed (main process only)."""

    def __init__(self, out: Path, enabled: bool) -> None:
        self.enabled = enabled
        self.out = out
        self.tb = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tensorboard"))
            except Exception:  # noqa: BLE001  (tensorboard absent or broken: the JSONL logs suffice)
                self.tb = None

    def write(self, name: str, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.out / name, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
        if self.tb is not None:
            prefix = "eval/" if name.startswith("eval") else "train/"
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.tb.add_scalar(prefix + k, v, row["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


# -- the run ----------------------------------------------------------------------------
def train(cfg: DistillConfig, *, resume: bool = False, callback: Callback | None = None, teacher=None) -> dict[str, Any]:
    """Run a distillation. Returns a summary (steps, last metrics, eval, folders). Raises SensekitError on bad input."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import get_cosine_schedule_with_warmup

    from sensekit.store import open_store

    cfg.validate_for_run()
    out = Path(cfg.output_dir)
    acc = Accelerator(mixed_precision=_mixed_precision(cfg), cpu=cfg.device == "cpu")
    device = acc.device
    main = acc.is_main_process
    emit = callback if (callback is not None and main) else (lambda event, payload: None)  # one progress display
    if main:
        out.mkdir(parents=True, exist_ok=True)
    ckpts = _checkpoints(out)
    if not resume and ckpts:
        raise InputError(f"{out} already holds checkpoints of a run; pass --resume to continue it or choose another --output-dir")
    if resume and not ckpts:
        raise InputError(f"--resume: no checkpoint in {out / 'checkpoints'}; start a run there first (without --resume)")
    set_seed(cfg.seed)

    # store, teacher, targets (the store first: a wrong path fails before a teacher loads) ----
    store = open_store(cfg.store)
    try:
        if teacher is None:
            from sensekit.builder.teacher import load_teacher

            emit("status", {"message": f"loading teacher {cfg.teacher}"})
            teacher = load_teacher(cfg.teacher, device=str(device))
        vocab = teacher.vocab_size
        check_store_matches(store, teacher)
        # the KD baseline (lambda = 0) checks the store but holds no dictionary on the device
        targets = SenseTargets.from_store(store, vocab, device, dtype=getattr(torch, cfg.sense_dtype)) \
            if cfg.lambda_sense > 0 else None
    finally:
        store.close()
    if targets is not None and int(targets.has_rel.sum()) == 0:
        emit("warning", {"message": f"store {cfg.store} links no token with senses to a synonym or antonym with senses: "
                                    "the sense loss will be zero"})

    # student -------------------------------------------------------------------------------
    if cfg.truncated:
        lm = build_truncated(teacher.model, cfg.student_layers, cfg.train_top_layers)
        model = DistillStudent(lm, teacher.hidden_size, vocab, n_trainable_top=cfg.train_top_layers)
        model.eval()  # dropout off: the frozen modules are the teacher's own and must stay deterministic
    else:
        lm = load_hf_student(cfg.student, teacher, device)
        model = DistillStudent(lm, teacher.hidden_size, vocab).to(device)
        model.train()
    n_trainable = sum(p.numel() for _, p in model.trainable_named_parameters())

    # data ----------------------------------------------------------------------------------
    with acc.main_process_first():
        windows = prepare_windows(cfg, teacher, "train", progress=lambda name, n: emit("data", {"name": name, "count": n}))
        eval_windows: Windows | None = None
        if cfg.eval_data:
            eval_windows = prepare_windows(cfg, teacher, "eval", paths=cfg.eval_data, mode="corpus")
    if not cfg.eval_data and cfg.eval_holdout:
        if cfg.eval_holdout >= len(windows):
            raise InputError(f"--eval-holdout {cfg.eval_holdout} leaves no training windows (there are {len(windows)})")
        eval_windows = windows.subset(slice(len(windows) - cfg.eval_holdout, None))
        windows = windows.subset(slice(0, len(windows) - cfg.eval_holdout))
    n_proc, B, A = acc.num_processes, cfg.batch_size, cfg.grad_accum
    micro_per_epoch = len(windows) // (B * n_proc)
    steps_per_epoch = micro_per_epoch // A
    if steps_per_epoch == 0:
        raise InputError(f"{len(windows)} training windows are fewer than one optimizer step needs "
                         f"({B * n_proc * A} = batch size x processes x grad accumulation); give more data or lower them")
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))

    cache = None
    if cfg.cache:
        from .cache import PrefixCache

        fp = hashlib.sha256(windows.ids.tobytes() + json.dumps([teacher.name, cfg.student_layers, cfg.train_top_layers,
                                                                  cfg.mixed_precision]).encode()).hexdigest()
        cache = PrefixCache(out / "cache", len(windows), windows.seq_len, teacher.hidden_size, fp)

    # optimisation --------------------------------------------------------------------------
    optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)
    scheduler = get_cosine_schedule_with_warmup(optimizer, round(cfg.warmup_frac * total), total)
    model, optimizer = acc.prepare(model, optimizer)
    inner: DistillStudent = acc.unwrap_model(model)
    sense_gen = torch.Generator(device=device)
    sense_gen.manual_seed(cfg.seed + SENSE_SEED_OFFSET + acc.process_index)

    start = 0
    if resume:
        start = _load_checkpoint(ckpts[-1], cfg, inner, optimizer, scheduler, sense_gen)
        if main:
            _truncate_jsonl(out / "metrics.jsonl", start)
            _truncate_jsonl(out / "eval.jsonl", start)
    elif main:
        for name in ("metrics.jsonl", "eval.jsonl"):
            (out / name).unlink(missing_ok=True)
    if main:
        cfg.save(out)
        (out / "run.json").write_text(json.dumps({
            "teacher": teacher.name, "teacher_revision": teacher.revision, "hidden_size": teacher.hidden_size,
            "vocab_size": vocab, "store": str(cfg.store), "targets": targets.summary() if targets else None,
            "student": cfg.student,
            "trainable_parameters": n_trainable, "windows": len(windows), "target_tokens": windows.n_targets,
            "eval_windows": len(eval_windows) if eval_windows is not None else 0, "steps": total,
            "steps_per_epoch": steps_per_epoch, "processes": n_proc, "mixed_precision": acc.mixed_precision,
            "device": str(device)}, indent=2), encoding="utf-8")
    log = _Logger(out, main)
    emit("start", {"total": total, "start": start, "windows": len(windows), "trainable_parameters": n_trainable,
                   "targets": targets.summary() if targets else None, "device": str(device)})

    perms: dict[int, np.ndarray] = {}  # the current epoch's permutation, drawn once (not per micro-batch)

    def batch_rows(step: int, micro: int) -> tuple[np.ndarray, int]:
        gm = step * A + micro
        epoch, within = divmod(gm, micro_per_epoch)
        if epoch not in perms:
            perms.clear()
            perms[epoch] = _permutation(cfg.seed, epoch, len(windows))
        perm = perms[epoch]
        rows = perm[within * B * n_proc:(within + 1) * B * n_proc]
        return rows[acc.process_index * B:(acc.process_index + 1) * B], epoch

    stepper = Stepper(cfg, acc, teacher, model, optimizer, scheduler, targets, windows, cache, sense_gen)
    t0 = time.perf_counter()
    last: dict[str, Any] = {}
    evals: list[dict[str, Any]] = []
    try:
        for step in range(start, total):
            batches = [batch_rows(step, micro)[0] for micro in range(A)]
            row = {"step": step + 1, "epoch": round(step * A / micro_per_epoch, 4),
                   **stepper.step(batches, step + 1), "elapsed_s": round(time.perf_counter() - t0, 3)}
            log.write("metrics.jsonl", row)
            last = row
            emit("step", row)
            done = step + 1 == total
            if eval_windows is not None and ((cfg.eval_every and (step + 1) % cfg.eval_every == 0) or done):
                evals.append(_evaluate(cfg, inner, teacher, eval_windows, device, acc, step + 1))
                log.write("eval.jsonl", evals[-1])
                emit("eval", evals[-1])
            if (cfg.save_every and (step + 1) % cfg.save_every == 0) or done:
                if cache is not None:
                    cache.flush()
                _save_checkpoint(out, step + 1, cfg, inner, optimizer, scheduler, sense_gen, acc)
                emit("checkpoint", {"step": step + 1})
    finally:
        log.close()
        if cache is not None:
            cache.flush()

    student_dir = out / "student"
    acc.wait_for_everyone()
    if main:
        save_student(inner, teacher.tokenizer, student_dir, info={
            "made_by": "sensekit distill", "teacher": teacher.name, "teacher_revision": teacher.revision,
            "store": str(cfg.store), "steps": total, "lambda_sense": cfg.lambda_sense, "config": cfg.to_dict()})
    summary = {"steps": total, "last": last, "eval": evals[-1] if evals else None, "output_dir": str(out),
               "student_dir": str(student_dir), "metrics": str(out / "metrics.jsonl"),
               "elapsed_s": round(time.perf_counter() - t0, 3), "cache_hits": stepper.cache_hits}
    if main:
        (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    emit("done", summary)
    return summary


class Stepper:
    """One optimizer step of DSKD (KD when lambda_sense == 0): micro-batches, backward, clipping, AdamW, schedule.

    `train()` drives it; the overhead benchmark times it directly.
    """

    def __init__(self, cfg: DistillConfig, acc, teacher, model, optimizer, scheduler, targets: SenseTargets | None,
                 windows: Windows, cache=None, sense_gen: torch.Generator | None = None) -> None:
        self.cfg, self.acc, self.teacher, self.model = cfg, acc, teacher, model
        self.optimizer, self.scheduler, self.targets, self.windows, self.cache = optimizer, scheduler, targets, windows, cache
        self.inner: DistillStudent = acc.unwrap_model(model)
        self.trainable = [p for _, p in self.inner.trainable_named_parameters()]
        self.head = teacher.model.get_output_embeddings()
        self.device = acc.device
        self.sense_gen = sense_gen
        self.cache_hits = 0

    def micro_step(self, rows: np.ndarray) -> dict[str, torch.Tensor]:
        """Forward one micro-batch (windows `rows`) and return every loss term (scalars with graphs)."""
        cfg, device, inner, cache = self.cfg, self.device, self.inner, self.cache
        input_ids, attn, labels = self.windows.batch(rows, device)                  # [B, T] each
        prefix = None
        if cache is not None and cache.has(rows):
            prefix, g = cache.get(rows, device)                                     # [B, T, d] x2
            self.cache_hits += 1
        else:
            g = self.teacher.final_hidden(input_ids, attn).clone()                  # [B, T, d], g_t post-norm
            if cache is not None:
                prefix = inner.prefix(input_ids, attn).float()
                cache.put(rows, prefix, g)
        with torch.no_grad():
            t_logits = self.head(g.to(self.head.weight.dtype))                      # [B, T, V]
            sense = None
            if cfg.lambda_sense > 0:
                sense = self.targets.gather(labels, g, kappa=cfg.kappa, neighbors=cfg.neighbors, frac=cfg.sample_frac,
                                            floor=cfg.sample_floor, own_negative=cfg.own_senses_negative,
                                            generator=self.sense_gen)
        positions = (sense.b, sense.t) if sense is not None else None
        if prefix is not None:
            prefix = prefix.to(self.trainable[0].dtype if self.trainable else prefix.dtype)
        with self.acc.autocast():
            logits, h = self.model(input_ids, attn, prefix=prefix, positions=positions)  # [B, T, V], [P, d]
        mask = labels >= 0
        terms = {"kd": kd_loss(logits, t_logits, mask, cfg.tau, cfg.alpha), "ce": ce_loss(logits, labels, mask)}
        if sense is not None:
            terms["sense_pos"], terms["sense_neg"] = sense_loss(h, sense.positives, sense.pos_mask, sense.negatives,
                                                                sense.neg_mask, sense.active, cfg.beta_p, cfg.beta_n)
            n_active = int(sense.active.sum())
        else:
            terms["sense_pos"] = terms["sense_neg"] = torch.zeros((), device=device)
            n_active = 0
        terms["total"] = terms["kd"] + terms["ce"] + cfg.lambda_sense * (terms["sense_pos"] + terms["sense_neg"])
        terms["_positions"] = torch.tensor(float(n_active), device=device)
        terms["_tokens"] = mask.sum().float()
        return terms

    def step(self, batches: list[np.ndarray], number: int) -> dict[str, float]:
        """One optimizer step over the micro-batches `batches` -> lr, the averaged terms, grad norm, and the step's
        sense positions and target tokens (over all micro-batches and processes)."""
        acc, cfg = self.acc, self.cfg
        A = len(batches)
        lr = self.scheduler.get_last_lr()[0]
        sums = {k: 0.0 for k in (*TERMS, "_positions", "_tokens")}
        for micro, rows in enumerate(batches):
            ctx = acc.no_sync(self.model) if micro < A - 1 and acc.num_processes > 1 else _null()
            with ctx:
                terms = self.micro_step(rows)
                # one device sync for all terms (not one per term): stack, then read back once
                values = torch.stack([terms[k].detach().float() for k in sums]).tolist()
                for k, v in zip(sums, values[: len(TERMS)]):
                    if not math.isfinite(v):
                        raise NonFiniteLoss(f"step {number}: the {k} loss is {terms[k].item()}; lower --lr, check "
                                            f"the store's vectors, or use --mixed-precision no")
                acc.backward(terms["total"] / A)
            for k, v in zip(sums, values):
                sums[k] += v
        if cfg.max_grad_norm > 0:
            grad_norm = float(acc.clip_grad_norm_(self.trainable, cfg.max_grad_norm))
        else:
            grads = [p.grad.norm() for p in self.trainable if p.grad is not None]
            grad_norm = float(torch.linalg.vector_norm(torch.stack(grads))) if grads else 0.0
        if not math.isfinite(grad_norm):
            raise NonFiniteLoss(f"step {number}: the gradient norm is {grad_norm}; lower --lr or use --mixed-precision no")
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        values = torch.tensor([sums[k] / A for k in TERMS], device=self.device)
        counts = torch.tensor([sums["_positions"], sums["_tokens"]], device=self.device)
        if acc.num_processes > 1:
            values = acc.reduce(values, reduction="mean")       # loss terms: the mean over processes
            counts = acc.reduce(counts, reduction="sum")        # sense positions and target tokens: all processes
        v = values.tolist() + counts.tolist()
        row = {"lr": lr, **dict(zip(TERMS, v[: len(TERMS)]))}
        row.update(sense=v[2] + v[3], grad_norm=grad_norm, sense_positions=v[len(TERMS)], tokens=v[len(TERMS) + 1])
        return row


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _evaluate(cfg, inner, teacher, windows, device, acc, step) -> dict[str, Any]:
    from .evaluate import evaluate

    result = evaluate(inner, teacher, windows, cfg.batch_size, device, tau=cfg.tau, max_batches=cfg.eval_batches,
                      autocast=acc.autocast)
    if cfg.truncated:
        inner.eval()
    return {"step": step, **result}


# -- checkpoints ----------------------------------------------------------------------------
def _save_checkpoint(out: Path, step: int, cfg: DistillConfig, inner: DistillStudent, optimizer, scheduler,
                     sense_gen: torch.Generator, acc) -> None:
    acc.wait_for_everyone()
    if not acc.is_main_process:
        return
    folder = out / "checkpoints" / f"step-{step:08d}"
    tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = {
        "step": step,
        "config": cfg.to_dict(),
        "trainable": {n: p.detach().cpu().clone() for n, p in inner.trainable_named_parameters()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "sense_rng": sense_gen.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    torch.save(state, tmp / "state.pt")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    for old in _checkpoints(out)[: -cfg.keep_checkpoints]:
        shutil.rmtree(old, ignore_errors=True)


def _load_checkpoint(folder: Path, cfg: DistillConfig, inner: DistillStudent, optimizer, scheduler,
                     sense_gen: torch.Generator) -> int:
    try:
        state = torch.load(folder / "state.pt", map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"checkpoint {folder} is unreadable ({type(exc).__name__}); delete it to resume from an older one") from None
    saved = state["config"]
    now = cfg.to_dict()
    changed = sorted(k for k in now if k not in RESUMABLE_CHANGES and saved.get(k) != now[k])
    if changed:
        k = changed[0]
        raise InputError(f"--resume: --{k.replace('_', '-')} is {now[k]!r} but the run in {cfg.output_dir} used "
                         f"{saved.get(k)!r}; resume with the run's settings (see its config.toml)")
    params = dict(inner.trainable_named_parameters())
    missing = set(params) ^ set(state["trainable"])
    if missing:
        raise InputError(f"checkpoint {folder} does not fit this student (parameters {sorted(missing)[:3]}); "
                         "resume with the run's settings")
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(state["trainable"][n].to(p.device))
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    sense_gen.set_state(state["sense_rng"])
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return int(state["step"])
