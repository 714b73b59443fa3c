"""Dev/test protocol of the lexical view (issue 15, docs/lexical.md): choose on one half, report on the other.

    python benchmarks/lexical_dev.py split [--out DIR]
        The shared WiC validation pairs cut in two halves by a stable hash of the pair (sha1 of
        word TAB sentence1 TAB sentence2, first byte even = dev): DIR/wic_dev.jsonl, DIR/wic_test.jsonl.
    python benchmarks/lexical_dev.py cache [--layers 6,9,12,15,18,22] [--max-tokens 80000] [--out DIR]
        Run the bundled teacher once over the demo corpus (WordNet glosses with lemmas, as `make demo` reads
        it, min_context 3, key input) and keep per key token a reservoir of G = 50 states at each layer;
        also the states of the WiC pairs and of held-out WordNet examples (synsets the corpus prefix did not
        read) for purity. -> DIR/cache.npz (+ DIR/states_L{N}.npy)
    python benchmarks/lexical_dev.py grid [--half dev|test] [--layers ...] [--settings JSON] [--out FILE]
        Cluster the cached states with cluster_adaptive for each setting and score it on one half:
        WiC nearest sense (+ coverage), SimLex-999 / WordSim-353 (MaxSim, AvgSim, centroid), purity ARI on the
        held-out WordNet examples, neighbours' WordNet-related share, anisotropy, senses per token, time.

Halves: WiC pairs by the hash above; SimLex/WordSim pairs by the same hash of "word1 TAB word2"; purity and
neighbour words by the hash of the word. The similarity space of every score is the store's default
(zscore+abtt, fitted on the senses), as `sensekit eval store` uses.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

from common import log, passive_omp, write_json

passive_omp()

import numpy as np  # noqa: E402

from sensekit.paths import shared_dir  # noqa: E402

EVAL = shared_dir() / "data" / "eval"
G, MIN_CONTEXT, SEQ_LEN = 50, 3, 256


def half_of(text: str) -> str:
    return "dev" if hashlib.sha1(text.encode()).digest()[0] % 2 == 0 else "test"


# -- split ----------------------------------------------------------------------------------
def split(out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    files = {h: (out / f"wic_{h}.jsonl").open("w", encoding="utf-8") for h in ("dev", "test")}
    n = {"dev": 0, "test": 0}
    for line in (EVAL / "wic" / "val.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            h = half_of(f"{r['word']}\t{r['sentence1']}\t{r['sentence2']}")
            files[h].write(line + "\n")
            n[h] += 1
    for f in files.values():
        f.close()
    return n


# -- cache ----------------------------------------------------------------------------------
def _truncate(model, top: int) -> None:
    """Keep decoder layers 0..top-1 only: hidden_states[0..top-1] stay the un-normed residual states."""
    model.config.num_hidden_layers = top
    base = model.base_model
    base.layers = base.layers[:top]


def cache(out: Path, layers: list[int], max_tokens: int) -> None:
    import torch

    from sensekit.builder.corpus import special_prefix
    from sensekit.builder.reservoir import Reservoir
    from sensekit.builder.wordnet_corpus import iter_wordnet
    from sensekit.eval.layers import layer_states
    from sensekit.eval.purity import collect_occurrences
    from sensekit.eval.states import teacher_prefix_and_pad
    from sensekit.eval.wic import read_wic
    from sensekit.lexicon.wordnet import open_wordnet
    from sensekit.model.teacher import load_teacher

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    out.mkdir(parents=True, exist_ok=True)
    t = load_teacher(device="cpu")
    tok = t.tokenizer
    n_layers = t.model.config.num_hidden_layers
    top = max(layers) + 1
    assert top <= n_layers
    _truncate(t.model, top)
    prefix = special_prefix(tok)
    specials = set(t.special_ids)
    # 1. the corpus prefix the demo reads
    docs, read, tokens = [], [], 0
    for name, text in iter_wordnet(lemmas=True):
        ids = prefix + tok(text, add_special_tokens=False)["input_ids"]
        ids = ids[:SEQ_LEN][: max_tokens - tokens]
        if len(ids) <= len(prefix):
            break
        docs.append(np.asarray(ids, np.int64))
        read.append(name)
        tokens += len(ids)
        if tokens >= max_tokens:
            break
    log(f"corpus: {len(docs)} documents, {tokens} tokens")
    d = t.hidden_size
    res = Reservoir(t.vocab_size, d * len(layers), G, seed=0)
    order = np.argsort([-len(x) for x in docs], kind="stable")
    t0, done, i = time.time(), 0, 0
    while i < len(order):
        width = len(docs[order[i]])
        j = min(len(order), i + max(1, 4096 // width))
        chunk = order[i:j]
        ids = np.zeros((len(chunk), width), np.int64)
        mask = np.zeros((len(chunk), width), np.int64)
        for r, k in enumerate(chunk):
            ids[r, : len(docs[k])], mask[r, : len(docs[k])] = docs[k], 1
        with torch.inference_mode():
            o = t.model.base_model(
                input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), output_hidden_states=True
            )
        hs = torch.cat([o.hidden_states[n] for n in layers], -1)  # [B, T, d * L]
        pos = np.arange(width)[None, :]
        ok = (mask > 0) & (pos - len(prefix) >= MIN_CONTEXT) & ~np.isin(ids, list(specials))
        rr, pp = np.nonzero(ok)
        keys = ids[rr, pp]
        sel, dest = res.admit(keys)
        if len(sel):
            vec = hs[torch.from_numpy(rr[sel]), torch.from_numpy(pp[sel])].half().numpy()
            res.write(dest, vec, np.stack([chunk[rr[sel]], pp[sel], pp[sel]], 1))
        done += int(mask.sum())
        i = j
        log(f"  {done}/{tokens} tokens, {time.time() - t0:.0f} s")
    s = res.export()
    log(f"reservoir: {len(s.keys)} keys, {len(s.vectors)} samples")
    for li, n in enumerate(layers):
        np.save(out / f"states_L{n}.npy", np.ascontiguousarray(s.vectors[:, li * d : (li + 1) * d]))
    # 2. evaluation states: WiC pairs, held-out WordNet examples (purity)
    pre, pad = teacher_prefix_and_pad(tok)
    wic = read_wic(EVAL / "wic" / "val.jsonl")
    w1 = layer_states(t.model, tok, wic.sentences1, wic.spans1[:, 0], wic.spans1[:, 1], pre, pad)
    w2 = layer_states(t.model, tok, wic.sentences2, wic.spans2[:, 0], wic.spans2[:, 1], pre, pad)
    wn = open_wordnet(None)
    read_set = set(read)
    text_of = {i: tok.decode([i]) for i in s.keys.tolist()}
    words = sorted(
        {
            text_of[k].strip().lower()
            for k, n in zip(s.keys.tolist(), s.lengths.tolist())
            if n >= 10 and text_of[k].startswith(" ") and text_of[k][1:].isalpha() and text_of[k][1:].islower()
        }
    )
    occ = collect_occurrences(wn, words)
    held = np.asarray([sy not in read_set for sy in occ.synset], bool)
    log(f"purity: {len(occ)} occurrences of {len(set(occ.word))} words, {held.sum()} held out")
    p = layer_states(t.model, tok, occ.sentence, np.asarray(occ.start), np.asarray(occ.end), pre, pad)
    np.savez(
        out / "cache.npz",
        layers=np.asarray(layers),
        keys=s.keys,
        indptr=s.indptr,
        counts=s.counts,
        read=np.asarray(read),
        wic_at1=w1[0][:, layers],
        wic_at2=w2[0][:, layers],
        wic_ok=w1[2] & w2[2],
        wic_labels=wic.labels,
        wic_words=np.asarray(wic.words),
        wic_half=np.asarray([half_of(f"{w}\t{a}\t{b}") for w, a, b in zip(wic.words, wic.sentences1, wic.sentences2)]),
        occ_states=p[0][:, layers],
        occ_ok=p[2],
        occ_word=np.asarray(occ.word),
        occ_synset=np.asarray(occ.synset),
        occ_held=held,
        emb=t.model.get_input_embeddings().weight.detach().float().numpy(),
    )
    log(f"wrote {out}/cache.npz")


# -- grid -----------------------------------------------------------------------------------
class Data:
    def __init__(self, folder: Path, layer: int):
        from sensekit.model.teacher import load_teacher  # noqa: F401  (tokenizer only)

        self.c = np.load(folder / "cache.npz")
        self.li = int(np.flatnonzero(self.c["layers"] == layer)[0])
        self.vectors = np.load(folder / f"states_L{layer}.npy", mmap_mode="r")
        self.keys, self.indptr = self.c["keys"], self.c["indptr"]
        from tokenizers import Tokenizer

        from sensekit.model.teacher import converted_dir

        self.tok = Tokenizer.from_file(str(converted_dir() / "tokenizer.json"))

    def single(self, words) -> np.ndarray:
        enc = self.tok.encode_batch([" " + w.strip() for w in words], add_special_tokens=False)
        return np.asarray([e.ids[0] if len(e.ids) == 1 else -1 for e in enc], np.int64)


def score(data: Data, res, half: str, seed: int = 0) -> dict:
    from sensekit.eval.purity import grouped_scores
    from sensekit.eval.senses import SenseTable, unit
    from sensekit.eval.similarity import pair_similarities, read_pairs, spearman
    from sensekit.eval.wic import pair_cosines, threshold_baseline, wic_accuracy
    from sensekit.space import fit_space

    c, li = data.c, data.li
    table = SenseTable.from_arrays(res.sense_key, res.sense_index, res.centroids, res.sense_count)
    space = fit_space(res.centroids)
    to = space.apply
    out: dict = {"senses": int(len(res.sense_key)), "tokens": int(len(np.unique(res.sense_key)))}
    n_s = np.diff(table.indptr)
    out["multi_sense_tokens"] = int((n_s >= 2).sum())
    out["senses_per_multi_token"] = round(float(n_s[n_s >= 2].mean()), 2) if (n_s >= 2).any() else 0.0
    # WiC
    sel = c["wic_half"] == half
    tokens = data.single(list(c["wic_words"]))
    ok = c["wic_ok"] & (tokens >= 0) & (table.n_senses(tokens) >= 2) & sel
    a1 = table.nearest(c["wic_at1"][ok, li], tokens[ok], to)
    a2 = table.nearest(c["wic_at2"][ok, li], tokens[ok], to)
    out["wic"] = round(wic_accuracy(a1, a2, c["wic_labels"][ok]), 4) if ok.any() else None
    out["wic_coverage"] = round(float(ok.sum() / sel.sum()), 4)
    cos = pair_cosines(to(c["wic_at1"][:, li]), to(c["wic_at2"][:, li]))
    both = c["wic_ok"] & sel
    out["wic_threshold_baseline"] = round(threshold_baseline(cos[ok], c["wic_labels"][ok])["accuracy"], 4)
    out["wic_threshold_baseline_all"] = round(threshold_baseline(cos[both], c["wic_labels"][both])["accuracy"], 4)
    # similarity
    for name, fname in (("simlex", "simlex999.txt"), ("wordsim", "wordsim353.tsv")):
        w1, w2, gold = read_pairs(EVAL / fname)
        h = np.asarray([half_of(f"{a}\t{b}") == half for a, b in zip(w1, w2)])
        t1, t2 = data.single(w1), data.single(w2)
        cov = h & (t1 >= 0) & (t2 >= 0) & (table.n_senses(t1) > 0) & (table.n_senses(t2) > 0)
        A, ma = table.padded(t1[cov], to)
        B, mb = table.padded(t2[cov], to)
        sims = pair_similarities(A, ma, B, mb)
        out[name] = {k: round(spearman(v, gold[cov]), 4) for k, v in sims.items()}
        out[name]["pairs"] = int(cov.sum())
        emb = c["emb"]
        out[name]["input_embeddings"] = round(spearman((unit(emb[t1[cov]]) * unit(emb[t2[cov]])).sum(1), gold[cov]), 4)
    # purity on held-out WordNet examples
    words = c["occ_word"]
    wh = np.asarray([half_of(w) == half for w in words])
    otok = data.single(list(words))
    keep = c["occ_ok"] & c["occ_held"] & wh & (otok >= 0) & (table.n_senses(otok) >= 2)
    wid = np.unique(words, return_inverse=True)[1].ravel()
    gold = np.unique(c["occ_synset"], return_inverse=True)[1].ravel()
    for w in np.unique(wid[keep]):
        m = keep & (wid == w)
        if m.sum() < 4 or len(np.unique(gold[m])) < 2:
            keep &= wid != w
    if keep.any():
        pred = table.nearest(c["occ_states"][keep, li], otok[keep], to)
        ari, pur = grouped_scores(wid[keep], pred, gold[keep])
        out["purity_ari"] = round(float(ari.mean()), 4)
        out["purity_ari_se"] = round(float(ari.std(ddof=1) / np.sqrt(max(len(ari), 1))), 4) if len(ari) > 1 else None
        out["purity_words"] = int(len(ari))
    else:
        out["purity_ari"], out["purity_words"] = None, 0
    out.update(neighbours(data, table, to, half, seed))
    u = unit(to(res.centroids))
    rng = np.random.default_rng(seed)
    i, j = rng.integers(0, len(u), 20000), rng.integers(0, len(u), 20000)
    out["anisotropy"] = round(float(np.mean((u[i] * u[j]).sum(1)[i != j])), 4)
    return out


def neighbours(data: Data, table, to, half: str, seed: int, k: int = 10, n_words: int = 200) -> dict:
    """WordNet-related share of the k nearest senses of other tokens (brute force, cosine in the space)."""
    from sensekit.eval.neighbours import WordNetRelatives, clean_word, related_share
    from sensekit.eval.senses import unit
    from sensekit.lexicon.wordnet import open_wordnet

    rel = WordNetRelatives(open_wordnet(None))
    texts = {int(t): data.tok.decode([int(t)]) for t in table.token_ids}
    pool = [
        (w, t)
        for t in table.token_ids.tolist()
        if (w := clean_word(texts[t])) and texts[t] == " " + w and half_of(w) == half and rel.is_lemma(w)
    ]
    rng = np.random.default_rng(seed)
    pick = [pool[i] for i in np.sort(rng.choice(len(pool), min(n_words, len(pool)), replace=False))]
    V = unit(to(table.vectors))
    found = []
    for _w, t in pick:  # per sampled word (200): the index's query is per word too
        rows = np.arange(table.indptr[table.rows_of([t])[0]], table.indptr[table.rows_of([t])[0] + 1])
        sims = (V @ V[rows].T).max(1)
        sims[table.owner == t] = -np.inf
        order = np.argsort(-sims)
        seen, names = set(), []
        for r in order:
            o = int(table.owner[r])
            if o not in seen:
                seen.add(o)
                names.append(texts.get(o, data.tok.decode([o])))
            if len(names) >= k:
                break
        found.append(names)
    share, judged = related_share(rel, [w for w, _ in pick], found)
    return {"neighbours_related": round(float(share), 4), "neighbour_words": len(pick)}


def grid(folder: Path, half: str, layers: list[int], settings: list[dict], out: Path | None) -> list[dict]:
    from sensekit.builder.cluster import cluster_samples
    from sensekit.builder.lexical_cluster import cluster_adaptive

    rows = []
    for layer in layers:
        data = Data(folder, layer)
        vec = np.asarray(data.vectors)
        for s in settings:
            s = dict(s)
            t0 = time.process_time()
            if s.get("criterion") == "kmeans":  # today's clustering, for reference
                res = cluster_samples(data.keys, data.indptr, vec, s.get("k", 10), 3)
            else:
                res = cluster_adaptive(
                    data.keys,
                    data.indptr,
                    vec,
                    s.get("k_max", 10),
                    3,
                    min_sense_size=s.get("min_sense_size", 5),
                    criterion=s["criterion"],
                    threshold=s.get("threshold"),
                )
            cpu = time.process_time() - t0
            row = {"layer": layer, "half": half, **s, "cluster_cpu_s": round(cpu, 1), **score(data, res, half)}
            log(json.dumps(row))
            rows.append(row)
            if out:
                write_json(out, {"rows": rows})
    return rows


def words(folder: Path, layer: int, words_: list[str], threshold: float, min_size: int, cap: int = 50) -> dict:
    """The first `cap` WordNet glosses holding each word (as --focus reads them), clustered at one layer."""
    import torch

    from sensekit.builder.corpus import special_prefix
    from sensekit.builder.lexical_cluster import cluster_adaptive
    from sensekit.builder.wordnet_corpus import iter_wordnet
    from sensekit.model.teacher import load_teacher

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    t = load_teacher(device="cpu")
    tok = t.tokenizer
    _truncate(t.model, layer + 1)
    pre = special_prefix(tok)
    want = {w: tok(" " + w, add_special_tokens=False)["input_ids"][0] for w in words_}
    states: dict[str, list] = {w: [] for w in words_}
    texts: dict[str, list] = {w: [] for w in words_}
    for _, text in iter_wordnet(lemmas=True):  # per document, until every word has `cap` samples
        ids = (pre + tok(text, add_special_tokens=False)["input_ids"])[:SEQ_LEN]
        hit = [w for w in words_ if len(states[w]) < cap and want[w] in ids[len(pre) + MIN_CONTEXT :]]
        if not hit:
            if all(len(v) >= cap for v in states.values()):
                break
            continue
        with torch.inference_mode():
            h = t.model.base_model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[layer][0]
        for w in hit:
            p = ids.index(want[w], len(pre) + MIN_CONTEXT)
            states[w].append(h[p].numpy())
            texts[w].append(text.split("\n")[0][:80])
    bg = np.load(folder / f"states_L{layer}.npy").astype(np.float32)  # background statistics: the demo corpus
    mu, sd = bg.mean(0), bg.std(0)
    out = {}
    for w in words_:
        x = (np.stack(states[w]).astype(np.float32) - mu) / sd
        res = cluster_adaptive(
            np.array([0]),
            np.array([0, len(x)]),
            x,
            10,
            3,
            min_sense_size=min_size,
            threshold=threshold,
            standardise=False,
        )
        out[w] = [
            {"count": int(n), "contexts": [texts[w][i] for i in res.ctx_sample[res.ctx_sense == s]]}
            for s, n in enumerate(res.sense_count)
        ]
    return out


def wnpairs(folder: Path, layer: int, settings: list[dict]) -> list[dict]:
    """WiC nearest sense on the eval's held-out WordNet pairs (issue 19; share 0.2, seed 0), halves by the hash of
    the lemma, for clusterings of the cached reservoir. The cache read the corpus prefix with every example
    sentence (the build leaves the held-out ones out), so a few pair sentences may be among its samples."""
    import torch

    from sensekit.builder.cluster import cluster_samples
    from sensekit.builder.lexical_cluster import cluster_adaptive
    from sensekit.builder.wordnet_corpus import wordnet_synsets
    from sensekit.eval.layers import layer_states
    from sensekit.eval.senses import SenseTable
    from sensekit.eval.states import teacher_prefix_and_pad
    from sensekit.eval.wic import pair_cosines, threshold_baseline, wic_accuracy
    from sensekit.eval.wordnet_pairs import wordnet_pairs
    from sensekit.lexicon.wordnet import open_wordnet
    from sensekit.model.teacher import load_teacher
    from sensekit.space import fit_space

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    items = wordnet_pairs(wordnet_synsets(None), open_wordnet(None), 0.2, 0).items
    t = load_teacher(device="cpu")
    _truncate(t.model, layer + 1)
    pre, pad = teacher_prefix_and_pad(t.tokenizer)
    s1 = layer_states(t.model, t.tokenizer, items.sentences1, items.spans1[:, 0], items.spans1[:, 1], pre, pad)
    s2 = layer_states(t.model, t.tokenizer, items.sentences2, items.spans2[:, 0], items.spans2[:, 1], pre, pad)
    a1, a2, ok = s1[0][:, layer], s2[0][:, layer], s1[2] & s2[2]
    data = Data(folder, layer)
    vec = np.asarray(data.vectors)
    tokens = data.single(items.words)
    half = np.asarray([half_of(w) for w in items.words])
    rows = []
    for st in settings:
        if st.get("criterion") == "kmeans":
            res = cluster_samples(data.keys, data.indptr, vec, 10, 0)
        else:
            res = cluster_adaptive(
                data.keys,
                data.indptr,
                vec,
                10,
                0,
                min_sense_size=st["min_sense_size"],
                criterion=st["criterion"],
                threshold=st["threshold"],
            )
        table = SenseTable.from_arrays(res.sense_key, res.sense_index, res.centroids, res.sense_count)
        to = fit_space(res.centroids).apply
        cos = pair_cosines(to(a1), to(a2))
        row = {"layer": layer, **st}
        for h in ("dev", "test"):
            m = ok & (tokens >= 0) & (table.n_senses(tokens) >= 2) & (half == h)
            p1, p2 = table.nearest(a1[m], tokens[m], to), table.nearest(a2[m], tokens[m], to)
            y = items.labels[m]
            row[h] = {
                "accuracy": round(wic_accuracy(p1, p2, y), 4),
                "coverage": round(float(m.sum() / (half == h).sum()), 4),
                "pairs": int(m.sum()),
                "predicted_same": round(float(np.mean(p1 == p2)), 4),
                "true_same": round(float(y.mean()), 4),
                "threshold_baseline": round(threshold_baseline(cos[m], y)["accuracy"], 4),
            }
        log(json.dumps(row))
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=("split", "cache", "grid", "words", "wnpairs"))
    ap.add_argument("--words", default="bank,plant,spring,light")
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--min-sense-size", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/lex"))
    ap.add_argument("--layers", default="6,9,12,15,18,22")
    ap.add_argument("--max-tokens", type=int, default=80000)
    ap.add_argument("--half", default="dev", choices=("dev", "test"))
    ap.add_argument("--settings", default=None, help="JSON list of settings (criterion, threshold, min_sense_size)")
    a = ap.parse_args()
    layers = [int(x) for x in a.layers.split(",")]
    if a.step == "split":
        print(json.dumps(split(a.out or a.dir)))
    elif a.step == "cache":
        cache(a.out or a.dir, layers, a.max_tokens)
    elif a.step == "wnpairs":
        settings = (
            json.loads(a.settings) if a.settings else [{"criterion": "merge", "threshold": 0.8, "min_sense_size": 2}]
        )
        rows = wnpairs(a.dir, layers[0], settings)
        if a.out:
            write_json(a.out, {"rows": rows})
    elif a.step == "words":
        print(json.dumps(words(a.dir, layers[0], a.words.split(","), a.threshold, a.min_sense_size), indent=1))
    else:
        settings = json.loads(a.settings) if a.settings else [{"criterion": "merge"}]
        rows = grid(a.dir, a.half, layers, settings, a.out)
        print(json.dumps(rows[-1] if rows else {}))


if __name__ == "__main__":
    main()
