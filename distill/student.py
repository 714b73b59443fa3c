"""Students: teacher layers (the paper's truncated teacher, or any selection), or any HF causal LM.

`build_truncated` keeps a selection of the teacher's layers: its first N (the paper: the first
half), or any sorted list such as 0-6 and 22-29 (a small model's last layers do work that two
re-trained layers cannot redo). It trains its top N layers, or any listed ones. The selection is
recorded in the student's `config.sensekit`, so the saved config.json says which teacher layers
it holds and which trained; the folder still loads with plain `AutoModelForCausalLM`.

`DistillStudent` wraps a student with one `forward(input_ids, attention_mask, prefix=None)`
returning (logits [B, T, V], h [B, T, d_teacher]): h is the student's last hidden state after
its final norm, mapped by a learned linear projection when the student's width differs from
the teacher's. With `prefix` (the input of the lowest trainable layer, from the cache) only the
layers from there up, the final norm and the LM head run; the split is exact for every family
(see sensekit.model.families).

The truncated student shares the teacher's embeddings, final norm, LM head and frozen layers
(the same tensors, no copy); its trainable layers are float32 copies. It is built on the meta
device, so no teacher-sized allocation happens.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sensekit.errors import InputError, TeacherMismatch
from sensekit.model.families import lm_logits, resume_at_layer, run_to_layer
from sensekit.model.layers import layer_slice, layers_of

__all__ = ["DistillStudent", "load_hf_student", "save_student"]


def load_hf_student(name_or_path: str, teacher, device: torch.device):
    """Any HF causal LM sharing the teacher's tokenizer (same vocabulary), all parameters trainable, float32."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError) as exc:
        raise InputError(
            f"cannot load the tokenizer of student {name_or_path!r}: {str(exc).splitlines()[0]}; "
            "give a local folder or a cached Hugging Face id"
        ) from None
    if tok.get_vocab() != teacher.tokenizer.get_vocab():
        raise TeacherMismatch(
            f"student {name_or_path!r} has another tokenizer ({len(tok)} tokens) than teacher "
            f"{teacher.name!r} ({len(teacher.tokenizer)} tokens); "
            "use a student with the teacher's tokenizer"
        )
    try:
        model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load student {name_or_path!r}: {str(exc).splitlines()[0]}") from None
    if model.get_output_embeddings().weight.shape[0] < teacher.vocab_size:
        raise TeacherMismatch(
            f"student {name_or_path!r} has {model.get_output_embeddings().weight.shape[0]} output "
            f"logits, the teacher {teacher.vocab_size}; use a student with the teacher's vocabulary"
        )
    model.config.use_cache = False
    return model.to(device)


class DistillStudent(nn.Module):
    """The student plus, when widths differ, a learned projection d_S -> d_T for the sense loss.

    A truncated student splits at `split_at`, its lowest trainable layer: the frozen layers below it
    form the cached prefix; the layers from it up (trainable, and frozen ones above a trainable one)
    run every step. `n_trainable_top=N` is the same as split_at = layers - N.
    """

    def __init__(
        self, lm, teacher_hidden: int, vocab_size: int, n_trainable_top: int | None = None, split_at: int | None = None
    ) -> None:
        super().__init__()
        self.lm = lm
        self.vocab_size = vocab_size
        d_s = int(lm.get_output_embeddings().weight.shape[1])
        self.proj = nn.Linear(d_s, teacher_hidden) if d_s != teacher_hidden else None
        self.truncated = n_trainable_top is not None or split_at is not None
        self.split_at = 0
        self._slices: dict[str, nn.Module] = {}  # "bottom" / "top": runnable slices of the student's layers
        if self.truncated:
            _, _, layers = layers_of(lm)
            n = len(layers)
            self.split_at = split_at if split_at is not None else n - int(n_trainable_top)
            if not 0 <= self.split_at < n:
                raise InputError(f"the student's split point {self.split_at} must be in 0..{n - 1}")
            if self.split_at > 0:  # plain attributes, not submodules: the slices share the lm's modules
                object.__setattr__(
                    self,
                    "_slices",
                    {
                        "bottom": layer_slice(lm, 0, self.split_at),
                        "top": layer_slice(lm, self.split_at, n),
                    },
                )

    @property
    def can_split(self) -> bool:
        """Whether frozen layers lie below the lowest trainable one (what the frozen-prefix cache stores)."""
        return bool(self._slices)

    def trainable_named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad]

    def trainable_dtype(self, default: torch.dtype) -> torch.dtype:
        """The dtype of the trainable parameters (what a cached prefix is cast to), `default` when none train."""
        params = [p for _, p in self.trainable_named_parameters()]
        return params[0].dtype if params else default

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """Post-norm states [..., d_S] -> logits [..., V] (the student's own LM head and logits step)."""
        return lm_logits(self.lm, h)[..., : self.vocab_size]

    @torch.no_grad()
    def prefix(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """The frozen layers below the split: their output [B, T, d] (the input of the lowest trainable layer)."""
        if not self.can_split:
            raise InputError(
                "the frozen-prefix cache needs frozen layers below the lowest trained one; "
                "drop --cache or train higher layers"
            )
        bottom = self._slices["bottom"]
        _, _, layers = layers_of(bottom)
        return run_to_layer(bottom, layers[-1], input_ids, attention_mask)

    def final_hidden(
        self, input_ids: torch.Tensor | None, attention_mask: torch.Tensor | None, prefix: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The student's last hidden state after its final norm [B, T, d_S]: from the layers above the split when
        `prefix` (the cached input of the lowest trainable layer) is given, else the plain forward."""
        if prefix is not None:
            top = self._slices["top"]
            _, _, layers = layers_of(top)
            return resume_at_layer(top, layers[0], prefix, attention_mask)
        base = self.lm.base_model
        return base(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state

    def forward(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        prefix: torch.Tensor | None = None,
        positions: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (logits [B, T, V], h [P, d_T] at `positions` (b [P], t [P]), or [B, T, d_T] when positions is None)."""
        hidden = self.final_hidden(input_ids, attention_mask, prefix)  # [B, T, d_S]
        logits = self.head(hidden)
        h = hidden if positions is None else hidden[positions[0], positions[1]]
        if self.proj is not None:
            h = self.proj(h.to(self.proj.weight.dtype))
        return logits, h


def save_student(model: DistillStudent, tokenizer, folder: str | Path, info: dict[str, Any] | None = None) -> Path:
    """save_pretrained + tokenizer: loads with plain AutoModelForCausalLM.from_pretrained, no sensekit needed.

    The projection (only used by the sense loss) is saved beside it as `sense_projection.pt`.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lm = model.lm
    dtypes = {p.dtype for p in lm.parameters()}
    if len(dtypes) > 1:
        # a truncated student of a bf16/fp16 teacher: frozen shared parts in half precision, trained
        # top layers in float32. Save one dtype, float32, so nothing trained is rounded away.
        state = {k: v.float() if v.is_floating_point() else v for k, v in lm.state_dict().items()}
        lm.save_pretrained(str(folder), state_dict=state, safe_serialization=True)
        cfg_path = folder / "config.json"  # save_pretrained records the first parameter's dtype
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        for key in ("dtype", "torch_dtype"):
            if key in cfg:
                cfg[key] = "float32"
        cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    else:
        lm.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
    if model.proj is not None:
        torch.save(model.proj.state_dict(), folder / "sense_projection.pt")
    if info:
        (folder / "distill_info.json").write_text(json.dumps(info, indent=2, default=str), encoding="utf-8")
    return folder
