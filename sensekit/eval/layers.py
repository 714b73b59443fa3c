"""`sensekit eval layers` (the command is in sensekit/cli/eval.py): which layer of a teacher, and which
reading of a word occurrence, tells word senses apart (docs/lexical.md).

For every WiC-style pair (two sentences, one word: by default the held-out WordNet pairs, or a WiC
file), every layer N (the convention of `sensekit.model.lexical`: N = `hidden_states[N]`, 0 =
embeddings, L = the last entry HF returns) and every representation of `sensekit.model.occurrence`
(`first`: the word's first token; `mean`: the mean over its tokens; `repeat`: the mean over its
tokens in the second copy of the sentence fed twice), the cosine between the word's two states is a
score for "same sense". Reported per layer and representation, on a dev and a test half of the pairs
(a hash of the pair, `halves`):

- the ROC AUC of that score, same-sense pairs against different-sense pairs, after per-dimension
  z-scoring with the dev half's mean and standard deviation (the rogue dimensions of residual
  states otherwise dominate the cosine), and raw;
- the accuracy of a threshold on the z-scored cosine, fitted on dev, on dev and on test.

The best layer of each representation and the winning representation are chosen by dev AUC. One
batched pass per representation gives every layer at once (`occurrence_states_at`). Pairs that some
representation cannot read (no token overlaps the word) are left out of every column; the count is
reported. `layer_states` (the state at and just before the word, every layer) serves
benchmarks/lexical_dev.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np

__all__ = [
    "layer_states",
    "roc_auc",
    "zscore_cosines",
    "score_layers",
    "default_layers",
    "load_pairs",
    "layer_curve",
    "render_table",
    "save_png",
]

REPRESENTATIONS = ("first", "mean", "repeat")  # sensekit.model.occurrence.REPRESENTATIONS (no torch import here)


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


def zscore_cosines(a: np.ndarray, b: np.ndarray, fit: np.ndarray) -> np.ndarray:
    """[N] cosine of a, b [N, d] after per-dimension z-scoring with the mean and std of the rows of `fit`."""
    fit = np.asarray(fit, np.float64)
    mean, std = fit.mean(0), fit.std(0)
    std = np.maximum(std, 1e-6 * max(float(std.mean()), 1e-12))
    return _cosines((a - mean) / std, (b - mean) / std)


def score_layers(s1: np.ndarray, s2: np.ndarray, labels: np.ndarray, dev: np.ndarray) -> list[dict[str, Any]]:
    """Per layer k of s1, s2 [N, K, d] (the two occurrences of each pair): ROC AUC of the cosine on the dev
    and the test half, raw and z-scored (statistics from the dev half's states), and the accuracy of a
    z-scored cosine threshold fitted on dev, on dev and on test."""
    from .wic import fit_threshold

    y, dev = np.asarray(labels, bool), np.asarray(dev, bool)
    test = ~dev
    out = []
    for k in range(s1.shape[1]):  # per layer (a dozen)
        a, b = s1[:, k].astype(np.float64), s2[:, k].astype(np.float64)
        raw = _cosines(a, b)  # [N]
        z = zscore_cosines(a, b, np.concatenate([a[dev], b[dev]]) if dev.any() else np.concatenate([a, b]))
        t = fit_threshold(z[dev], y[dev]) if dev.any() else float("nan")
        out.append(
            {
                "dev_auc": _round(roc_auc(z[dev], y[dev])),
                "test_auc": _round(roc_auc(z[test], y[test])),
                "dev_auc_raw": _round(roc_auc(raw[dev], y[dev])),
                "test_auc_raw": _round(roc_auc(raw[test], y[test])),
                "threshold": _round(t),
                "dev_accuracy": _round(np.mean((z[dev] >= t) == y[dev]) if dev.any() else float("nan")),
                "test_accuracy": _round(np.mean((z[test] >= t) == y[test]) if test.any() else float("nan")),
            }
        )
    return out


def default_layers(n_layers: int) -> list[int]:
    """Every third layer from the embeddings, the auto layer, and the last: 0, 3, ..., L."""
    from ..model.lexical import auto_layer

    return sorted(set(range(0, n_layers + 1, 3)) | {auto_layer(n_layers), n_layers})


def load_pairs(wic: str | Path | None, wordnet: str | None, heldout_share: float | None, seed: int, limit: int | None):
    """-> (WicItems, what they are): the WiC file when given, else the held-out WordNet pairs."""
    if wic is not None:
        from .wic import read_wic

        return read_wic(wic, limit), str(wic)  # a malformed line: InputError with its line number
    from ..builder.wordnet_corpus import HELDOUT_SHARE, wordnet_synsets
    from ..lexicon.wordnet import open_wordnet
    from .wordnet_pairs import wordnet_pairs

    share = heldout_share or HELDOUT_SHARE
    pairs = wordnet_pairs(wordnet_synsets(wordnet), open_wordnet(wordnet), share, seed, limit)
    return pairs.items, f"held-out WordNet pairs (share {share:g}, seed {seed})"


def layer_curve(
    wic: str | Path | None = None,
    *,
    teacher: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    limit: int | None = None,
    batch_tokens: int = 4096,
    representations: tuple[str, ...] = REPRESENTATIONS,
    layers: list[int] | None = None,
    wordnet: str | None = None,
    heldout_share: float | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Load the teacher and the pairs; return the per-layer, per-representation curve as plain data.

    Pairs split into dev and test halves by a hash of the pair (`halves`); every figure is given on both,
    the threshold and the winner (best dev AUC) are chosen on dev. Only pairs that every representation
    can read (a token overlaps the word in both sentences) are scored.
    """
    from ..errors import InputError
    from ..model.layers import layer_count
    from ..model.occurrence import check_representation, occurrence_states_at
    from ..model.teacher import BUNDLED_TEACHER, load_teacher
    from .halves import dev_mask, pair_keys

    reps = tuple(dict.fromkeys(check_representation(r, "--representations") for r in representations))
    items, data = load_pairs(wic, wordnet, heldout_share, seed, limit)
    t = load_teacher(teacher or BUNDLED_TEACHER, device=device, dtype=dtype)
    n_layers = layer_count(t.model.config)
    layers = default_layers(n_layers) if layers is None else sorted(set(layers))
    bad = [n for n in layers if not 0 <= n <= n_layers]
    if bad:
        raise InputError(f"--layers {bad[0]}: the teacher has {n_layers} layers; use 0..{n_layers}")
    # each distinct occurrence once: pairs share sentences
    index: dict[tuple[str, int, int], int] = {}
    sides = []
    for sents, spans in ((items.sentences1, items.spans1), (items.sentences2, items.spans2)):
        sides.append(np.asarray([index.setdefault((s, int(a), int(b)), len(index)) for s, (a, b) in zip(sents, spans)]))
    occ = list(index)
    states, ok_all = {}, np.ones(len(items), bool)
    for rep in reps:  # one batched pass per representation, every layer at once
        st, ok = occurrence_states_at(
            t.model,
            t.tokenizer,
            [o[0] for o in occ],
            [o[1] for o in occ],
            [o[2] for o in occ],
            layers,
            rep,
            device=t.device,
            tokens_per_batch=batch_tokens,
        )  # [M, K, d]
        states[rep] = st
        ok_all &= ok[sides[0]] & ok[sides[1]]
    dev = dev_mask(pair_keys(items.words, items.sentences1, items.sentences2))
    keep = np.flatnonzero(ok_all)
    scores = {
        rep: score_layers(states[rep][sides[0][keep]], states[rep][sides[1][keep]], items.labels[keep], dev[keep])
        for rep in reps
    }
    rows = [{"layer": n, **{rep: scores[rep][k] for rep in reps}} for k, n in enumerate(layers)]
    best = {}
    for rep in reps:
        k = max(range(len(layers)), key=lambda k: scores[rep][k]["dev_auc"] or -1.0)
        best[rep] = {"layer": layers[k], **scores[rep][k]}
    winner = max(reps, key=lambda r: best[r]["dev_auc"] or -1.0)
    return {
        "file": data,
        "teacher": t.name,
        "n_layers": n_layers,
        "pairs": len(items),
        "scored": int(len(keep)),
        "halves": {"dev": int(dev[keep].sum()), "test": int((~dev[keep]).sum())},
        "same_sense_share": _round(float(items.labels[keep].mean())) if len(keep) else None,
        "representations": list(reps),
        "layers": rows,
        "best": best,
        "winner": {"representation": winner, "layer": best[winner]["layer"]},
        "note": (
            "ROC AUC of the cosine between the word's two states, same sense vs different sense, z-scored with the "
            "dev half's statistics (raw beside it); layer N = hidden_states[N] (0 = embeddings); first = the "
            "word's first token, mean = the mean over its tokens, repeat = the mean over its tokens in the second "
            "copy of the sentence fed twice; accuracy: a z-scored cosine threshold fitted on dev; dev and test "
            "halves by a hash of the pair; best and winner: by dev AUC"
        ),
    }


def _round(x: float) -> Optional[float]:
    return None if x is None or not np.isfinite(x) else round(float(x), 4)


def render_table(result: dict, console) -> None:
    from rich.markup import escape
    from rich.table import Table

    reps = result["representations"]
    h = result["halves"]
    t = Table(
        title=f"sensekit eval layers: {escape(result['file'])} (teacher {escape(result['teacher'])}, "
        f"{result['n_layers']} layers, {result['scored']} of {result['pairs']} pairs: {h['dev']} dev, {h['test']} test)",
        title_justify="left",
    )
    t.add_column("layer", justify="right")
    for rep in reps:
        t.add_column(f"{rep}: AUC dev / test", justify="right")
    for row in result["layers"]:
        cells = []
        for rep in reps:
            e = row[rep]
            text = f"{_fmt(e['dev_auc'])} / {_fmt(e['test_auc'])}"
            cells.append(f"[bold]{text}[/]" if row["layer"] == result["best"][rep]["layer"] else text)
        t.add_row(str(row["layer"]), *cells)
    console.print(t)
    b = Table(title="the best layer of each representation (by dev AUC)", title_justify="left")
    for col in ("representation", "layer", "AUC dev / test", "threshold accuracy dev / test"):
        b.add_column(col, justify="left" if col == "representation" else "right")
    for rep in reps:
        e = result["best"][rep]
        mark = "*" if rep == result["winner"]["representation"] else ""
        b.add_row(
            rep + mark,
            str(e["layer"]),
            f"{_fmt(e['dev_auc'])} / {_fmt(e['test_auc'])}",
            f"{_fmt(e['dev_accuracy'])} / {_fmt(e['test_accuracy'])}",
        )
    console.print(b)
    console.print(
        "[dim]ROC AUC of the z-scored cosine of the word's two states, same vs different sense; bold: the best "
        "dev layer of each column; *: the best representation on dev; accuracy: threshold fitted on dev[/]"
    )


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def save_png(result: dict, path: str | Path) -> Path:
    """The curve as a PNG: AUC against layer, one colour per representation, dev solid and test dashed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..fs import write_atomic

    fig = Figure(figsize=(7, 4), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    x = [r["layer"] for r in result["layers"]]
    for i, rep in enumerate(result["representations"]):
        for half, ls in (("dev", "-"), ("test", "--")):
            y = [np.nan if r[rep][f"{half}_auc"] is None else r[rep][f"{half}_auc"] for r in result["layers"]]
            ax.plot(x, y, color=f"C{i}", linestyle=ls, marker="o", markersize=3, label=f"{rep}, {half}")
    ax.axhline(0.5, color="0.7", linewidth=0.8)
    ax.set_xlabel("layer (hidden_states index; 0 = embeddings)")
    ax.set_ylabel("ROC AUC, same vs different sense")
    name = Path(result["file"]).name.replace("$", "")
    ax.set_title(f"{result['teacher']}: {name}, {result['scored']} pairs", fontsize=9)
    ax.legend(fontsize=7, loc="best", ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    path = Path(path)
    write_atomic(path, buf.getvalue())
    return path
