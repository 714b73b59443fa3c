"""`sensekit plot`: context vectors in the store, the PNG (size, not blank, coloured by sense), --relations, errors."""

from __future__ import annotations

import dataclasses

import duckdb
import numpy as np
import pytest
from helpers import build_config, run_cli

from sensekit import open_store
from sensekit.plot import DPI, FIGSIZE, NO_VECTORS_NOTE, plot_word, short_snippet
from sensekit.records import Context
from sensekit.writer import StoreWriter

DIM = 16
WIDTH, HEIGHT = int(FIGSIZE[0] * DPI), int(FIGSIZE[1] * DPI)


def write_plot_store(path, tokenizer_json, tok, with_vectors: bool = True):  # noqa: F811
    """light: 3 senses (around e0, e1, e2), each with 3 context vectors; dark: 2 senses (antonym, attached
    to light's sense 0); small: 1 sense (synonym, attached to sense 2); glad: a synonym with no attachment;
    'bright' is a synonym with no senses at all (several tokens)."""
    rng = np.random.default_rng(0)
    ids = {w: tok.token_to_id(" " + w) for w in ("light", "dark", "small", "glad")}
    eye = np.eye(DIM, dtype=np.float32)
    centres = np.stack([eye[0], eye[1], eye[2], -eye[0] + 0.3 * eye[3], eye[4], eye[2] + 0.2 * eye[5], eye[6]])
    owners = [ids["light"]] * 3 + [ids["dark"]] * 2 + [ids["small"], ids["glad"]]
    with StoreWriter(path, dim=DIM, tokenizer_json=tokenizer_json, provenance={"teacher": "tiny"}, space="centre") as w:
        w.add_tokens(list(ids.values()), [" " + x for x in ids], [40, 9, 5, 3])
        sids = w.add_senses(centres, [0, 1, 2, 0, 1, 0, 0], [20, 12, 8, 5, 4, 5, 3], token_ids=owners)
        vectors = np.repeat(centres[:3], 3, axis=0) + 0.15 * rng.standard_normal((9, DIM)).astype(np.float32)
        snippets = [
            "turn on the light because the room is dark",
            "a light box",
            "the light of day",
            "light enough to carry",
            "a light meal",
            "travel light",
            "light blue",
            "a light green",
            "pale light",
        ]
        rows = {
            "sense_id": np.repeat(sids[:3], 3),
            "rank": [0, 1, 2] * 3,
            "doc_id": [f"d{i}" for i in range(9)],
            "char_start": [0] * 9,
            "char_end": [5] * 9,
            "snippet": snippets,
            "mark_start": [s.index("light") for s in snippets],
            "mark_end": [s.index("light") + 5 for s in snippets],
            "distance": np.linalg.norm(vectors - np.repeat(centres[:3], 3, axis=0), axis=1),
        }
        if with_vectors:
            import pyarrow as pa

            rows["vector"] = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), DIM)
        w.add_contexts(rows)
        heads = ["light"] * 4 + ["dark", "small", "glad", "bright"]
        related = ["dark", "small", "glad", "bright", "light", "light", "light", "light"]
        kinds = ["ant", "syn", "syn", "syn", "ant", "syn", "syn", "syn"]
        w.replace_relations(
            "wordnet",
            {"head": heads, "related": related, "kind": kinds, "derived": [False] * 8, "provenance": [None] * 8},
        )
        w.set_head_senses(
            heads, related, np.array([0, 2, -1, -1, 0, 0, -1, -1]), np.array([0.2, 0.1, 0, 0, 0.2, 0.1, 0, 0])
        )
    return ids


@pytest.fixture()
def plot_store(tmp_path, tokenizer_json, tok):  # noqa: F811
    path = tmp_path / "plot.sensekit"
    write_plot_store(path, tokenizer_json, tok)
    return path


def read_png(path) -> np.ndarray:
    import matplotlib.image

    return matplotlib.image.imread(str(path))  # [H, W, 4] floats in 0..1


def colour_pixels(img: np.ndarray, rgb) -> int:
    return int((np.abs(img[:, :, :3] - np.asarray(rgb[:3])) < 0.02).all(2).sum())


def assert_real_picture(path, n_colours: int) -> np.ndarray:
    from matplotlib import colormaps

    img = read_png(path)
    assert img.shape[:2] == (HEIGHT, WIDTH)
    assert img[:, :, :3].std() > 0.05  # not blank
    for i in range(n_colours):  # one colour per sense, each present
        assert colour_pixels(img, colormaps["tab10"](i)) > 30, f"no pixels of sense colour {i}"
    return img


def test_context_vectors_are_read_per_sense(plot_store):
    with open_store(plot_store) as s:
        light = s.senses("light")
        got = s.context_vectors([x.sense_id for x in light] + [s.sense_ids("dark")[0]])
        assert sorted(got) == [x.sense_id for x in light]  # dark keeps no contexts: left out
        for sense in light:
            v = got[sense.sense_id]
            assert v.shape == (3, DIM) and v.dtype == np.float32
            dist = np.linalg.norm(v - sense.embedding, axis=1)
            np.testing.assert_allclose(dist, [c.distance for c in sense.contexts], rtol=1e-5)
        assert s.context_vectors([]) == {}


def test_plot_word_writes_a_png_of_the_senses_and_contexts(plot_store, tmp_path):
    out = tmp_path / "light.png"
    with open_store(plot_store) as s:
        r = plot_word(s, "light", out)
    assert r["path"] == str(out) and (r["width"], r["height"]) == (WIDTH, HEIGHT)
    assert (r["senses"], r["contexts"], r["synonyms"], r["antonyms"], r["note"]) == (3, 9, 0, 0, None)
    assert r["space"] == "centre" and 0 < r["explained_variance"][1] <= r["explained_variance"][0] <= 1
    assert_real_picture(out, 3)


def test_plot_relations_draws_synonyms_and_antonyms(plot_store, tmp_path, capsys):
    out = tmp_path / "rel.png"
    code, text, err = run_cli(capsys, "plot", "light", "--store", str(plot_store), "-o", str(out), "--relations")
    assert code == 0, err
    assert "3 senses, 9 context vectors, 2 synonyms, 1 antonyms" in text
    with open_store(plot_store) as s:
        r = plot_word(s, "light", tmp_path / "again.png", relations=True)
    # bright has no senses (several tokens), so it is counted but not drawn
    assert (r["synonyms"], r["antonyms"], r["synonyms_total"], r["antonyms_total"]) == (2, 1, 3, 1)
    assert r["related_senses"] == 4  # dark 2, small 1, glad 1
    img = assert_real_picture(out, 3)
    with open_store(plot_store) as s:
        plot_word(s, "light", tmp_path / "plain.png")
    assert not np.array_equal(img, read_png(tmp_path / "plain.png"))  # the related words changed the picture


def test_a_store_without_context_vectors_plots_senses_only(tmp_path, tokenizer_json, tok, capsys):  # noqa: F811
    path = tmp_path / "old.sensekit"
    write_plot_store(path, tokenizer_json, tok, with_vectors=False)
    out = tmp_path / "senses.png"
    code, text, err = run_cli(capsys, "plot", "light", "--store", str(path), "-o", str(out))
    assert code == 0, err
    assert "3 senses, 0 context vectors" in text and "note:" in text
    with open_store(path) as s:
        r = plot_word(s, "light", out)
    assert r["contexts"] == 0 and r["note"] == NO_VECTORS_NOTE
    assert_real_picture(out, 3)


def test_plot_errors_are_one_line(plot_store, tmp_path, capsys):
    code, _, err = run_cli(capsys, "plot", "nosuchword", "--store", str(plot_store), "-o", str(tmp_path / "x.png"))
    assert code == 1 and "unknown word 'nosuchword'" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(capsys, "plot", "light", "--store", str(tmp_path / "missing"), "-o", str(tmp_path / "x.png"))
    assert code == 2 and "no sensekit store" in err
    code, _, err = run_cli(capsys, "plot", "light", "--store", str(plot_store), "-o", str(tmp_path / "nope" / "x.png"))
    assert code == 1 and "does not exist" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


def test_short_snippet_marks_the_key_token():
    ctx = Context(
        0, "d", 0, 0, "a very long sentence that goes on and on before the light finally turns green again", 52, 57, 0.0
    )
    s = short_snippet(ctx, width=30)
    assert "[light]" in s and len(s) <= 32 and s.startswith("…")
    assert short_snippet(Context(0, "d", 0, 0, "light", 0, 5, 0.0)) == "[light]"


def test_build_keeps_the_sampled_vector_of_each_context(tiny, text_corpus, tmp_path):  # noqa: F811
    from sensekit.builder.pipeline import build

    cfg = dataclasses.replace(build_config(text_corpus, tmp_path / "s.sensekit"), store_dtype="float32")  # exact
    result = build(cfg, teacher=tiny)
    con = duckdb.connect(str(result.store / "store.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "SELECT c.sense_id, c.distance, c.vector_row, s.token_id FROM contexts c"
            " JOIN senses s USING (sense_id) WHERE s.view = 'loss' ORDER BY c.sense_id, c.rank"
        ).fetchall()
    finally:
        con.close()
    kept = np.load(result.store / "context_vectors.npy")  # [kept contexts, d]
    with open_store(result.store) as s:
        m = s.sense_matrix(view="loss")
    emb_of = dict(zip(m["sense_id"].tolist(), m["embedding"]))
    assert len(rows) == result.contexts > 0
    by_token: dict[int, list] = {}
    for sid, tid in zip(m["sense_id"].tolist(), m["token_id"].tolist()):
        by_token.setdefault(tid, []).append((sid, emb_of[sid]))
    for sense_id, distance, vector_row, token_id in rows:
        assert vector_row is not None and kept.shape[1] == tiny.hidden_size
        v, e = np.asarray(kept[vector_row], np.float32), emb_of[sense_id]
        # the sampled vector behind the context: its distance to its centroid is the recorded one ...
        assert abs(float(np.linalg.norm(v - e)) - distance) <= 1e-3 * max(1.0, distance)
        # ... and, k-means having converged, its own sense is the nearest of its token's senses
        own = [np.linalg.norm(v - emb) for _, emb in by_token[token_id]]
        assert min(own) >= float(np.linalg.norm(v - e)) - 1e-3
    with open_store(result.store) as s:
        bank = s.senses("bank")
        got = s.context_vectors([x.sense_id for x in bank])
        assert {k: len(v) for k, v in got.items()} == {x.sense_id: len(x.contexts) for x in bank}
        r = plot_word(s, "bank", tmp_path / "bank.png")
    assert r["contexts"] == sum(len(x.contexts) for x in bank) and r["note"] is None
