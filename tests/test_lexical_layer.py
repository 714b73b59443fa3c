"""resolve_lexical_layer: auto / none / N, and the one-line error naming the teacher's layer count."""

from __future__ import annotations

import pytest

from sensekit.errors import InputError
from sensekit.model.lexical import AUTO_FRACTION, auto_layer, resolve_lexical_layer


def test_auto_is_a_depth_fraction():
    assert resolve_lexical_layer("auto", 30) == round(AUTO_FRACTION * 30)
    assert 1 <= resolve_lexical_layer("auto", 4) <= 4
    assert auto_layer(1) == 1


def test_none_and_int():
    assert resolve_lexical_layer("none", 30) is None
    assert resolve_lexical_layer(None, 30) is None
    assert resolve_lexical_layer("0", 30) == 0
    assert resolve_lexical_layer("30", 30) == 30
    assert resolve_lexical_layer(7, 30) == 7


@pytest.mark.parametrize("spec", ["31", "-1", "twelve", "1.5"])
def test_bad_values_name_the_layer_count(spec):
    with pytest.raises(InputError) as err:
        resolve_lexical_layer(spec, 30)
    msg = str(err.value)
    assert "30 layers" in msg and "\n" not in msg
