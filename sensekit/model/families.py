"""Model families: an exact split forward, and each family's own logits path.

**Split forward.** The frozen-prefix cache stores the input of the lowest trainable layer and
later resumes the forward from it. Feeding that state back through `inputs_embeds` is wrong:
each model re-applies its input step (GPT-2 adds position embeddings again, a Gemma
embedding may scale by sqrt(d) again, dropout runs again). So the split never goes through
`inputs_embeds` as data. Instead it runs the model's own forward, which builds the attention
masks, position ids and rotary tables exactly as the plain forward does, and:

- `run_to_layer` captures the output of the last layer below the split (a forward hook);
- `resume_at_layer` replaces the input of the first layer above the split (a forward
  pre-hook), so whatever the model computed before that layer is discarded;
- `final_from_layer` finishes a forward that something else ran to a layer (the build's repeated
  rows: their first copy is the row itself), checked once per model and layer against the plain one.

Nothing here knows a family's layer signature beyond "the first argument is hidden_states",
which holds for every decoder in transformers 5.x (Llama, Qwen2, Mistral, Gemma, GPT-2, Phi,
GPT-NeoX, ...). A family that still differs is caught by `split_difference` at start-up.

**Logits.** `lm_logits` applies the LM head and the family's post-head step: Gemma-2/3 soft-cap
(`final_logit_softcapping`), Cohere scales (`logit_scale`), Granite divides
(`logits_scaling`). `logits_difference` compares it with the model's own forward; where they
still differ, `TeacherLogits` runs the teacher's own forward instead.
"""

from __future__ import annotations

import weakref
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from sensekit.errors import InputError

from .layers import layer_slice, layers_of

__all__ = [
    "lm_logits",
    "logits_transform",
    "run_to_layer",
    "resume_at_layer",
    "final_from_layer",
    "tolerance",
    "max_difference",
    "logits_difference",
    "TeacherLogits",
]


# -- logits ---------------------------------------------------------------------------------
def logits_transform(config):
    """The family's step after the LM head, as a function of logits [..., V], or None (plain head).

    Read from the config the way the modeling code reads it: Cohere multiplies by `logit_scale`,
    Granite divides by `logits_scaling`, Gemma-2/3 soft-cap with `final_logit_softcapping`.
    """
    scale = getattr(config, "logit_scale", None)
    divide = getattr(config, "logits_scaling", None)
    cap = getattr(config, "final_logit_softcapping", None)
    steps = []
    if isinstance(scale, (int, float)) and not isinstance(scale, bool) and scale != 1:
        steps.append(lambda x: x * scale)
    if isinstance(divide, (int, float)) and not isinstance(divide, bool) and divide != 1:
        steps.append(lambda x: x / divide)
    if isinstance(cap, (int, float)) and not isinstance(cap, bool) and cap:
        steps.append(lambda x: torch.tanh(x / cap) * cap)
    if not steps:
        return None

    def apply(logits: torch.Tensor) -> torch.Tensor:
        for step in steps:
            logits = step(logits)
        return logits

    return apply


def lm_logits(model, hidden: torch.Tensor) -> torch.Tensor:
    """Post-norm states [..., d] -> logits [..., V] the way `model`'s own forward makes them."""
    logits = model.get_output_embeddings()(hidden.to(model.get_output_embeddings().weight.dtype))
    transform = logits_transform(model.config)
    return logits if transform is None else transform(logits)


# -- the split forward ------------------------------------------------------------------------
def _first_output(output):
    return output[0] if isinstance(output, (tuple, list)) else output


def run_to_layer(
    model: nn.Module, layer: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
) -> torch.Tensor:
    """Run `model` (a base model) on input_ids [B, T]; -> the output [B, T, d] of its decoder layer `layer`."""
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda module, args, output: captured.append(_first_output(output)))
    try:
        model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    finally:
        handle.remove()
    if len(captured) != 1:
        raise InputError(
            f"{type(model).__name__} ran its layer {len(captured)} times in one forward; this "
            "architecture cannot be split, drop --cache"
        )
    return captured[0]


@contextmanager
def _replaced_input(layer: nn.Module, hidden: torch.Tensor) -> Iterator[list[int]]:
    """While open, `layer` receives `hidden` as its hidden_states, whatever its caller passes."""
    calls = [0]

    def swap(module, args, kwargs):
        calls[0] += 1
        if args:
            return (hidden, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": hidden}

    handle = layer.register_forward_pre_hook(swap, with_kwargs=True)
    try:
        yield calls
    finally:
        handle.remove()


def resume_at_layer(
    model: nn.Module, layer: nn.Module, hidden: torch.Tensor, attention_mask: torch.Tensor | None
) -> torch.Tensor:
    """Run `model` (a base model whose first decoder layer is `layer`) from hidden [B, T, d], the input of
    `layer`; -> its last_hidden_state [B, T, d] (after the final norm).

    `inputs_embeds=hidden` only gives the model the batch shape and dtype for its masks and positions;
    what it derives from it (position embeddings added, scaling, dropout) is replaced at `layer`.
    """
    with _replaced_input(layer, hidden) as calls:
        out = model(inputs_embeds=hidden, attention_mask=attention_mask, use_cache=False).last_hidden_state
    if calls[0] != 1:
        raise InputError(
            f"{type(model).__name__} ran its layer {calls[0]} times in one forward; this "
            "architecture cannot be split, drop --cache"
        )
    return out


# per model, per layer: the slice of the layers above it, or None where the split did not reproduce the
# plain forward (weak keys: a slice shares the model's modules and must not outlive it)
_TOPS: "weakref.WeakKeyDictionary[nn.Module, dict[int, nn.Module | None]]" = weakref.WeakKeyDictionary()
CHECK_TOKENS = 32  # the split's one-time check reads this much of the first row


@torch.inference_mode()
def final_from_layer(
    model: nn.Module, hidden: torch.Tensor, layer: int, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """The post-norm final states [B, T, d] of the right-padded rows input_ids, attention_mask [B, T], given
    hidden = their hidden_states[layer] [B, T, d] (layer 1..L: decoder layer layer-1's output; L: already
    final): only the layers above `layer` run, so a caller that has run the rows that far pays for the rest.

    The first call per model and layer compares the split with the plain forward on the first row's first
    CHECK_TOKENS tokens; a family the split does not reproduce runs the plain forward from then on.
    """
    base, _, layers = layers_of(model)
    if layer >= len(layers):
        return hidden
    tops = _TOPS.setdefault(model, {})
    if layer not in tops:
        top = layer_slice(model, layer, len(layers))
        ids, mask = input_ids[:1, :CHECK_TOKENS], attention_mask[:1, :CHECK_TOKENS]
        plain = base(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
        split = resume_at_layer(top, layers_of(top)[2][0], hidden[:1, :CHECK_TOKENS], mask)
        diff, scale = max_difference(split, plain, mask.bool())
        tops[layer] = top if diff <= tolerance(plain.dtype, scale) else None
    top = tops[layer]
    if top is None:
        return base(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
    return resume_at_layer(top, layers_of(top)[2][0], hidden, attention_mask)


# -- exactness checks -------------------------------------------------------------------------
def tolerance(dtype: torch.dtype, scale: float) -> float:
    """Allowed max abs difference between two computations of the same values of magnitude `scale`."""
    rel = 1e-4 if dtype in (torch.float32, torch.float64) else 3e-2
    return rel * max(1.0, scale)


def max_difference(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[float, float]:
    """(max |a - b|, max |b|) over the masked-in positions. a, b [B, T, ...], mask [B, T] bool or None."""
    if mask is not None:
        a, b = a[mask], b[mask]
    a, b = a.float(), b.float()
    if a.numel() == 0:
        return 0.0, 0.0
    return float((a - b).abs().max()), float(b.abs().max())


@torch.no_grad()
def logits_difference(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> tuple[float, float]:
    """lm_logits(base model's last_hidden_state) vs the model's own logits: (max abs diff, allowed)."""
    hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
    ours = lm_logits(model, hidden)
    theirs = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    mask = attention_mask.bool() if attention_mask is not None else None
    diff, scale = max_difference(ours[..., : theirs.shape[-1]], theirs, mask)
    return diff, tolerance(model.get_output_embeddings().weight.dtype, scale)


class TeacherLogits:
    """The teacher's logits o^T [B, T, V]: from g_t where that is exact (`lm_logits`), else its own forward."""

    def __init__(self, teacher) -> None:
        self.model = teacher.model
        self.device = teacher.device
        self.own_forward = False

    def check(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> float:
        """Compare lm_logits(g) with the model's logits on a batch; switch to the own forward where they differ."""
        ids = input_ids.to(self.device)
        mask = None if attention_mask is None else attention_mask.to(self.device)
        diff, allowed = logits_difference(self.model, ids, mask)
        self.own_forward = not diff <= allowed
        return diff

    @torch.no_grad()
    def __call__(self, g: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """g [B, T, d] post-norm teacher states (the cache's or fresh) -> logits [B, T, V]."""
        if self.own_forward:
            return self.model(
                input_ids=input_ids.to(self.device),
                use_cache=False,
                attention_mask=None if attention_mask is None else attention_mask.to(self.device),
            ).logits
        return lm_logits(self.model, g)
