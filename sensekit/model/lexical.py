"""Which teacher layer gives the *lexical* view of a sample (docs/lexical.md).

Convention (the build's harvest hook and `sensekit eval layers` both use it): layer N's state
is `hidden_states[N]` of a Hugging Face forward with `output_hidden_states=True`:

- N = 0 is the input embeddings;
- N in 1..L-1 is the output of decoder layer N-1 (the residual stream, before any norm);
- N = L is the last entry HF returns (for most families the post-norm state).

`resolve_lexical_layer("auto", L)` picks round(AUTO_FRACTION * L). The fraction was chosen on
the dev half of the WiC validation pairs with the bundled SmolLM2-135M (30 layers); the
per-layer curve and the choice are in docs/lexical.md.
"""

from __future__ import annotations

from ..errors import InputError

__all__ = ["AUTO_FRACTION", "resolve_lexical_layer", "auto_layer"]

# depth fraction for "auto": layer 9 of the bundled teacher's 30, chosen on the dev half (docs/lexical.md): with the
# same clustering it beat layers 6, 12, 15 on WiC nearest sense, SimLex, WordSim and WordNet neighbours
AUTO_FRACTION = 0.3


def auto_layer(n_layers: int) -> int:
    """The layer "auto" picks for a teacher with n_layers decoder layers (at least 1 when n_layers >= 1)."""
    if n_layers <= 0:
        return 0
    return min(n_layers, max(1, int(round(AUTO_FRACTION * n_layers))))


def resolve_lexical_layer(spec: str | int | None, n_layers: int) -> int | None:
    """'auto' | 'none' | 'N' -> the hidden_states index of the lexical view, or None for no lexical view.

    N must lie in 0..n_layers (n_layers = the teacher's decoder layer count); anything else raises
    InputError with one line that names the teacher's layer count.
    """
    if spec is None:
        return None
    if isinstance(spec, bool):
        raise InputError(f"--lexical-layer {spec!r}: use auto, none or a layer index 0..{n_layers}")
    if isinstance(spec, int):
        value = spec
    else:
        text = str(spec).strip().lower()
        if text == "auto":
            return auto_layer(n_layers)
        if text in ("none", "off", ""):
            return None
        try:
            value = int(text)
        except ValueError:
            raise InputError(
                f"--lexical-layer {spec!r}: use auto, none or a layer index 0..{n_layers} "
                f"(the teacher has {n_layers} layers)"
            ) from None
    if not 0 <= value <= n_layers:
        raise InputError(
            f"--lexical-layer {value} is out of range: the teacher has {n_layers} layers; "
            f"use 0..{n_layers} (0 = embeddings), auto or none"
        )
    return value
