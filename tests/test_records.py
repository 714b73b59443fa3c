"""Record types: frozen data, and a sense's vector cannot be written through."""

import numpy as np
import pytest

from sensekit.records import Sense


def test_sense_embedding_is_read_only():
    table = np.zeros((2, 4), dtype=np.float32)
    sense = Sense(sense_id=0, token_id=1, span_id=None, sense_index=0, count=3, text=" a", embedding=table[0])
    with pytest.raises(ValueError):
        sense.embedding[0] = 1.0
    assert table[0, 0] == 0.0
