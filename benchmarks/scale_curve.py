"""How store quality grows with the corpus: build the default corpus at several sizes, evaluate both views.

    python benchmarks/scale_curve.py [--sizes 20000,80000,320000] [--work DIR] [--out PATH.json]
                                     [--metrics wic,simlex,...] [--quick] [--teacher smollm2-135m]

For each size (corpus tokens, `--max-tokens`) it builds the default corpus (WordNet's glosses and
examples, `--lexical-layer auto`, every other build setting at its default) into DIR/SIZE.sensekit,
then runs `sensekit eval store` on the loss view and on the lexical view, and reports per view:
- the headline figures of every metric (`eval store`'s `headlines`);
- `real_cluster_share`: the share of tokens whose senses are real clusters, not raw samples: in the
  loss view a token whose k-means saw more than k samples (docs/method.md keeps n <= k raw samples);
  in the lexical view a token whose senses each hold at least --min-sense-size samples (a token with
  fewer samples gets one centroid of them); `multi_sense_share`: tokens with two or more senses.

Resumable: a size already in the output JSON (same settings) is skipped, and a finished store in DIR
is evaluated again without being rebuilt. The JSON (and a PNG beside it: one panel per headline
figure, both views against corpus size) is rewritten after every size. The last stdout line is the
JSON document.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from common import RESULTS, git_commit, log, machine, passive_omp, write_json

passive_omp()  # before torch is imported

VIEWS = ("loss", "lexical")


def real_cluster_share(store_path: Path, view: str) -> dict:
    """Tokens whose senses are real clusters (see the module docstring), and tokens with 2+ senses."""
    from sensekit import open_store

    with open_store(store_path, view=view) as s:
        meta = s.meta
        k, m = int(meta.get("k") or 10), int(meta["build_config"].get("min_sense_size") or 1)
        rows = s.sense_matrix(view=view)
        own = rows["token_id"] >= 0
        sid = rows["sense_id"][own]
        tok = rows["token_id"][own]
        count = s._sense_count[np.searchsorted(s._sense_ids, sid)]  # samples behind each sense
    if not len(tok):
        return {"tokens": 0, "real_cluster_share": None, "multi_sense_share": None}
    uniq, inv = np.unique(tok, return_inverse=True)
    samples = np.bincount(inv, weights=count)  # [T] samples per token
    senses = np.bincount(inv)
    smallest = np.full(len(uniq), np.iinfo(np.int64).max)
    np.minimum.at(smallest, inv, count)
    real = samples > k if view == "loss" else smallest >= m
    return {
        "tokens": int(len(uniq)),
        "real_cluster_share": round(float(real.mean()), 4),
        "multi_sense_share": round(float((senses >= 2).mean()), 4),
        "mean_senses": round(float(senses.mean()), 3),
    }


def evaluate(store_path: Path, view: str, metrics: tuple[str, ...], teacher, quick: bool) -> dict:
    from sensekit.eval.config import EvalConfig
    from sensekit.eval.store_eval import evaluate_store

    fields = {"store": str(store_path), "view": view}
    if metrics:
        fields["metrics"] = metrics
    if quick:
        fields.update(limit=50, neighbour_words=50, purity_words=40, anisotropy_pairs=2000)
    result = evaluate_store(EvalConfig(**fields), teacher=teacher)
    return {
        "headlines": result.get("headlines", []),
        "seconds": result.get("seconds"),
        "metrics_status": {name: m.get("status") for name, m in result["metrics"].items()},
    }


def build_size(size: int, work: Path, teacher, settings: dict) -> tuple[Path, dict]:
    from sensekit import open_store
    from sensekit.builder.pipeline import BuildConfig, build
    from sensekit.errors import SensekitError

    store = work / f"{size}.sensekit"
    try:  # a finished store of an interrupted run: evaluate it again, do not rebuild
        with open_store(store, view="loss") as s:
            if s.meta.get("max_tokens") == size and s.meta["build_config"].get("lexical_layer") == "auto":
                return store, {"reused": True, "seconds": None, "tokens_processed": s.meta.get("tokens_processed")}
    except SensekitError:
        pass
    t = time.perf_counter()
    r = build(BuildConfig(store=str(store), max_tokens=size, **settings), teacher=teacher)
    return store, {
        "reused": False,
        "seconds": round(time.perf_counter() - t, 1),
        "tokens_processed": r.tokens_processed,
        "tokens": r.tokens,
        "loss_senses": r.senses,
        "lexical_senses": r.lexical_senses,
    }


def plot(doc: dict, path: Path) -> None:
    """One panel per headline figure: value against corpus size, both views (and the baseline, dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(doc["sizes"], key=int)
    figures: list[tuple[str, str, str]] = []  # (metric, figure, data): one metric may score two data sets
    for size in sizes:
        for view in VIEWS:
            for h in doc["sizes"][size]["views"].get(view, {}).get("headlines", []):
                key = (h["metric"], h["figure"], h.get("data", ""))
                if key not in figures:
                    figures.append(key)
    panels = figures + [("senses", "real_cluster_share", "")]
    cols = 3
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    x = [int(s) for s in sizes]
    for ax, (metric, figure, data) in zip(axes.ravel(), panels):
        for view, colour in zip(VIEWS, ("tab:blue", "tab:orange")):
            ys, bs = [], []
            for size in sizes:
                v = doc["sizes"][size]["views"].get(view, {})
                if metric == "senses":
                    ys.append(v.get("clusters", {}).get("real_cluster_share"))
                    bs.append(None)
                    continue
                key = (metric, figure, data)
                h = next(
                    (h for h in v.get("headlines", []) if (h["metric"], h["figure"], h.get("data", "")) == key), {}
                )
                ys.append(h.get("value"))
                bs.append(h.get("baseline"))
            ax.plot(x, [np.nan if y is None else y for y in ys], "o-", color=colour, label=view)
            if any(b is not None for b in bs) and view == "lexical":
                ax.plot(x, [np.nan if b is None else b for b in bs], "--", color="grey", label="baseline")
        ax.set_xscale("log")
        ax.set_title(f"{metric}: {figure}" + (f"\n{Path(data).name[:48]}" if data else ""), fontsize=8)
        ax.set_xlabel("corpus tokens", fontsize=8)
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(panels) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="20000,80000,320000", help="corpus tokens per build, comma-separated")
    ap.add_argument("--work", default="/tmp/sensekit-scale-curve", help="folder for the stores (kept: resumable)")
    ap.add_argument("--out", default=str(RESULTS / "scale_curve.json"), help="the JSON result (PNG beside it)")
    ap.add_argument("--metrics", default="", help="eval store metrics (default: all)")
    ap.add_argument("--teacher", default="smollm2-135m")
    ap.add_argument("--device", default=None)
    ap.add_argument("--quick", action="store_true", help="small eval samples (for a smoke run)")
    ap.add_argument("--samples-per-token", type=int, default=None, help="build -G (default: the build's)")
    args = ap.parse_args()

    from sensekit.model.teacher import load_teacher

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    out = Path(args.out)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    settings = {"lexical_layer": "auto", "teacher": args.teacher}
    if args.samples_per_token:
        settings["samples_per_token"] = args.samples_per_token
    run_settings = {"build": settings, "metrics": list(metrics), "quick": args.quick}
    doc = json.loads(out.read_text()) if out.is_file() else {}
    if doc.get("settings") != run_settings:
        doc = {"settings": run_settings, "sizes": {}}
    doc.update(commit=git_commit(), machine=machine())
    teacher = None
    for size in sizes:
        if str(size) in doc["sizes"]:
            log(f"{size} tokens: done before, skipped")
            continue
        if teacher is None:
            teacher = load_teacher(args.teacher, args.device)
        log(f"{size} tokens: build")
        store, built = build_size(size, work, teacher, settings)
        entry = {"build": built, "views": {}}
        for view in VIEWS:
            log(f"{size} tokens: eval store, {view} view")
            entry["views"][view] = {
                "clusters": real_cluster_share(store, view),
                **evaluate(store, view, metrics, teacher, args.quick),
            }
        doc["sizes"][str(size)] = entry
        write_json(out, doc)
        plot(doc, out.with_suffix(".png"))
    if doc["sizes"]:
        write_json(out, doc)
        plot(doc, out.with_suffix(".png"))
    print(json.dumps(doc))


if __name__ == "__main__":
    main()
