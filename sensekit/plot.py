"""`sensekit plot`: a 2-D picture of one word's senses and the context vectors behind them.

Every point goes through the store's similarity space (`store.space.apply`), the space the
index and every similarity use, and is L2-normalised, since similarity there is a cosine.
A PCA fitted on the drawn points gives the two axes. The word's senses are large discs,
one colour each, and the kept context vectors of each sense are small dots of the same
colour. With `relations=True` the senses of the word's synonyms and antonyms are drawn
too, each kind with its own marker. Each related word is labelled once, at its sense
nearest to the head sense it is attached to, and a thin line joins the two.

numpy and matplotlib only (no torch). matplotlib is imported inside `plot_word`, and the
figure is drawn on an Agg canvas, without pyplot, so no display is needed.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError, NotFound
from .records import Context, Sense

__all__ = ["plot_word", "short_snippet", "pca_2d", "FIGSIZE", "DPI"]

FIGSIZE = (13.0, 8.0)  # inches; the PNG is FIGSIZE * DPI pixels (no tight bounding box, so the size is fixed)
DPI = 100
MAX_RELATED = 12  # related words drawn per kind: beyond this the picture stops being readable
RELATION_MARKERS = {"syn": ("^", "a sense of a synonym"), "ant": ("X", "a sense of an antonym")}
NO_VECTORS_NOTE = "this store keeps no context vectors (built before they were kept): senses only"


@dataclass
class _Related:
    word: str
    kind: str  # 'syn' | 'ant'
    head_sense: int | None  # the word's sense_index it is attached to, None when unattached
    points: np.ndarray  # [m, 2] its senses in the plot
    anchor: int  # which of its senses carries the label


def short_snippet(ctx: Context, width: int = 46) -> str:
    """The context around its key token, about `width` characters, with the key token in [brackets]."""
    s, a, b = ctx.snippet, ctx.mark_start, ctx.mark_end
    key_token = " ".join(s[a:b].split())
    room = max(width - len(key_token) - 2, 8)
    left, right = " ".join(s[:a].split()), " ".join(s[b:].split())
    if len(left) > room // 2:  # keep the words nearest to the key token, whole where possible
        cut = left[len(left) - room // 2 + 1 :]
        left = "…" + (cut.split(" ", 1)[1] if " " in cut else cut)
    if len(right) > room - room // 2:
        cut = right[: room - room // 2 - 1]
        right = (cut.rsplit(" ", 1)[0] if " " in cut else cut) + "…"
    pad_l = " " if s[:a][-1:].isspace() else ""
    pad_r = " " if s[b:][:1].isspace() else ""
    return f"{left}{pad_l}[{key_token}]{pad_r}{right}".strip()


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA of x [n, d] -> (mean [d], basis [2, d], explained variance ratio [2]); zero rows pad a rank < 2."""
    mean = x.mean(0)
    z = (x - mean).astype(np.float64)
    _, s, vt = np.linalg.svd(z, full_matrices=False)
    basis = np.zeros((2, x.shape[1]))
    basis[: min(2, len(vt))] = vt[:2]
    var = s**2
    ratio = np.zeros(2)
    ratio[: min(2, len(var))] = (var / var.sum())[:2] if var.sum() > 0 else 0.0
    return mean, basis, ratio


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _related_words(store, word: str, limit: int) -> tuple[dict[str, list[tuple[str, int | None]]], dict[str, int]]:
    """kind -> [(related word, head_sense)], attached ones first (nearest first), at most `limit` per kind;
    and kind -> how many related words there are in all."""
    best: dict[tuple[str, str], tuple[float, int | None]] = {}
    for r in store.relations(word):  # a word from several sources counts once
        dist = r.head_distance if r.head_sense is not None and r.head_distance is not None else 9.0
        if (r.kind, r.related) not in best or dist < best[(r.kind, r.related)][0]:
            best[(r.kind, r.related)] = (dist, r.head_sense)
    rows: dict[str, list[tuple[str, int | None]]] = {"syn": [], "ant": []}
    for (kind, rel), (_, head) in sorted(best.items(), key=lambda kv: (kv[1][0], kv[0][1])):
        rows[kind].append((rel, head))
    return {kind: r[:limit] for kind, r in rows.items()}, {kind: len(r) for kind, r in rows.items()}


def _check_output(out: str | Path) -> Path:
    path = Path(out).expanduser()
    if not path.parent.is_dir():
        raise InputError(f"cannot write {path}: the folder {path.parent} does not exist; create it or change -o")
    if path.is_dir():
        raise InputError(f"-o {path} is a folder; give a file name such as {path / 'plot.png'}")
    return path


def _escape(text: str) -> str:
    """Plain text for matplotlib: a '$' would start mathtext."""
    return text.replace("$", r"\$")


def plot_word(store, word: str, out: str | Path, relations: bool = False, max_related: int = MAX_RELATED) -> dict:
    """Draw `word`'s senses (and, with `relations`, its synonyms' and antonyms' senses) into `out` (PNG).

    Returns what was drawn: path, width and height in pixels, and the counts of senses, context vectors,
    related words and their senses, the PCA's explained variance ratio, and a note (or None).
    Raises NotFound for a word without senses, InputError for an output path that cannot be written.
    """
    path = _check_output(out)
    senses: list[Sense] = store.senses(word)
    if not senses:
        close = [w for w in store.similar_words(word) if w != word.strip()]
        hint = f"; did you mean: {', '.join(close)}" if close else ""
        raise NotFound(f"unknown word {word.strip()!r}: it has no senses to plot in {store.path}{hint}")
    vectors = store.context_vectors([s.sense_id for s in senses])  # sense_id -> [E, dim]
    ctx_owner = np.concatenate([np.full(len(vectors.get(s.sense_id, ())), i) for i, s in enumerate(senses)])
    raw = [np.stack([s.embedding for s in senses])] + [vectors[s.sense_id] for s in senses if s.sense_id in vectors]
    related, totals = _related_words(store, word, max_related) if relations else ({"syn": [], "ant": []}, {})
    rel_senses = {(kind, rel): store.senses(rel) for kind in ("syn", "ant") for rel, _ in related[kind]}
    rel_senses = {pair: ss for pair, ss in rel_senses.items() if ss}
    raw += [np.stack([s.embedding for s in ss]) for ss in rel_senses.values()]

    x = _unit(store.space.apply(np.concatenate(raw)))  # [n, dim] in the similarity space
    mean, basis, ratio = pca_2d(x)
    xy = (x - mean) @ basis.T  # [n, 2]
    n_s, n_c = len(senses), len(ctx_owner)
    sense_xy, ctx_xy, rest = xy[:n_s], xy[n_s : n_s + n_c], xy[n_s + n_c :]
    drawn: list[_Related] = []
    head_of = {kind: dict(related[kind]) for kind in ("syn", "ant")}
    by_index = {s.sense_index: i for i, s in enumerate(senses)}
    for (kind, rel), ss in rel_senses.items():
        pts, rest = rest[: len(ss)], rest[len(ss) :]
        head = head_of[kind][rel]
        target = sense_xy[by_index[head]] if head in by_index else sense_xy.mean(0)
        anchor = int(np.argmin(((pts - target) ** 2).sum(1)))  # label the sense drawn nearest to its head sense
        drawn.append(_Related(rel, kind, head if head in by_index else None, pts, anchor))

    note = None if vectors else NO_VECTORS_NOTE
    space = f"{store.default_view} view, {store.space.transform}"  # each view has its own space
    _draw(
        path,
        word.strip(),
        senses,
        sense_xy,
        ctx_xy,
        ctx_owner,
        related=drawn,
        totals=totals,
        ratio=ratio,
        space=space,
        note=note,
    )
    return {
        "word": word.strip(),
        "path": str(path),
        "width": int(FIGSIZE[0] * DPI),
        "height": int(FIGSIZE[1] * DPI),
        "senses": n_s,
        "contexts": n_c,
        "space": store.space.transform,
        "view": store.default_view,
        "synonyms": sum(r.kind == "syn" for r in drawn),
        "antonyms": sum(r.kind == "ant" for r in drawn),
        "synonyms_total": totals.get("syn", 0),
        "antonyms_total": totals.get("ant", 0),
        "related_senses": int(sum(len(r.points) for r in drawn)),
        "explained_variance": [round(float(v), 4) for v in ratio],
        "note": note,
    }


def _draw(
    path: Path,
    word: str,
    senses: list[Sense],
    sense_xy: np.ndarray,
    ctx_xy: np.ndarray,
    ctx_owner: np.ndarray,
    *,
    related: list[_Related],
    totals: dict[str, int],
    ratio: np.ndarray,
    space: str,
    note: str | None,
) -> None:
    """The figure: the scatter on the left, the sense legend (with snippets) on the right."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.06, 0.08, 0.52, 0.82))
    colours = _palette(len(senses))
    _draw_points(ax, senses, sense_xy, ctx_xy, ctx_owner, related, colours)
    ax.margins(0.12)
    _label_related(fig, ax, related, sense_xy, [_disc_size(s.count, senses) for s in senses])
    ax.set_xlabel(f"PC1 ({ratio[0]:.0%} of the variance)")
    ax.set_ylabel(f"PC2 ({ratio[1]:.0%})")
    ax.grid(True, lw=0.3, alpha=0.5)
    _titles(fig, word, senses, ctx_xy, related, totals, space, note)
    _legend(fig, senses, related, colours)
    fig.savefig(path, dpi=DPI)


def _draw_points(ax, senses, sense_xy, ctx_xy, ctx_owner, related, colours) -> None:
    """Context vectors with lines to their sense, related words' senses, then the sense discs on top."""
    for i, (px, py) in enumerate(ctx_xy):  # membership lines: each context to its sense
        sx, sy = sense_xy[ctx_owner[i]]
        ax.plot([px, sx], [py, sy], color=colours[ctx_owner[i]], lw=0.6, alpha=0.35, zorder=1)
    if len(ctx_xy):
        ax.scatter(
            ctx_xy[:, 0], ctx_xy[:, 1], s=22, c=[colours[o] for o in ctx_owner], alpha=0.7, edgecolors="none", zorder=2
        )
    for r in related:  # above the discs (small, hollow); the labelled sense stands out, the others recede
        fill = "none" if r.kind == "syn" else "0.35"
        rest = np.arange(len(r.points)) != r.anchor
        ax.scatter(
            r.points[rest, 0],
            r.points[rest, 1],
            s=20,
            marker=RELATION_MARKERS[r.kind][0],
            facecolors=fill,
            edgecolors="0.35",
            linewidths=0.7,
            alpha=0.4,
            zorder=5,
        )
        ax.scatter(
            r.points[r.anchor, 0],
            r.points[r.anchor, 1],
            s=42,
            marker=RELATION_MARKERS[r.kind][0],
            facecolors="none" if r.kind == "syn" else "0.1",
            edgecolors="0.1",
            linewidths=1.1,
            zorder=5,
        )
        if r.head_sense is not None:
            hx, hy = sense_xy[[s.sense_index for s in senses].index(r.head_sense)]
            ax.plot([r.points[r.anchor, 0], hx], [r.points[r.anchor, 1], hy], color="0.55", lw=0.5, ls=":", zorder=1)
    ax.scatter(
        sense_xy[:, 0],
        sense_xy[:, 1],
        s=[_disc_size(s.count, senses) for s in senses],
        c=colours,
        edgecolors="black",
        linewidths=1.0,
        zorder=4,
    )
    for i, (sx, sy) in enumerate(sense_xy):
        dark = sum(colours[i][:3]) < 1.8  # white digits on dark discs, black on light ones
        ax.text(
            sx,
            sy,
            str(senses[i].sense_index),
            ha="center",
            va="center",
            fontsize=8,
            fontweight="bold",
            color="white" if dark else "black",
            zorder=5,
        )


def _titles(fig, word, senses, ctx_xy, related, totals, space, note) -> None:
    shown = {kind: sum(r.kind == kind for r in related) for kind in ("syn", "ant")}
    extra = "".join(
        f", {shown[k]}{f' of {totals[k]}' if totals[k] > shown[k] else ''} {name}"
        for k, name in (("syn", "synonyms"), ("ant", "antonyms"))
        if totals
    )
    fig.suptitle(
        _escape(f"'{word}': {len(senses)} senses, {len(ctx_xy)} context vectors{extra}"),
        x=0.06,
        ha="left",
        fontsize=13,
        fontweight="bold",
    )
    fig.text(
        0.06,
        0.915,
        _escape(
            f"PCA of the store's similarity space ({space}), unit vectors (cosine geometry)"
            + (f"; {note}" if note else "")
        ),
        fontsize=9,
        color="0.3",
    )


def _named(sense) -> str:
    """A legend's name line: a linked sense's synset and gloss, an induced sense's label, or nothing."""
    text = f"{sense.synset}: {sense.gloss or ''}" if sense.synset else sense.label
    return textwrap.shorten(text, 70, placeholder="…") + "\n" if text else ""


def _legend(fig, senses, related, colours) -> None:
    """One entry per sense (count, share, central snippets), then the markers."""
    from matplotlib.lines import Line2D

    total = sum(s.count for s in senses) or 1
    handles = [
        Line2D(
            [],
            [],
            ls="",
            marker="o",
            ms=9,
            mfc=colours[i],
            mec="black",
            label=_escape(f"{s.sense_index}  n={s.count} ({s.count / total:.0%})\n" + _named(s) + _wrapped(s.contexts)),
        )
        for i, s in enumerate(senses)
    ]
    kinds = sorted({r.kind for r in related}, reverse=True)
    handles += [
        Line2D([], [], ls="", marker="o", ms=4, mfc="0.4", mec="none", label="context vector (its sense's colour)")
    ]
    handles += [
        Line2D(
            [],
            [],
            ls="",
            marker=RELATION_MARKERS[k][0],
            ms=7,
            mec="0.35",
            mfc="none" if k == "syn" else "0.35",
            label=RELATION_MARKERS[k][1],
        )
        for k in kinds
    ]
    if any(r.head_sense is not None for r in related):
        handles += [Line2D([], [], color="0.55", lw=0.8, ls=":", label="related word - the sense it is attached to")]
    fig.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(0.6, 0.9),
        fontsize=8,
        frameon=False,
        labelspacing=0.9,
        handletextpad=0.6,
        title="senses (most central contexts)",
        title_fontsize=9,
        alignment="left",
    )


def _palette(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _disc_size(count: int, senses: list[Sense]) -> float:
    """Marker area grows with the sense's share of the samples, within 90..400 points^2."""
    top = max(s.count for s in senses) or 1
    return 90 + 310 * np.sqrt(max(count, 0) / top)


def _wrapped(contexts, n: int = 2, width: int = 64) -> str:
    if not contexts:
        return "(no contexts kept)"
    return "\n".join(textwrap.shorten(short_snippet(c, width), width + 4, placeholder="…") for c in contexts[:n])


def _label_related(fig, ax, related: list[_Related], sense_xy: np.ndarray, disc_sizes: list[float]) -> None:
    """Label each related word at its anchor sense, nudging labels off the discs and off each other (greedy)."""
    from matplotlib.transforms import Bbox

    if not related:
        return
    fig.canvas.draw()  # fix the data limits before measuring
    renderer = fig.canvas.get_renderer()
    taken = []
    for (px, py), size in zip(ax.transData.transform(sense_xy), disc_sizes):  # the discs, in pixels
        radius = np.sqrt(size) / 2 * fig.dpi / 72
        taken.append(Bbox.from_extents(px - radius, py - radius, px + radius, py + radius))
    offsets = [
        (6, 4),
        (6, -10),
        (-6, 4),
        (-6, -10),
        (0, 12),
        (0, -16),
        (14, 14),
        (-14, 14),
        (14, -20),
        (-14, -20),
        (24, 0),
        (-24, 0),
        (0, 24),
        (0, -28),
    ]
    for r in related:
        x, y = r.points[r.anchor]
        for dx, dy in offsets:
            t = ax.annotate(
                _escape(r.word),
                (x, y),
                xytext=(dx, dy),
                textcoords="offset points",
                fontsize=8,
                ha="left" if dx >= 0 else "right",
                color="0.15" if r.kind == "syn" else "darkred",
                style="italic" if r.kind == "ant" else "normal",
                zorder=6,
            )
            box = t.get_window_extent(renderer).expanded(1.05, 1.1)
            if not any(box.overlaps(b) for b in taken) or (dx, dy) == offsets[-1]:
                taken.append(box)
                break
            t.remove()
