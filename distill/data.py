"""Training data: packed corpus windows, or the teacher's own continuations of prompts.

Both modes produce `Windows`: token rows `ids` [N, T+1] int32 and their valid lengths [N].
Position t of a row takes ids[t] as input and ids[t+1] as its target y_t.

Windows are framed as `sensekit build` frames them (sensekit.builder.corpus.pack_windows): each
starts with the tokenizer's special prefix (its BOS, for Llama-3 or Mistral; nothing for GPT-2 or
SmolLM2), and a position whose input is a prefix token is never a target, as the build never
files its state. So g_t during training comes from the same kind of context as the senses D(y).
A full corpus window of T+1 tokens with a prefix of p tokens gives T - p targets, and
consecutive windows overlap by one text token (every corpus token but the first is a target
exactly once).

- **corpus**: the streaming readers of `sensekit build` (`iter_documents`: text files,
  folders, globs, JSONL, MediaWiki XML(.bz2)); documents are tokenized without special
  tokens, separated by EOS, and packed.
- **prompts** (the paper's setup): each JSONL prompt is continued greedily by the teacher,
  the sequence is cut at a random point after the prompt, and every position (prompt
  included) is a target.

Prepared windows are saved in `OUTPUT/data/` with a fingerprint of their inputs, so a
resumed run reads exactly the same windows (and never regenerates).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from sensekit.errors import InputError
from sensekit.fs import swap_into_place, temp_sibling

__all__ = ["Windows", "prepare_windows", "iter_documents", "read_prompts", "pack_documents", "special_prefix"]


@dataclass
class Windows:
    ids: np.ndarray  # [N, T+1] int32, right-padded with 0
    lengths: np.ndarray  # [N] int32, valid tokens per row (>= 2)
    n_prefix: int = 0  # leading special-prefix tokens (BOS) of every row: never inputs of a target

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.ids.shape[1]) - 1

    @property
    def n_targets(self) -> int:
        return int(np.clip(self.lengths - 1 - self.n_prefix, 0, None).sum())

    def subset(self, idx: np.ndarray | slice) -> "Windows":
        return Windows(self.ids[idx], self.lengths[idx], self.n_prefix)

    def batch(
        self, idx: np.ndarray, device: torch.device | str = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rows idx -> (input_ids [B, T] long, attention_mask [B, T] long, labels [B, T] long, -100 = no target).

        The prefix positions (BOS) are real inputs but carry no target.
        """
        rows = torch.from_numpy(self.ids[idx].astype(np.int64))
        lengths = torch.from_numpy(self.lengths[idx].astype(np.int64))
        T = rows.shape[1] - 1
        pos = torch.arange(T)
        inside = pos.unsqueeze(0) < (lengths - 1).unsqueeze(1)  # [B, T]
        input_ids = rows[:, :-1].masked_fill(~inside, 0)
        labels = rows[:, 1:].masked_fill(~inside | (pos < self.n_prefix).unsqueeze(0), -100)
        return input_ids.to(device), inside.long().to(device), labels.to(device)


# -- corpus mode --------------------------------------------------------------------------
def iter_documents(paths, text_field: str = "text") -> Iterator[tuple[str, str]]:
    """The build's streaming corpus readers (sensekit.builder.corpus.iter_documents)."""
    from sensekit.builder.corpus import iter_documents as _iter

    return _iter([str(p) for p in paths], text_field=text_field)


def pack_documents(
    docs: Iterator[tuple[str, str]],
    tokenizer,
    seq_len: int,
    max_windows: int = 0,
    progress: Callable[[int], None] | None = None,
    prefix: list[int] | None = None,
) -> Windows:
    """Tokenize and pack documents (EOS between them) into windows of seq_len + 1 tokens: `prefix` (default: the
    tokenizer's special prefix, its BOS if it adds one), then seq_len + 1 - len(prefix) text tokens, stride
    seq_len - len(prefix)."""
    prefix = special_prefix(tokenizer) if prefix is None else list(prefix)
    body = seq_len - len(prefix)  # text targets per window
    if body < 1:
        raise InputError(
            f"--seq-len {seq_len} is too short: the tokenizer puts {len(prefix)} prefix tokens before "
            "every window; give a longer --seq-len"
        )
    sep = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.bos_token_id
    need = max_windows * body + 1 if max_windows else 0
    chunks: list[np.ndarray] = []
    total = 0
    for _doc_id, text in docs:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids:
            continue
        if sep is not None:
            ids = list(ids) + [sep]
        chunks.append(np.asarray(ids, np.int32))
        total += len(ids)
        if progress:
            progress(total)
        if need and total >= need:
            break
    if total < body + 1:
        raise InputError(
            f"the training data has {total} tokens, fewer than one window of {body + 1}; "
            "give more data or a smaller --seq-len"
        )
    stream = np.concatenate(chunks)
    n = (len(stream) - 1) // body
    if max_windows:
        n = min(n, max_windows)
    idx = np.arange(n)[:, None] * body + np.arange(body + 1)[None, :]  # [n, body + 1]
    rows = np.concatenate([np.tile(np.asarray(prefix, np.int32), (n, 1)), stream[idx]], axis=1)  # [n, T + 1]
    return Windows(np.ascontiguousarray(rows), np.full(n, seq_len + 1, np.int32), len(prefix))


def special_prefix(tokenizer) -> list[int]:
    """The ids the tokenizer puts before a text (its BOS, or nothing): `sensekit build`'s rule."""
    from sensekit.builder.corpus import special_prefix as _prefix

    return _prefix(tokenizer)


# -- prompts mode ---------------------------------------------------------------------------
def read_prompts(paths, field: str) -> list[str]:
    prompts = []
    for spec in paths:
        p = Path(spec)
        if not p.is_file():
            raise InputError(f"prompt file {p} does not exist; check --data")
        with p.open(encoding="utf-8") as fh:
            for i, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    raise InputError(f"{p}:{i} is not valid JSON; the prompt file must be JSONL") from None
                value = rec.get(field) if isinstance(rec, dict) else None
                if not isinstance(value, str) or not value.strip():
                    raise InputError(f"{p}:{i} has no string field {field!r}; set --prompt-field")
                prompts.append(value)
    if not prompts:
        raise InputError("the prompt files hold no prompts; check --data")
    return prompts


@torch.no_grad()
def generate_windows(
    teacher,
    prompts: list[str],
    seq_len: int,
    max_new_tokens: int,
    seed: int,
    chat_template: bool = True,
    batch_size: int = 8,
    progress: Callable[[int], None] | None = None,
) -> Windows:
    """The teacher continues each prompt (greedy); each sequence is cut at a random point after the prompt."""
    tok = teacher.tokenizer
    rng = np.random.default_rng(seed)
    use_chat = chat_template and getattr(tok, "chat_template", None)
    encoded = []
    for p in prompts:
        if use_chat:
            ids = tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=True)
            ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
        else:
            ids = tok(p)["input_ids"]
        encoded.append(list(ids)[:seq_len])  # a prompt longer than the window is cut
    pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    eos = tok.eos_token_id
    rows = np.zeros((len(encoded), seq_len + 1), np.int32)
    lengths = np.zeros(len(encoded), np.int32)
    model = teacher.model
    for s in range(0, len(encoded), batch_size):
        group = encoded[s : s + batch_size]
        width = max(map(len, group))
        ids = torch.full((len(group), width), pad, dtype=torch.long)
        mask = torch.zeros((len(group), width), dtype=torch.long)
        for i, g in enumerate(group):  # left padding for generation
            ids[i, width - len(g) :] = torch.tensor(g)
            mask[i, width - len(g) :] = 1
        budget = max(1, min(max_new_tokens, seq_len + 1 - min(map(len, group))))
        out = model.generate(
            input_ids=ids.to(teacher.device),
            attention_mask=mask.to(teacher.device),
            max_new_tokens=budget,
            do_sample=False,
            pad_token_id=pad,
            eos_token_id=eos,
        )
        new = out[:, width:].cpu().numpy()
        for i, g in enumerate(group):
            gen = list(new[i])
            if eos is not None and eos in gen:
                gen = gen[: gen.index(eos) + 1]
            full = (g + gen)[: seq_len + 1]
            lo = min(len(g) + 1, len(full))
            cut = int(rng.integers(lo, len(full) + 1)) if len(full) >= 2 else len(full)
            cut = max(cut, 2)
            full = full[:cut]
            rows[s + i, : len(full)] = full
            lengths[s + i] = len(full)
        if progress:
            progress(min(s + batch_size, len(encoded)))
    keep = lengths >= 2
    if not keep.any():
        raise InputError("every prompt produced fewer than 2 tokens; give longer prompts")
    prefix = np.asarray(special_prefix(tok), np.int32)
    starts = len(prefix) and bool((rows[keep, : len(prefix)] == prefix).all())  # then BOS is never a target
    return Windows(rows[keep], lengths[keep], len(prefix) if starts else 0)


# -- preparation with an on-disk copy ---------------------------------------------------------
def _fingerprint(paths, **params) -> str:
    items = []
    for p in paths:
        q = Path(p)
        st = q.stat() if q.exists() else None
        items.append([str(p), st.st_size if st else None, st.st_mtime_ns if st else None])
    return hashlib.sha256(json.dumps([items, params], sort_keys=True, default=str).encode()).hexdigest()


def prepare_windows(
    cfg,
    teacher,
    name: str = "train",
    paths=None,
    mode: str | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> Windows:
    """Windows for `paths` (default cfg.data), saved once as OUTPUT/data/NAME.npz and reused when unchanged."""
    paths = list(cfg.data if paths is None else paths)
    mode = mode or cfg.data_mode
    params = dict(
        mode=mode,
        seq_len=cfg.seq_len,
        max_windows=cfg.max_windows if name == "train" else 0,
        teacher=teacher.name,
        vocab=len(teacher.tokenizer),
        text_field=cfg.text_field,
        prompt_field=cfg.prompt_field,
        gen=cfg.gen_max_new_tokens,
        chat=cfg.chat_template,
        seed=cfg.seed,
        prefix=special_prefix(teacher.tokenizer),
    )
    fp = _fingerprint(paths, **params)
    folder = Path(cfg.output_dir) / "data"
    path = folder / f"{name}.npz"
    if path.is_file():
        with np.load(path) as z:
            if str(z["fingerprint"]) == fp:
                return Windows(z["ids"], z["lengths"], int(z["n_prefix"]) if "n_prefix" in z else 0)
    report = (lambda n: progress(name, n)) if progress else None
    if mode == "prompts":
        w = generate_windows(
            teacher,
            read_prompts(paths, cfg.prompt_field),
            cfg.seq_len,
            cfg.gen_max_new_tokens,
            cfg.seed,
            cfg.chat_template,
            progress=report,
        )
        if params["max_windows"]:
            w = w.subset(slice(0, params["max_windows"]))
    else:
        w = pack_documents(
            iter_documents(paths, cfg.text_field),
            teacher.tokenizer,
            cfg.seq_len,
            params["max_windows"],
            progress=report,
        )
    folder.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz" to a name without it
        np.savez(fh, ids=w.ids, lengths=w.lengths, n_prefix=np.array(w.n_prefix), fingerprint=np.array(fp))
    swap_into_place(tmp, path)
    return w
