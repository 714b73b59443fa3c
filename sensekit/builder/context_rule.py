"""The build's `--min-context` rule, once, for torch tensors and numpy arrays alike.

A source state may stand for its key token only when it has read at least `min_context` real
tokens of the text (docs/method.md 1.1) and, in a window that overlaps the previous one, only
when its key token is new (`repeated` = the window's tokens already read by the previous one):

- `body_pos`: the source's position counted from the first real token after the special prefix
  (0 there; negative on the prefix itself);
- the key token's position is `body_pos + 1` for key mode `next` (the state predicts the token after
  it: it has read x_1..x_t) and `body_pos` for `input` (the state at x_t, which has read the
  tokens before it);
- allowed iff `body_pos >= 0` and the key token's position is at least `min_context` and `repeated`.

Only comparison and `&` operators are used, so the same expression runs on ints, numpy arrays and
torch tensors (broadcasting `repeated` [B, 1] against `body_pos` [B, T], for instance). The build
(`harvest.source_allowed`, torch) and eval (`states.locate`, numpy) both call it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["has_context", "key_offset"]


def key_offset(key_mode: str) -> int:
    """Position of the key token relative to its source state: 1 for `next`, 0 for `input` (and `last`)."""
    return 1 if key_mode == "next" else 0


def has_context(body_pos: Any, key_mode: str, min_context: int, repeated: Any = 0) -> Any:
    """Bool (array/tensor) of the sources that meet the rule; `body_pos` and `repeated` broadcast."""
    key_pos = body_pos + key_offset(key_mode)
    return (body_pos >= 0) & (key_pos >= min_context) & (key_pos >= repeated)
