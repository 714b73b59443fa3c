"""Students: the truncated teacher (the paper's), or any HF causal LM that shares the tokenizer.

`DistillStudent` wraps either one with one `forward(input_ids, attention_mask, prefix=None)`
returning (logits [B, T, V], h [B, T, d_teacher]): h is the student's last hidden state after
its final norm, mapped by a learned linear projection when the student's width differs from
the teacher's. With `prefix` (the frozen bottom layers' output, from the cache) only the
trainable top layers, the final norm and the LM head run.

The truncated student shares the teacher's embeddings, final norm, LM head and frozen bottom
layers (the same tensors, no copy); its trainable top layers are float32 copies. It is built
on the meta device, so no teacher-sized allocation happens.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sensekit.errors import InputError, TeacherMismatch

__all__ = ["DistillStudent", "build_truncated", "load_hf_student", "save_student", "layers_of"]

LAYER_ATTRS = ("layers", "h", "blocks")


def layers_of(model) -> tuple[nn.Module, str, nn.ModuleList]:
    """(base model, attribute name, ModuleList) of an HF causal LM's decoder layers."""
    base = model.base_model
    for attr in LAYER_ATTRS:
        layers = getattr(base, attr, None)
        if isinstance(layers, nn.ModuleList):
            return base, attr, layers
    raise InputError(f"cannot find the decoder layers of {type(model).__name__}; use an architecture with "
                     f"base_model.layers (Llama, Mistral, Qwen, Gemma, ...) or pass --student")


def _sliced_config(config, start: int, stop: int):
    cfg = copy.deepcopy(config)
    n = stop - start
    for name in ("num_hidden_layers", "n_layer", "num_layers"):
        if hasattr(cfg, name) and isinstance(getattr(cfg, name), int):
            setattr(cfg, name, n)
    if isinstance(getattr(cfg, "layer_types", None), list):
        cfg.layer_types = cfg.layer_types[start:stop]
    return cfg


def _no_meta(module: nn.Module, what: str) -> None:
    for name, t in list(module.named_parameters()) + list(module.named_buffers()):
        if t.is_meta:
            raise InputError(f"{what}: {name} was not taken from the teacher; this architecture is not supported "
                             "for truncation, pass --student ID|PATH instead")


def build_truncated(teacher_model, n_layers: int, n_train: int):
    """The teacher's first `n_layers` layers; only the top `n_train` train. Returns an HF causal LM."""
    from transformers import AutoModelForCausalLM

    base, attr, layers = layers_of(teacher_model)
    total = len(layers)
    if not 1 <= n_layers <= total:
        raise InputError(f"--student-layers {n_layers} must be in 1..{total} (the teacher has {total} layers)")
    if not 1 <= n_train <= n_layers:
        raise InputError(f"--train-top-layers {n_train} must be in 1..{n_layers}")
    cfg = _sliced_config(teacher_model.config, 0, n_layers)
    with torch.device("meta"):
        student = AutoModelForCausalLM.from_config(cfg)
    s_base = student.base_model
    for name, child in base.named_children():
        if name != attr:
            setattr(s_base, name, child)
    for name, child in teacher_model.named_children():
        if child is not base:
            setattr(student, name, child)
    frozen = [layers[i] for i in range(n_layers - n_train)]
    trainable = []
    for i in range(n_layers - n_train, n_layers):
        layer = copy.deepcopy(layers[i]).float()
        layer.requires_grad_(True)
        trainable.append(layer)
    setattr(s_base, attr, nn.ModuleList(frozen + trainable))
    _no_meta(student, "truncated student")
    student.config.use_cache = False
    return student


def load_hf_student(name_or_path: str, teacher, device: torch.device):
    """Any HF causal LM sharing the teacher's tokenizer (same vocabulary), all parameters trainable, float32."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load the tokenizer of student {name_or_path!r}: {str(exc).splitlines()[0]}; "
                         "give a local folder or a cached Hugging Face id") from None
    if tok.get_vocab() != teacher.tokenizer.get_vocab():
        raise TeacherMismatch(f"student {name_or_path!r} has another tokenizer ({len(tok)} tokens) than teacher "
                              f"{teacher.name!r} ({len(teacher.tokenizer)} tokens); "
                              "use a student with the teacher's tokenizer")
    try:
        model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load student {name_or_path!r}: {str(exc).splitlines()[0]}") from None
    if model.get_output_embeddings().weight.shape[0] < teacher.vocab_size:
        raise TeacherMismatch(f"student {name_or_path!r} has {model.get_output_embeddings().weight.shape[0]} output "
                              f"logits, the teacher {teacher.vocab_size}; use a student with the teacher's vocabulary")
    model.config.use_cache = False
    return model.to(device)


class DistillStudent(nn.Module):
    """The student plus, when widths differ, a learned projection d_S -> d_T for the sense loss."""

    def __init__(self, lm, teacher_hidden: int, vocab_size: int, n_trainable_top: int | None = None) -> None:
        super().__init__()
        self.lm = lm
        self.vocab_size = vocab_size
        d_s = int(lm.get_output_embeddings().weight.shape[1])
        self.proj = nn.Linear(d_s, teacher_hidden) if d_s != teacher_hidden else None
        self.truncated = n_trainable_top is not None
        self._views: dict[str, nn.Module] = {}
        if self.truncated:
            base, attr, layers = layers_of(lm)
            n = len(layers)
            object.__setattr__(self, "_views", {
                "bottom": self._view(lm, layers, 0, n - n_trainable_top, keep_norm=False),
                "top": self._view(lm, layers, n - n_trainable_top, n, keep_norm=True),
            })

    @staticmethod
    def _view(lm, layers: nn.ModuleList, start: int, stop: int, keep_norm: bool) -> nn.Module:
        """A base model of the same class that runs only layers[start:stop] (sharing the modules)."""
        base, attr, _ = layers_of(lm)
        cfg = _sliced_config(base.config, start, stop)
        with torch.device("meta"):
            view = type(base)(cfg)
        for name, child in base.named_children():
            setattr(view, name, child)
        setattr(view, attr, nn.ModuleList([layers[i] for i in range(start, stop)]))
        if not keep_norm:
            for name in ("norm", "ln_f", "final_layer_norm"):
                if isinstance(getattr(view, name, None), nn.Module):
                    setattr(view, name, nn.Identity())
        _no_meta(view, "student view")
        return view

    def trainable_named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad]

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """Post-norm states [..., d_S] -> logits [..., V] (the student's own LM head)."""
        return self.lm.get_output_embeddings()(h)[..., : self.vocab_size]

    @torch.no_grad()
    def prefix(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """The frozen bottom layers' output [B, T, d] (no final norm), for the cache."""
        bottom = self._views["bottom"]
        return bottom(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state

    def forward(self, input_ids: torch.Tensor | None, attention_mask: torch.Tensor | None,
                prefix: torch.Tensor | None = None, positions: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (logits [B, T, V], h [P, d_T] at `positions` (b [P], t [P]), or [B, T, d_T] when positions is None)."""
        if prefix is not None:
            top = self._views["top"]
            hidden = top(inputs_embeds=prefix, attention_mask=attention_mask, use_cache=False).last_hidden_state
        else:
            base = self.lm.base_model
            hidden = base(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
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
