"""`sensekit eval layers` (the command is in sensekit/cli/eval.py): which layer of a teacher tells word senses apart (issue 15, docs/lexical.md).

For every WiC pair (two sentences, one word) and every layer N (the convention of
`sensekit.model.lexical`: N = `hidden_states[N]`, 0 = embeddings, L = the last entry HF returns),
the cosine between the word's two states is a score for "same sense". The ROC AUC of that score,
same-sense pairs against different-sense pairs, is the layer's value:

- `at`: the state at the word's first token (what a lexical view files, key `input`);
- `before`: the state one position earlier, the one that predicts the word (key `next`);
- `raw`: cosine of the states as they are; `z`: cosine after per-dimension z-scoring with the
  mean and standard deviation of all the file's states at that layer (the rogue dimensions of
  residual states otherwise dominate the cosine).

One forward per batch of sentences with `output_hidden_states=True` gives every layer at once.
A sentence is cut right after the word's first token (a causal LM's state does not depend on
later tokens). Pairs whose word no token overlaps, or (for `before`) whose word opens its
sentence, are left out of that column; the counts are reported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np

__all__ = ["layer_states", "roc_auc", "layer_curve", "render_table", "save_png"]

COLUMNS = ("at_raw", "at_z", "before_raw", "before_z")


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of `scores` for the positives `labels` (Mann-Whitney U, ties count half)."""
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels, bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="stable")
    ranks = np.empty(len(s), np.float64)
    sorted_s = s[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def layer_states(
    model,
    tokenizer,
    sentences: list[str],
    starts,
    ends,
    prefix: list[int],
    pad_id: int,
    device="cpu",
    tokens_per_batch: int = 4096,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every layer's state at each word and just before it.

    -> (at [N, L+1, d] float32, before [N, L+1, d] float32, ok_at [N] bool, ok_before [N] bool).
    """
    import torch

    from .states import locate

    rows, pos, ok = locate(tokenizer, sentences, starts, ends, "input", prefix)
    ok_before = ok & (pos - 1 >= len(prefix))
    todo = np.flatnonzero(ok)
    todo = todo[np.argsort([-len(rows[i]) for i in todo], kind="stable")]
    at = before = None
    start = 0
    while start < len(todo):
        width = len(rows[todo[start]])
        stop = min(len(todo), start + max(1, tokens_per_batch // width))
        chunk = todo[start:stop]
        ids = np.full((len(chunk), width), pad_id, np.int64)
        mask = np.zeros((len(chunk), width), np.int64)
        for r, i in enumerate(chunk):  # per sentence
            ids[r, : len(rows[i])], mask[r, : len(rows[i])] = rows[i], 1
        with torch.inference_mode():
            out = model.base_model(
                input_ids=torch.from_numpy(ids).to(device),
                attention_mask=torch.from_numpy(mask).to(device),
                output_hidden_states=True,
                use_cache=False,
            )
        hs = out.hidden_states  # L+1 tensors [B, T, d]; gathered one layer at a time (no [B, L+1, T, d] copy)
        dev = hs[0].device
        ar = torch.arange(len(chunk), device=dev)
        p = torch.from_numpy(pos[chunk]).to(dev)
        if at is None:
            shape = (len(sentences), len(hs), hs[0].shape[-1])
            at, before = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
        at[chunk] = torch.stack([h[ar, p] for h in hs], 1).float().cpu().numpy()
        before[chunk] = torch.stack([h[ar, (p - 1).clamp_min(0)] for h in hs], 1).float().cpu().numpy()
        start = stop
    if at is None:
        at = before = np.zeros((len(sentences), 1, 1), np.float32)
    return at, before, ok, ok_before


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a, b [N, L, d] -> [N, L] row-wise cosine."""
    num = (a * b).sum(-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return num / np.maximum(den, 1e-12)


def _zscore_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z-score both [N, L, d] with the per-layer, per-dimension mean and std of all 2N states."""
    both = np.concatenate([a, b], 0).astype(np.float64)
    mean, std = both.mean(0), both.std(0)
    std = np.maximum(std, 1e-6 * np.maximum(std.mean(-1, keepdims=True), 1e-12))
    return ((a - mean) / std).astype(np.float32), ((b - mean) / std).astype(np.float32)


def curve_from_states(
    at1, at2, before1, before2, ok_at: np.ndarray, ok_before: np.ndarray, labels: np.ndarray
) -> dict[str, Any]:
    """The per-layer AUCs from the states of the two sentences of each pair ([N, L+1, d] each)."""
    labels = np.asarray(labels, bool)
    out: dict[str, Any] = {}
    for where, a, b, ok in (("at", at1, at2, ok_at), ("before", before1, before2, ok_before)):
        a, b, y = a[ok], b[ok], labels[ok]
        raw = _cosines(a, b)  # [n, L+1]
        za, zb = _zscore_pair(a, b) if len(a) else (a, b)
        z = _cosines(za, zb)
        out[f"{where}_raw"] = [roc_auc(raw[:, n], y) for n in range(raw.shape[1])]
        out[f"{where}_z"] = [roc_auc(z[:, n], y) for n in range(z.shape[1])]
        out[f"{where}_pairs"] = int(ok.sum())
    return out


def layer_curve(
    wic: str | Path,
    teacher: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    limit: int | None = None,
    batch_tokens: int = 4096,
) -> dict[str, Any]:
    """Load the teacher, read the WiC file, and return the per-layer curve as plain data."""
    from ..model.teacher import BUNDLED_TEACHER, load_teacher
    from .states import teacher_prefix_and_pad
    from .wic import read_wic

    items = read_wic(wic, limit)  # a malformed line: InputError with its line number
    t = load_teacher(teacher or BUNDLED_TEACHER, device=device, dtype=dtype)
    prefix, pad = teacher_prefix_and_pad(t.tokenizer)
    s1, s2 = (
        layer_states(t.model, t.tokenizer, sents, spans[:, 0], spans[:, 1], prefix, pad, t.device, batch_tokens)
        for sents, spans in ((items.sentences1, items.spans1), (items.sentences2, items.spans2))
    )
    res = curve_from_states(s1[0], s2[0], s1[1], s2[1], s1[2] & s2[2], s1[3] & s2[3], items.labels)
    n_layers = len(res["at_raw"]) - 1
    layers = []
    for n in range(n_layers + 1):
        layers.append({"layer": n, **{c: _round(res[c][n]) for c in COLUMNS}})
    best = {c: max(range(n_layers + 1), key=lambda n: -1 if np.isnan(res[c][n]) else res[c][n]) for c in COLUMNS}
    return {
        "file": str(wic),
        "teacher": t.name,
        "n_layers": n_layers,
        "pairs": len(items),
        "same_sense_share": _round(float(items.labels.mean())),
        "pairs_at": res["at_pairs"],
        "pairs_before": res["before_pairs"],
        "layers": layers,
        "best": {c: {"layer": best[c], "auc": _round(res[c][best[c]])} for c in COLUMNS},
        "note": (
            "ROC AUC of the cosine between the word's two states, same sense vs different sense; layer N = "
            "hidden_states[N] (0 = embeddings); at = the word's first token, before = the position before it; "
            "z = per-dimension z-scoring over the file's states at that layer"
        ),
    }


def _round(x: float) -> Optional[float]:
    return None if x is None or not np.isfinite(x) else round(float(x), 4)


def render_table(result: dict, console) -> None:
    from rich.table import Table

    t = Table(
        title=f"sensekit eval layers: {result['file']} (teacher {result['teacher']}, {result['n_layers']} layers, "
        f"{result['pairs']} pairs; at: {result['pairs_at']}, before: {result['pairs_before']})",
        title_justify="left",
    )
    t.add_column("layer", justify="right")
    for c in COLUMNS:
        t.add_column(c.replace("_", " "), justify="right")
    for row in result["layers"]:
        cells = []
        for c in COLUMNS:
            v = row[c]
            mark = v is not None and row["layer"] == result["best"][c]["layer"]
            cells.append("-" if v is None else (f"[bold]{v:.3f}[/]" if mark else f"{v:.3f}"))
        t.add_row(str(row["layer"]), *cells)
    console.print(t)
    console.print("[dim]ROC AUC of same- vs different-sense cosine; bold: the best layer of each column[/]")


def save_png(result: dict, path: str | Path) -> Path:
    """The curve as a PNG: AUC against layer, one line per column."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..fs import write_atomic

    fig = Figure(figsize=(7, 4), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    x = [r["layer"] for r in result["layers"]]
    styles = {"at_raw": ("C0", "--"), "at_z": ("C0", "-"), "before_raw": ("C1", "--"), "before_z": ("C1", "-")}
    labels = {
        "at_raw": "at the word, raw",
        "at_z": "at the word, z-scored",
        "before_raw": "before the word, raw",
        "before_z": "before the word, z-scored",
    }
    for c in COLUMNS:
        y = [np.nan if r[c] is None else r[c] for r in result["layers"]]
        color, ls = styles[c]
        ax.plot(x, y, color=color, linestyle=ls, marker="o", markersize=3, label=labels[c])
    ax.axhline(0.5, color="0.7", linewidth=0.8)
    ax.set_xlabel("layer (hidden_states index; 0 = embeddings)")
    ax.set_ylabel("ROC AUC, same vs different sense")
    name = Path(result["file"]).name.replace("$", "")
    ax.set_title(f"{result['teacher']}: {name}, {result['pairs']} pairs", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    path = Path(path)
    write_atomic(path, buf.getvalue())
    return path
