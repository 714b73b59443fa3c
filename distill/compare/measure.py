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


def lexical_probes(student_dir: str, teacher, store: str, test_file: str, pairs: str, exp) -> dict[str, Any]:
    """WiC accuracy and held-out syn/ant separation (gap, AUC) of the student's and the teacher's states."""
    from ..eval_config import StudentEvalConfig
    from ..student_eval import evaluate_student

    cfg = StudentEvalConfig(
        student=str(student_dir),
        store=str(store),
        data=(test_file,),
        seq_len=int(exp.base_config().seq_len),
        max_windows=1,  # held-out text is scored by score_windows
        batch_size=int(exp.base_config().batch_size),
        pairs=pairs,
        pair_limit=exp.pair_limit,
        limit=exp.wic_limit,
        device=exp.device,
        seed=0,
    )
    r = evaluate_student(cfg, teacher=teacher)
    out: dict[str, Any] = {"synant_source": r["synant"].get("source"), "synant_pairs": r["synant"].get("pairs")}
    for side in ("student", "teacher"):
        wic, syn = r["wic"], r["synant"]
        out[side] = {
            "wic_accuracy": wic[side]["accuracy"] if wic.get("status") == "ok" else None,
            "synant_gap": syn[side]["gap"] if syn.get("status") == "ok" else None,
            "synant_auc": syn[side]["auc"] if syn.get("status") == "ok" else None,
        }
    out["wic_status"] = r["wic"].get("status")
    return out
