"""The similarity space: its maths, and that a bundle stores it and uses it for the index and queries."""

import numpy as np
import pytest
from conftest import train_tokenizer

from sensekit import open_store
from sensekit.errors import InputError
from sensekit.space import SimilaritySpace, fit_space
from sensekit.writer import StoreWriter


def _anisotropic(n=400, d=12, seed=0):
    """Random directions plus one huge shared offset (as post-norm states have)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    x[:, 0] += 40.0
    return x


def test_centre_and_zscore_remove_the_common_offset():
    x = _anisotropic()
    raw = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert (raw[:50] @ raw[50:100].T).mean() > 0.9  # every pair looks alike
    for transform in ("centre", "zscore", "abtt", "zscore+abtt"):
        y = fit_space(x, transform).apply(x)
        y /= np.linalg.norm(y, axis=1, keepdims=True)
        assert abs((y[:50] @ y[50:100].T).mean()) < 0.05, transform


def test_abtt_removes_the_top_principal_directions():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((500, 8)).astype(np.float32)
    x[:, 3] *= 30.0  # one dominant direction
    space = fit_space(x, "abtt", components=1)
    assert space.components.shape == (1, 8)
    assert abs(abs(space.components[0, 3]) - 1.0) < 1e-3
    y = space.apply(x)
    assert np.abs(y @ space.components[0]).max() < 1e-3  # nothing left along it
    np.testing.assert_allclose(space.apply(x[0]), y[0], rtol=1e-5, atol=1e-5)  # one vector == a row


def test_identity_and_bad_transform():
    x = _anisotropic(n=10)
    np.testing.assert_array_equal(SimilaritySpace.identity(12).apply(x), x)
    with pytest.raises(InputError, match="--space"):
        fit_space(x, "whiten")


def test_the_bundle_stores_its_space_and_the_index_uses_it(tmp_path):
    tok = train_tokenizer()
    tok_json = tmp_path / "tokenizer.json"
    tok.save(str(tok_json))
    x = _anisotropic(n=40, d=12, seed=3)
    owners = list(range(100, 140))
    path = tmp_path / "s.sensekit"
    with StoreWriter(path, dim=12, tokenizer_json=tok_json, space="zscore") as w:
        w.add_tokens(owners, [f" t{i}" for i in owners], [1] * 40)
        w.add_senses(x, [0] * 40, [1] * 40, token_ids=owners)
    expect = fit_space(x, "zscore")
    with open_store(path) as s:
        assert s.info().space == {"kind": "zscore", "components": 0, "dim": 12}
        np.testing.assert_allclose(s.space.mean, expect.mean, rtol=1e-6)
        # a raw query vector is mapped into the space: its nearest sense is the one nearest there
        y = expect.apply(x)
        y /= np.linalg.norm(y, axis=1, keepdims=True)
        q = x[5] + 0.01
        qy = expect.apply(q)
        want = owners[int(np.argmax(y @ (qy / np.linalg.norm(qy))))]
        assert s.neighbors(q, k=1)[0].sense.token_id == want
    # relations added later keep the bundle's space
    with StoreWriter.update(path) as w:
        assert w.space.transform == "zscore"
    with open_store(path) as s:
        assert s.info().space["kind"] == "zscore"
