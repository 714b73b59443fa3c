"""`sensekit eval student`: a student beside its teacher, every number for both.

- Held-out text: perplexity and next-token accuracy of each, KL(teacher || student) at the
  training temperature, and top-1 agreement with the teacher. One pass computes them all
  (`distill.evaluate.evaluate` gives perplexity and KL but not accuracy or agreement, and a
  second pass would double the cost), with the same loss functions (`distill.losses`).
- Word in context from each model's own last-layer states: the cosine of the two states,
  with the threshold fitted on one half of the pairs and scored on the other; on the WiC-style
  pairs from WordNet's held-out example sentences (the ones `eval store` scores:
  sensekit/eval/wordnet_pairs.py), and on a WiC file beside them when there is one.
- Synonym/antonym separation: each word of a pair in a neutral carrier sentence ("The word
  is {w}."), the state at the word's last token (the first that has read the whole word; the
  state predicting it cannot see it), cosine per pair; mean syn minus mean ant, and ROC AUC.
  Pairs come from `--pairs FILE` (held out by the caller), or else a seeded sample of the
  store's own relations, which a DSKD student was trained to separate: not held out.

The student is any Hugging Face causal LM folder with the teacher's tokenizer; no sensekit
metadata is needed.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from sensekit.errors import InputError
from sensekit.progress import Progress, no_progress

from .data import Windows, iter_documents, pack_documents
from .eval_config import StudentEvalConfig
from .losses import ce_per_position, kl_per_position

__all__ = [
    "evaluate_student",
    "heldout_metrics",
    "read_relation_pairs",
    "store_relation_pairs",
    "separation",
    "carrier_similarity",
    "nearest_sense",
]


@torch.no_grad()
def heldout_metrics(student, teacher, windows: Windows, batch_size: int, tau: float = 2.0) -> dict:
    """-> {"student": {ppl, ce, accuracy}, "teacher": {...}, "kl", "top1_agreement", "tokens"}, token-weighted.

    `student` is a plain HF causal LM on the teacher's device; logits beyond the teacher's vocabulary are dropped.
    """
    V = teacher.vocab_size
    head = teacher.model.get_output_embeddings()
    sums = {"ce_s": 0.0, "ce_t": 0.0, "kl": 0.0, "acc_s": 0, "acc_t": 0, "agree": 0}
    n_tok = 0
    for s in range(0, len(windows), batch_size):
        ids, attn, labels = windows.batch(np.arange(s, min(s + batch_size, len(windows))), teacher.device)
        mask = labels >= 0  # [B, T]
        t_logits = head(teacher.final_hidden(ids, attn)).float()  # [B, T, V]
        s_logits = student(input_ids=ids, attention_mask=attn, use_cache=False).logits[..., :V].float()
        s_top, t_top = s_logits.argmax(-1), t_logits.argmax(-1)  # [B, T]
        sums["ce_s"] += float(ce_per_position(s_logits, labels)[mask].sum())
        sums["ce_t"] += float(ce_per_position(t_logits, labels)[mask].sum())
        sums["kl"] += float(kl_per_position(s_logits, t_logits, tau)[mask].sum())
        sums["acc_s"] += int((s_top == labels)[mask].sum())
        sums["acc_t"] += int((t_top == labels)[mask].sum())
        sums["agree"] += int((s_top == t_top)[mask].sum())
        n_tok += int(mask.sum())
    n = max(n_tok, 1)

    def side(ce: float, acc: int) -> dict:
        return {"ppl": math.exp(min(ce / n, 50.0)), "ce": ce / n, "accuracy": acc / n}

    return {
        "student": side(sums["ce_s"], sums["acc_s"]),
        "teacher": side(sums["ce_t"], sums["acc_t"]),
        "kl": sums["kl"] / n,
        "tau": tau,
        "top1_agreement": sums["agree"] / n,
        "tokens": n_tok,
    }


def read_relation_pairs(path: str | Path) -> list[tuple[str, str, str]]:
    """Lines 'word1<TAB>word2<TAB>syn|ant' (tabs, or spaces for one-word entries); '#' comments."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"pair file {path} does not exist; pass --pairs with lines 'word1<TAB>word2<TAB>syn|ant'")
    pairs = []
    with path.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            parts = [p.strip() for p in (text.split("\t") if "\t" in text else text.split())]
            if len(parts) != 3 or parts[2].lower() not in ("syn", "ant") or not parts[0] or not parts[1]:
                raise InputError(f"{path}:{i}: expected 'word1<TAB>word2<TAB>syn|ant', got {text[:80]!r}")
            pairs.append((parts[0], parts[1], parts[2].lower()))
    return pairs


def store_relation_pairs(store, limit: int, seed: int) -> list[tuple[str, str, str]]:
    """A seeded sample of up to `limit` syn and `limit` ant pairs of the store (unordered, one kind only)."""
    kinds: dict[tuple[str, str], set[str]] = {}
    for head, related, kind, _source, _derived in store.relations_table():
        a, b = sorted((head.strip(), related.strip()))
        if a != b:
            kinds.setdefault((a, b), set()).add(kind)
    rng = np.random.default_rng(seed)
    out = []
    for kind in ("syn", "ant"):
        pool = sorted(p for p, k in kinds.items() if k == {kind})
        for i in np.sort(rng.permutation(len(pool))[:limit]):
            out.append((*pool[i], kind))
    return out


def separation(cos: np.ndarray, is_syn: np.ndarray) -> dict:
    """Mean cosine of synonym pairs minus that of antonym pairs, and the ROC AUC of cosine for 'synonym'."""
    from sklearn.metrics import roc_auc_score

    cos, is_syn = np.asarray(cos, np.float64), np.asarray(is_syn, bool)
    if is_syn.all() or not is_syn.any():
        return {"gap": None, "auc": None, "syn_mean": None, "ant_mean": None}
    syn, ant = float(cos[is_syn].mean()), float(cos[~is_syn].mean())
    return {"gap": syn - ant, "auc": float(roc_auc_score(is_syn, cos)), "syn_mean": syn, "ant_mean": ant}


def _states_fn(teacher, cfg: StudentEvalConfig):
    """states(forward, sentences, starts, ends, where) -> ([N, d], ok [N]) with the teacher's framing."""
    from sensekit.eval.states import teacher_prefix_and_pad, word_states

    prefix, pad = teacher_prefix_and_pad(teacher.tokenizer)

    def states(forward, dim: int, sentences, starts, ends, where: str):
        return word_states(
            forward, teacher.tokenizer, sentences, starts, ends, where, prefix, dim, device=teacher.device, pad_id=pad
        )

    return states


def _wic_pairs(models: dict, states, items, seed: int, where: str) -> dict:
    """Cosine-threshold WiC for each model on `items` (WicItems): {"student": {...}, "teacher": {...}, "pairs"}."""
    from sensekit.eval.wic import pair_cosines, threshold_baseline

    out: dict = {"status": "ok", "state": where, "total": len(items)}
    ok_all = np.ones(len(items), bool)
    got = {}
    for name, (forward, dim) in models.items():
        s1, ok1 = states(forward, dim, items.sentences1, items.spans1[:, 0], items.spans1[:, 1], where)
        s2, ok2 = states(forward, dim, items.sentences2, items.spans2[:, 0], items.spans2[:, 1], where)
        got[name] = pair_cosines(s1, s2)
        ok_all &= ok1 & ok2
    y = items.labels[ok_all]
    for name, cos in got.items():
        r = threshold_baseline(cos[ok_all], y, seed)
        out[name] = {"accuracy": r["accuracy"], "threshold": r["threshold"]}
    out["pairs"] = int(ok_all.sum())
    out["majority_class"] = float(max(y.mean(), 1 - y.mean())) if len(y) else None
    return out


def _wic(models: dict, states, store, cfg: StudentEvalConfig, where: str) -> tuple[dict, dict]:
    """(WordNet held-out pairs, WiC file): the pairs `eval store` scores, and the file beside them."""
    from sensekit.builder.wordnet_corpus import HELDOUT_SHARE, wordnet_synsets
    from sensekit.errors import SensekitError
    from sensekit.eval.wic import read_wic
    from sensekit.eval.wordnet_pairs import wordnet_pairs
    from sensekit.lexicon.wordnet import open_wordnet

    share = cfg.heldout_share or (store.meta.get("corpus_heldout") or {}).get("share") or HELDOUT_SHARE
    try:
        wn = open_wordnet(cfg.wordnet)
        pairs = wordnet_pairs(wordnet_synsets(cfg.wordnet), wn, share, cfg.seed, cfg.limit)
        wordnet = {**_wic_pairs(models, states, pairs.items, cfg.seed, where), "data": "wordnet-heldout"}
        wordnet["pair_set"] = pairs.info
    except SensekitError as exc:
        wordnet = {"status": "skipped", "reason": f"WordNet is not available: {exc}"}
    path = cfg.data_file("wic")
    if path is None:
        wic_file = {"status": "skipped", "reason": "no WiC file: pass --wic FILE (WiC JSONL)"}
    else:
        wic_file = {**_wic_pairs(models, states, read_wic(path, cfg.limit), cfg.seed, where), "file": path}
    return wordnet, wic_file


def _synant(models: dict, states, store, cfg: StudentEvalConfig) -> dict:
    """Synonym/antonym separation of carrier-sentence states for each model."""
    if cfg.pairs:
        pairs, source = read_relation_pairs(cfg.pairs), f"pairs file {cfg.pairs} (held out by the caller)"
        by_kind = {k: [p for p in pairs if p[2] == k] for k in ("syn", "ant")}
        pairs = [p for k in ("syn", "ant") for p in by_kind[k][: cfg.pair_limit]]
    else:
        pairs = store_relation_pairs(store, cfg.pair_limit, cfg.seed)
        source = "a seeded sample of the store's own relations: NOT held out from the store (pass --pairs FILE)"
    if not pairs:
        return {"status": "skipped", "reason": "no syn/ant pairs: the store has no relations; pass --pairs FILE"}
    words = sorted({w for a, b, _ in pairs for w in (a, b)})
    at = {w: i for i, w in enumerate(words)}
    head, _, tail = cfg.carrier.partition("{w}")
    sentences = [head + w + tail.replace("{w}", w) for w in words]
    starts = np.full(len(words), len(head), np.int64)
    ends = starts + np.asarray([len(w) for w in words], np.int64)
    a_idx = np.asarray([at[a] for a, _, _ in pairs])
    b_idx = np.asarray([at[b] for _, b, _ in pairs])
    is_syn = np.asarray([k == "syn" for _, _, k in pairs])
    from sensekit.eval.wic import pair_cosines

    out: dict = {
        "status": "ok",
        "source": source,
        "carrier": cfg.carrier,
        "pairs": {"syn": int(is_syn.sum()), "ant": int((~is_syn).sum())},
    }
    for name, (forward, dim) in models.items():
        st, ok = states(forward, dim, sentences, starts, ends, "last")
        keep = ok[a_idx] & ok[b_idx]
        out[name] = separation(pair_cosines(st[a_idx[keep]], st[b_idx[keep]]), is_syn[keep])
        out[name]["pairs_scored"] = int(keep.sum())
    return out


def carrier_similarity(models: dict, states, carrier: str, path: str, limit: int | None = None) -> dict:
    """Word similarity (SimLex-999 style) from each model's carrier-sentence state: the cosine of the two words'
    states ("The word is {w}.", the state at the word's last token) against the human ratings, Spearman.

    models: name -> (forward, dim); states: `_states_fn`'s function. -> {"status", "pairs", name: {"spearman",
    "pairs_scored"}}: a pair counts when both words gave a state."""
    from sensekit.eval.similarity import read_pairs, spearman
    from sensekit.eval.wic import pair_cosines

    w1, w2, gold = read_pairs(path, limit)
    words = sorted(set(w1) | set(w2))
    at = {w: i for i, w in enumerate(words)}
    head, _, tail = carrier.partition("{w}")
    sentences = [head + w + tail.replace("{w}", w) for w in words]
    starts = np.full(len(words), len(head), np.int64)
    ends = starts + np.asarray([len(w) for w in words], np.int64)
    a_idx, b_idx = np.asarray([at[w] for w in w1]), np.asarray([at[w] for w in w2])
    out: dict = {"status": "ok", "file": str(path), "pairs": len(gold), "carrier": carrier}
    for name, (forward, dim) in models.items():
        st, ok = states(forward, dim, sentences, starts, ends, "last")
        keep = ok[a_idx] & ok[b_idx]
        cos = pair_cosines(st[a_idx[keep]], st[b_idx[keep]])
        out[name] = {"spearman": spearman(cos, gold[keep]), "pairs_scored": int(keep.sum())}
    return out


@torch.no_grad()
def nearest_sense(
    forwards: dict, teacher, targets, windows: Windows, batch_size: int, max_positions: int = 4096
) -> dict:
    """How well each model's final state finds the teacher's dictionary senses of the token it predicts, on
    held-out windows (what the sense loss trains; the teacher's own state is the reference).

    For every target position whose next token y_t has senses (the first `max_positions` in window order):
    - `retrieval`: the sense nearest the state (MSE_d, over the WHOLE dictionary) is one of y_t's senses;
    - `agreement` (positions whose y_t has 2+ senses): the state's nearest sense among y_t's own senses is the
      one nearest the teacher's state g_t (1 for the teacher by definition; `chance` is the mean 1/k).
    forwards: name -> (input_ids, attention_mask) -> final states [B, T, d] (after the final norm).
    targets: a distill.targets.SenseTargets on the teacher's device. -> {"positions", "agreement_positions",
    "chance", name: {"retrieval", "agreement"}}.
    """
    emb, emb_sq = targets.emb.float(), targets.emb_sq.float()  # [R, d], [R]
    unit_of_row = torch.full((emb.shape[0],), -1, dtype=torch.long, device=emb.device)
    rows = targets.unit_rows  # [U, K], -1 padded
    u_idx = torch.arange(rows.shape[0], device=emb.device).unsqueeze(1).expand_as(rows)
    unit_of_row[rows[rows >= 0]] = u_idx[rows >= 0]
    d = emb.shape[1]

    def dist(h: torch.Tensor) -> torch.Tensor:  # [P, d] -> MSE_d to every sense row [P, R]
        return (h.pow(2).sum(-1, keepdim=True) - 2.0 * h @ emb.T + emb_sq) / d

    hits = {name: 0 for name in forwards}
    agree = {name: 0 for name in forwards}
    n_pos = n_agree = 0
    inv_k = 0.0
    for s in range(0, len(windows), batch_size):
        if n_pos >= max_positions:
            break
        ids, attn, labels = windows.batch(np.arange(s, min(s + batch_size, len(windows))), teacher.device)
        unit = torch.where(labels >= 0, targets.token_unit[labels.clamp(min=0)], -1)  # [B, T]
        sel = unit >= 0
        if not sel.any():
            continue
        b, t = sel.nonzero(as_tuple=True)  # [P]
        b, t = b[: max_positions - n_pos], t[: max_positions - n_pos]
        u = unit[b, t]  # [P]
        own = rows[u]  # [P, K] y_t's sense rows
        own_ok = own >= 0
        k = own_ok.sum(1)  # [P]
        multi = k >= 2
        g = teacher.final_hidden(ids, attn).float()[b, t]  # [P, d]
        d_g = dist(g)
        g_best = torch.where(own_ok, d_g.gather(1, own.clamp(min=0)), torch.inf).argmin(1)  # [P]
        for name, forward in forwards.items():
            h = g if forward is None else forward(ids, attn).float()[b, t]
            dh = d_g if forward is None else dist(h)  # [P, R]
            hits[name] += int((unit_of_row[dh.argmin(1)] == u).sum())
            h_best = torch.where(own_ok, dh.gather(1, own.clamp(min=0)), torch.inf).argmin(1)
            agree[name] += int(((h_best == g_best) & multi).sum())
        n_pos += int(len(u))
        n_agree += int(multi.sum())
        inv_k += float((1.0 / k[multi].float()).sum())
    out: dict = {
        "positions": n_pos,
        "agreement_positions": n_agree,
        "chance": inv_k / n_agree if n_agree else None,
        "sense_rows": int(emb.shape[0]),
    }
    for name in forwards:
        out[name] = {
            "retrieval": hits[name] / n_pos if n_pos else None,
            "agreement": agree[name] / n_agree if n_agree else None,
        }
    return out


def _rows(held: dict, wic: dict, wic_file: dict, synant: dict) -> list[tuple[str, object, object, str]]:
    """(metric, student, teacher, note) rows for the table."""
    s, t = held["student"], held["teacher"]
    rows = [
        ("held-out perplexity", s["ppl"], t["ppl"], f"{held['tokens']:,} tokens"),
        ("next-token accuracy", s["accuracy"], t["accuracy"], ""),
        (f"KL(teacher || student), tau={held['tau']:g}", held["kl"], 0.0, "per token"),
        ("top-1 agreement with the teacher", held["top1_agreement"], 1.0, ""),
    ]
    for entry, data in ((wic, "WordNet held-out pairs"), (wic_file, "WiC file")):
        if entry["status"] == "ok":
            rows.append(
                (
                    f"WiC accuracy, {data} (cosine threshold, state={entry['state']})",
                    entry["student"]["accuracy"],
                    entry["teacher"]["accuracy"],
                    f"{entry['pairs']}/{entry['total']} pairs; majority {entry['majority_class']:.3f}"
                    if entry["majority_class"] is not None
                    else "",
                )
            )
        else:
            rows.append((f"WiC accuracy, {data}", None, None, f"skipped: {entry['reason']}"))
    if synant["status"] == "ok":
        p = synant["pairs"]
        rows.append(
            (
                "syn/ant: mean cos syn - mean cos ant",
                synant["student"]["gap"],
                synant["teacher"]["gap"],
                f"{p['syn']} syn, {p['ant']} ant pairs",
            )
        )
        rows.append(
            ("syn/ant: ROC AUC (cos -> synonym)", synant["student"]["auc"], synant["teacher"]["auc"], "chance 0.5")
        )
    else:
        rows.append(("syn/ant separation", None, None, f"skipped: {synant['reason']}"))
    return rows


def evaluate_student(cfg: StudentEvalConfig, progress: Progress = no_progress, *, teacher=None) -> dict:
    """Every metric for the student and the teacher, as plain data. `progress(stage, done, total)` before each
    of the four stages (sensekit.progress). `teacher`: an already loaded Teacher."""
    from sensekit.eval.states import hidden_forward
    from sensekit.model.store_check import load_store_teacher
    from sensekit.store import open_store

    from .student import load_hf_student

    t0 = time.perf_counter()
    with open_store(cfg.store) as store:
        progress("loading models", 0, 4)
        teacher = teacher or load_store_teacher(store, cfg.teacher, cfg.device, cfg.dtype)
        student = load_hf_student(cfg.student, teacher, teacher.device).eval().requires_grad_(False)
        progress("held-out text", 1, 4)
        windows = pack_documents(
            iter_documents(cfg.data, cfg.text_field), teacher.tokenizer, cfg.seq_len, cfg.max_windows
        )
        held = heldout_metrics(student, teacher, windows, cfg.batch_size, cfg.tau)
        d_student = int(student.get_output_embeddings().weight.shape[1])
        models = {
            "student": (hidden_forward(student), d_student),
            "teacher": (teacher.final_hidden, teacher.hidden_size),
        }
        states = _states_fn(teacher, cfg)
        progress("word in context", 2, 4)
        wic, wic_file = _wic(models, states, store, cfg, cfg.position or str(store.meta.get("key_mode") or "next"))
        progress("synonym/antonym separation", 3, 4)
        synant = _synant(models, states, store, cfg)
        progress("done", 4, 4)
    notes = [
        f"syn/ant pairs: {synant['source']}" if synant["status"] == "ok" else "",
        "the teacher column is the reference: the student's target on every row",
    ]
    return {
        "student": cfg.student,
        "teacher": teacher.name,
        "store": str(cfg.store),
        "config": cfg.to_dict(),
        "heldout": held,
        "wic": wic,
        "wic_file": wic_file,
        "synant": synant,
        "rows": _rows(held, wic, wic_file, synant),
        "notes": [n for n in notes if n],
        "seconds": round(time.perf_counter() - t0, 2),
    }
