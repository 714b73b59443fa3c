"""Layer selection and slicing for any Hugging Face decoder: which teacher layers a model keeps.

- `layers_of(model)` finds the decoder's `ModuleList` (`layers`, `h` or `blocks`).
- `parse_layer_list("0-6,22-29")` (from sensekit.options) reads a selection as the CLI and config files write it.
- `resolve_selection` checks a selection (kept teacher layers, trained student layers) against a teacher.
- `build_truncated` makes a causal LM out of a selection of the teacher's layers, sharing the teacher's
  embeddings, final norm, LM head and frozen layers (no copy); trained layers are float32 copies.
- `sliced_config` is the config of a selection: the layer count and every per-layer list.
- `layer_slice` is a base model that runs only a range of a model's layers (sharing its modules): with
  `families.run_to_layer` / `resume_at_layer` it splits one forward into two.
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn

from ..errors import InputError
from ..options import parse_layer_list  # re-exported: the text form of a layer selection

__all__ = [
    "LAYER_ATTRS",
    "layers_of",
    "layer_count",
    "parse_layer_list",
    "resolve_selection",
    "sliced_config",
    "build_truncated",
    "layer_slice",
    "no_meta",
]

LAYER_ATTRS = ("layers", "h", "blocks")


def layers_of(model) -> tuple[nn.Module, str, nn.ModuleList]:
    """(base model, attribute name, ModuleList) of an HF causal LM's decoder layers."""
    base = model.base_model
    for attr in LAYER_ATTRS:
        layers = getattr(base, attr, None)
        if isinstance(layers, nn.ModuleList):
            return base, attr, layers
    raise InputError(
        f"cannot find the decoder layers of {type(model).__name__}; use an architecture with "
        f"base_model.layers (Llama, Mistral, Qwen, Gemma, ...) or pass --student"
    )


def layer_count(config) -> int:
    """The number of decoder layers a config declares (0 when it names none of the usual fields)."""
    for name in ("num_hidden_layers", "n_layer", "num_layers"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    return 0


def sliced_config(config, indices: Sequence[int]):
    """A copy of `config` for the layers `indices` (in order): the layer count, and every per-layer list."""
    cfg = copy.deepcopy(config)
    total = layer_count(config)
    for name in ("num_hidden_layers", "n_layer", "num_layers"):
        if hasattr(cfg, name) and isinstance(getattr(cfg, name), int):
            setattr(cfg, name, len(indices))
    for name, value in list(vars(cfg).items()):
        # layer_types (sliding/full attention), no_rope_layers, ...: one entry per layer
        if isinstance(value, list) and total and len(value) == total and name != "sensekit":
            setattr(cfg, name, [value[i] for i in indices])
    return cfg


def no_meta(module: nn.Module, what: str) -> None:
    """Refuse a module built on the meta device that still holds a parameter or buffer nobody filled in."""
    for name, t in list(module.named_parameters()) + list(module.named_buffers()):
        if t.is_meta:
            raise InputError(
                f"{what}: {name} was not taken from the teacher; this architecture is not supported "
                "for truncation, pass --student ID|PATH instead"
            )


def resolve_selection(
    n_teacher: int, layers: int | Sequence[int], train: int | Sequence[int]
) -> tuple[list[int], list[int]]:
    """(teacher layer indices kept, student layer indices trained) from counts or explicit lists.

    layers: N = the first N teacher layers, or teacher indices; train: N = the top N student layers, or
    student indices, or an empty list (nothing trains: a frozen layer selection). Both lists come back
    sorted; out-of-range or repeated entries are one-line errors.
    """
    kept = list(range(layers)) if isinstance(layers, int) else [int(i) for i in layers]
    if not kept or (isinstance(layers, int) and not 1 <= layers <= n_teacher):
        raise InputError(f"--student-layers {layers} must be in 1..{n_teacher} (the teacher has {n_teacher} layers)")
    if kept != sorted(set(kept)) or kept[0] < 0 or kept[-1] >= n_teacher:
        raise InputError(
            f"--student-layers {','.join(map(str, kept))}: teacher layers must be sorted, unique and in "
            f"0..{n_teacher - 1} (the teacher has {n_teacher} layers)"
        )
    n = len(kept)
    if isinstance(train, int):
        if not 1 <= train <= n:
            raise InputError(f"--train-layers top{train} must train 1..{n} layers (the student has {n})")
        trained = list(range(n - train, n))
    else:
        trained = [int(i) for i in train]
        if trained and (trained != sorted(set(trained)) or trained[0] < 0 or trained[-1] >= n):
            raise InputError(
                f"--train-layers {','.join(map(str, trained))}: student layers must be sorted, unique "
                f"and in 0..{n - 1} (the student has {n} layers)"
            )
    return kept, trained


def layer_slice(model, start: int, stop: int) -> nn.Module:
    """A base model of the same class as `model`'s that runs only its decoder layers [start, stop), sharing
    every module (no copy): the embeddings and final norm come along, so the slice's output is post-norm."""
    base, attr, layers = layers_of(model)
    cfg = sliced_config(base.config, range(start, stop))
    with torch.device("meta"):
        part = type(base)(cfg)
    for name, child in base.named_children():
        setattr(part, name, child)
    setattr(part, attr, nn.ModuleList([layers[i] for i in range(start, stop)]))
    no_meta(part, "layer slice")
    return part


def build_truncated(teacher_model, layers: int | Sequence[int], train: int | Sequence[int]):
    """A causal LM made of teacher layers; only the `train` ones train. Returns an HF causal LM.

    layers: a count (the teacher's first N layers) or teacher layer indices (e.g. 0-6 and 22-29);
    train: a count (the student's top N layers), student layer indices, or [] (all frozen). The
    embeddings, the final norm, the LM head and the frozen layers are the teacher's own modules (no
    copy); the trained layers are float32 copies. Built on the meta device, so no teacher-sized
    allocation happens. The selection is recorded in `config.sensekit`, which save_pretrained writes
    into config.json.
    """
    from transformers import AutoModelForCausalLM

    base, attr, teacher_layers = layers_of(teacher_model)
    kept, trained = resolve_selection(len(teacher_layers), layers, train)
    cfg = sliced_config(teacher_model.config, kept)
    with torch.device("meta"):
        student = AutoModelForCausalLM.from_config(cfg)
    s_base = student.base_model
    for name, child in base.named_children():
        if name != attr:
            setattr(s_base, name, child)
    for name, child in teacher_model.named_children():
        if child is not base:
            setattr(student, name, child)
    modules = []
    for position, index in enumerate(kept):
        if position in trained:
            layer = copy.deepcopy(teacher_layers[index]).float()
            layer.requires_grad_(True)
        else:
            layer = teacher_layers[index]
        modules.append(layer)
    setattr(s_base, attr, nn.ModuleList(modules))
    no_meta(student, "truncated student")
    student.config.use_cache = False
    student.config.sensekit = {
        "teacher_layers": kept,
        "trained_layers": trained,
        "teacher_num_layers": len(teacher_layers),
    }
    return student
