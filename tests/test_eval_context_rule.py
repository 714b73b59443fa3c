"""The build's --min-context rule is one function (sensekit/builder/context_rule.py): the torch side
(harvest.source_allowed) and the numpy side (eval's states.locate) give the same answers."""

from __future__ import annotations

import numpy as np
import pytest

from sensekit.builder.context_rule import has_context


def old_torch_rule(body_pos, key, min_context, repeated):
    """The rule as harvest.py wrote it before (first allowed body position per row)."""
    shift = 1 if key == "next" else 0
    first = np.clip(np.maximum(repeated, min_context) - shift, 0, None)
    return body_pos >= first[:, None]


def old_numpy_rule(body_pos, key, min_context):
    """The rule as eval/states.py wrote it before (p >= len(prefix) and read >= min_context)."""
    read = {"next": body_pos + 1, "input": body_pos}[key]
    return (body_pos >= 0) & (read >= min_context)


@pytest.mark.parametrize("key", ["next", "input"])
@pytest.mark.parametrize("min_context", [0, 1, 3, 7])
def test_one_rule_equals_both_old_ones(key, min_context):
    body = np.arange(-2, 12)[None, :].repeat(4, 0)  # [B, T], two prefix positions
    repeated = np.array([0, 2, 5, 9])
    got = has_context(body, key, min_context, repeated[:, None])
    assert (got == old_torch_rule(body, key, min_context, repeated)).all()
    assert (has_context(body, key, min_context) == old_numpy_rule(body, key, min_context)).all()
    assert bool(has_context(3, key, min_context)) == bool(old_numpy_rule(np.array(3), key, min_context))


def test_torch_and_numpy_agree():
    torch = pytest.importorskip("torch")
    body = np.arange(-1, 9)[None, :].repeat(3, 0)
    rep = np.array([0, 3, 6])[:, None]
    for key in ("next", "input"):
        a = has_context(torch.from_numpy(body), key, 4, torch.from_numpy(rep)).numpy()
        assert (a == has_context(body, key, 4, rep)).all()
