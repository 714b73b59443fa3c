"""Measuring a student: per-window held-out NLL (for the bootstrap over windows), KL and top-1 agreement with
the teacher, and the lexical probes (WiC from the student's states; syn/ant separation on the held-out pairs)
through `distill.student_eval`, the code of `sensekit distill eval`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..losses import ce_per_position, kl_per_position

__all__ = ["score_windows", "lexical_probes"]


@torch.no_grad()
def score_windows(model, teacher, windows, batch_size: int, tau: float = 2.0) -> dict[str, Any]:
    """model: a plain HF causal LM (None: the teacher itself). -> per-window nll [W], tokens [W], and the
    token-weighted kl and top-1 agreement with the teacher."""
    V = teacher.vocab_size
    nll, tokens, kl, agree = [], [], 0.0, 0
    for s in range(0, len(windows), batch_size):
        ids, attn, labels = windows.batch(np.arange(s, min(s + batch_size, len(windows))), teacher.device)
        mask = labels >= 0  # [B, T]
        t_logits = teacher.logits(teacher.final_hidden(ids, attn)).float()  # [B, T, V]
        if model is None:
            s_logits = t_logits
        else:
            s_logits = model(input_ids=ids, attention_mask=attn, use_cache=False).logits[..., :V].float()
        ce = ce_per_position(s_logits, labels) * mask  # [B, T]
        nll += ce.sum(1).tolist()
        tokens += mask.sum(1).tolist()
        kl += float(kl_per_position(s_logits, t_logits, tau)[mask].sum())
        agree += int((s_logits.argmax(-1) == t_logits.argmax(-1))[mask].sum())
    n = max(sum(tokens), 1)
    return {"nll": nll, "tokens": tokens, "kl": kl / n, "top1_agreement": agree / n}


def load_student(folder: str | Path, teacher):
    from ..student import load_hf_student

    return load_hf_student(str(folder), teacher, teacher.device).eval().requires_grad_(False)


def lexical_probes(model, teacher, store: str, pairs: str, exp, targets=None, windows=None) -> dict[str, Any]:
    """The lexical probes of the student `model` (a loaded HF causal LM) and of the teacher, side by side:
    WiC on the held-out WordNet pairs, syn/ant separation (gap, AUC) on the held-out relation pairs, SimLex-999
    from carrier-sentence states, and nearest-sense retrieval/agreement against `targets` (the largest store's
    SenseTargets) on the held-out `windows`. `model` None: the teacher alone (its column)."""
    from sensekit.eval.config import default_data
    from sensekit.eval.states import hidden_forward
    from sensekit.store import open_store

    from ..eval_config import StudentEvalConfig
    from ..student_eval import _states_fn, _synant, _wic, carrier_similarity, nearest_sense

    base = exp.base_config()
    cfg = StudentEvalConfig(
        student="-",
        store=str(store),
        data=("-",),
        seq_len=int(base.seq_len),
        batch_size=int(base.batch_size),
        pairs=pairs,
        pair_limit=exp.pair_limit,
        limit=exp.wic_limit,
        device=exp.device,
        seed=0,
    )
    models = {"teacher": (teacher.final_hidden, teacher.hidden_size)}
    if model is not None:
        dim = int(model.get_output_embeddings().weight.shape[1])
        models = {"student": (hidden_forward(model), dim), **models}
    states = _states_fn(teacher, cfg)
    with open_store(store) as st:
        wic, _ = _wic(models, states, st, cfg, str(st.meta.get("key_mode") or "next"))
        synant = _synant(models, states, st, cfg)
    simlex_path = default_data("simlex")
    simlex = (
        carrier_similarity(models, states, cfg.carrier, simlex_path, exp.simlex_limit or None)  # 0: every pair
        if simlex_path
        else {"status": "skipped", "reason": "no SimLex-999 file shipped with sensekit"}
    )
    out: dict[str, Any] = {
        "synant_source": synant.get("source"),
        "synant_pairs": synant.get("pairs"),
        "wic_status": wic.get("status"),
        "wic_pairs": wic.get("pairs"),
        "simlex_pairs": simlex.get("pairs"),
    }
    near = None
    if targets is not None and windows is not None:
        forwards = {name: None if name == "teacher" else hidden_forward(model) for name in models}
        near = nearest_sense(forwards, teacher, targets, windows, int(base.batch_size), exp.nearest_sense_positions)
        out["nearest_sense_positions"] = {k: near.get(k) for k in ("positions", "agreement_positions", "chance")}
    for side in models:
        out[side] = {
            "wic_accuracy": wic[side]["accuracy"] if wic.get("status") == "ok" else None,
            "synant_gap": synant[side]["gap"] if synant.get("status") == "ok" else None,
            "synant_auc": synant[side]["auc"] if synant.get("status") == "ok" else None,
            "simlex_spearman": simlex[side]["spearman"] if simlex.get("status") == "ok" else None,
            "nearest_sense_retrieval": near[side]["retrieval"] if near else None,
            "nearest_sense_agreement": near[side]["agreement"] if near else None,
        }
    return out
