"""The lexical view of every sample (one forward pass), views as records and objects, --focus, --view.

Real tiny teacher (tests/helpers.py), real DuckDB and HNSW.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pytest
from helpers import LAYERS, build_config, run_cli

torch = pytest.importorskip("torch")

from sensekit import open_store  # noqa: E402
from sensekit.builder.pipeline import BuildConfig, build  # noqa: E402
from sensekit.errors import InputError, SchemaMismatch  # noqa: E402
from sensekit.model.lexical import auto_layer  # noqa: E402


def _cfg(corpus: Path, store: Path, **kw) -> BuildConfig:
    return build_config(corpus, store, **{"min_sense_size": 2, **kw})


@pytest.fixture(scope="module")
def two_stores(tmp_path_factory, teacher_dir):
    """The same build with and without the lexical view, relations attached (pairs with a span)."""
    from helpers import TEXTS

    from sensekit.model.teacher import load_teacher

    tmp = tmp_path_factory.mktemp("views")
    corpus = tmp / "corpus.txt"
    corpus.write_text("\n\n".join(TEXTS * 3) + "\n", encoding="utf-8")
    pairs = tmp / "pairs.tsv"
    pairs.write_text("bank\triver bank\tsyn\nlight\tdark\tant\nbig\tlarge\tsyn\nhappy\tglad\tsyn\n")
    teacher = load_teacher(str(teacher_dir), device="cpu")
    out = {}
    for layer in ("none", "auto"):
        cfg = _cfg(corpus, tmp / f"{layer}.sensekit", lexical_layer=layer, relations=(f"pairs:{pairs}",))
        out[layer] = build(cfg, teacher=teacher)
    return out, teacher, corpus, tmp


def test_loss_view_and_distill_targets_are_identical_with_and_without_the_lexical_view(two_stores):
    from sensekit.distill.targets import SenseTargets

    results, teacher, _, _ = two_stores
    targets, tables = {}, {}
    for layer, r in results.items():
        with open_store(r.store, view="loss") as s:
            targets[layer] = SenseTargets.from_store(s, teacher.vocab_size)
            m = s.sense_matrix()
            tables[layer] = (m, [(c.sense_index, c.count, [x.snippet for x in c.contexts]) for c in s.senses("bank")])
    a, b = targets["none"], targets["auto"]
    for name in ("emb", "unit_rows", "token_unit", "syn_ptr", "syn_unit", "ant_ptr", "ant_unit"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert a.n_span_units == b.n_span_units > 0
    (ma, qa), (mb, qb) = tables["none"], tables["auto"]
    assert np.array_equal(ma["embedding"], mb["embedding"]) and np.array_equal(ma["token_id"], mb["token_id"])
    assert qa == qb


def test_the_lexical_view_is_stored_beside_the_loss_view(two_stores):
    results, teacher, _, _ = two_stores
    r = results["auto"]
    assert r.lexical_senses > 0 and results["none"].lexical_senses == 0
    with open_store(r.store) as s:
        assert tuple(s.views) == ("loss", "lexical") and s.default_view == "lexical"
        lexical, loss = s.view(), s.view("loss")
        assert (lexical.name, lexical.layer, lexical.hidden_layer, lexical.key_mode) == (
            "lexical",
            auto_layer(LAYERS),
            auto_layer(LAYERS),
            "input",
        )
        assert (loss.layer, loss.hidden_layer, loss.key_mode) == ("final_norm", None, "next")
        assert lexical.index is s.index and loss.space is s.spaces["loss"] and lexical.dim == s.dim
        assert [x.sense_id for x in lexical.senses("bank")] == [x.sense_id for x in s.senses("bank")]
        info = s.info()
        assert set(info.views) == {"loss", "lexical"} and info.views["lexical"]["default"]
        assert info.views["lexical"]["layer"] == auto_layer(LAYERS)  # auto, recorded
        assert info.views["lexical"]["index"]["count"] == info.views["lexical"]["senses"] == r.lexical_senses
        assert info.views["loss"]["index"]["checksum"] != info.views["lexical"]["index"]["checksum"]
        assert s.meta["build_config"]["lexical_layer"] == "auto" and s.meta["lexical_layer"] == auto_layer(LAYERS)
        assert s.meta["build_config"]["min_sense_size"] == 2 and s.meta["loss_small_tokens"].startswith("raw")
        s.verify()
        m = s.sense_matrix(view="lexical")
        counts = np.bincount(m["token_id"][m["token_id"] >= 0])
        assert counts.max() <= 3  # 1..k senses per token
        lex = s.senses("bank")
        assert lex and all(x.view == "lexical" and x.contexts for x in lex)
        assert all(x.count >= 2 for x in lex) or len(lex) == 1  # min sense size, or one centroid
        assert {x.view for x in s.senses("bank", view="loss")} == {"loss"}
        assert all(n.sense.view == "lexical" for n in s.neighbors("bank", k=5))
        assert all(n.sense.view == "loss" for n in s.neighbors("bank", k=5, view="loss"))
        sid = lex[0].sense_id
        assert all(n.sense.view == "lexical" for n in s.neighbors(sid, k=3))  # a sense id searches its own view
        assert s.spaces["loss"] is not s.spaces["lexical"] and s.index is s.indexes["lexical"]
        rel = s.relations("bank", view="lexical")
        assert rel and all(x.head_sense is None or 0 <= x.head_sense < len(lex) for x in rel)
    assert (r.store / "senses.hnsw").is_file() and (r.store / "senses.lexical.hnsw").is_file()
    with open_store(results["none"].store) as s:
        assert tuple(s.views) == ("loss",) and s.default_view == "loss"
        with pytest.raises(InputError, match="no lexical view.*--lexical-layer auto"):
            s.senses("bank", view="lexical")
    with pytest.raises(InputError, match="no lexical view"):
        open_store(results["none"].store, view="lexical")


def test_lexical_vectors_are_the_layer_state_at_the_key_tokens_own_position(tiny):
    """The hook's vector = hidden_states[N] of an output_hidden_states forward, at t+1 (next) or t (input)."""
    from sensekit.builder.harvest import Batch, capture_layer, harvest_positions

    tok = tiny.tokenizer
    rows = [tok("the river bank was green")["input_ids"], tok("money in the bank")["input_ids"]]
    T = max(map(len, rows))
    ids = torch.zeros(2, T, dtype=torch.long)
    mask = torch.zeros(2, T, dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, : len(r)], mask[i, : len(r)] = torch.tensor(r), True
    batch = Batch(ids, mask, np.zeros((2, T, 2), np.int32), np.array([0, 1]), int(mask.sum()))
    special = torch.zeros(tiny.vocab_size, dtype=torch.bool)
    with torch.no_grad():
        hs = tiny.model(input_ids=ids, attention_mask=mask.long(), output_hidden_states=True).hidden_states
    n_layers = len(hs) - 1
    for layer in sorted({0, 1, n_layers // 2 + 1, n_layers}):
        for key, shift in (("next", 1), ("input", 0)):
            with capture_layer(tiny, layer) as captured, torch.no_grad():
                keys, vecs, _, lex = harvest_positions(
                    tiny,
                    batch,
                    key_mode=key,
                    next_token="gold",
                    special=special,
                    lexical_layer=layer,
                    captured=captured,
                )
            valid = (mask[:, 1:] & mask[:, :-1]) if key == "next" else mask
            want = hs[layer][:, shift:][valid]
            assert lex.shape == vecs.shape == want.shape
            torch.testing.assert_close(lex, want, rtol=1e-4, atol=1e-4)
            assert torch.equal(torch.as_tensor(keys), ids[:, shift:][valid])


def test_bad_lexical_settings_are_one_line_errors(tiny, text_corpus, tmp_path):
    n_layers = tiny.model.config.num_hidden_layers
    with pytest.raises(InputError, match=f"out of range: the teacher has {n_layers} layers"):
        build(_cfg(text_corpus, tmp_path / "s", lexical_layer=str(n_layers + 1)), teacher=tiny)
    with pytest.raises(InputError, match="--lexical-layer 'middle'"):
        _cfg(text_corpus, tmp_path / "s", lexical_layer="middle")
    with pytest.raises(InputError, match="--next-token pred.*--lexical-layer none"):
        _cfg(text_corpus, tmp_path / "s", next_token="pred")
    _cfg(text_corpus, tmp_path / "s", next_token="pred", lexical_layer="none")  # the loss view alone is fine


def test_lexical_merge_sets_how_fine_the_lexical_senses_are(tiny, text_corpus, tmp_path):
    """--lexical-merge -1: every pair of senses is similar enough to merge, so one sense per token;
    1.0: nothing merges, so tokens with enough samples keep several."""
    counts = {}
    for merge in (-1.0, 1.0):
        r = build(_cfg(text_corpus, tmp_path / f"m{merge}", lexical_merge=merge), teacher=tiny)
        with open_store(r.store) as s:
            assert s.meta["build_config"]["lexical_merge"] == merge
            counts[merge] = s.sense_counts(view="lexical")
    assert counts[-1.0].max() == 1
    assert counts[1.0].max() > 1 and counts[1.0].sum() > counts[-1.0].sum()
    with pytest.raises(InputError, match="--lexical-merge"):
        _cfg(text_corpus, tmp_path / "s", lexical_merge=1.5)


def test_heldout_share_is_checked_and_belongs_to_the_default_corpus(text_corpus, tmp_path):
    with pytest.raises(InputError, match=r"--heldout-share 0.7 is outside \(0, 0.5\]"):
        BuildConfig(store=str(tmp_path / "s"), heldout_share=0.7)
    with pytest.raises(InputError, match="--heldout-share holds out WordNet example sentences"):
        _cfg(text_corpus, tmp_path / "s", heldout_share=0.3)
    assert BuildConfig(store=str(tmp_path / "s"), heldout_share=0.3).heldout_share == 0.3


def test_no_raw_small_gives_small_tokens_one_centroid(tiny, text_corpus, tmp_path):
    r = build(_cfg(text_corpus, tmp_path / "c", lexical_layer="none", raw_small=False), teacher=tiny)
    with open_store(r.store) as s:
        assert s.meta["build_config"]["raw_small"] is False
        assert s.meta["loss_small_tokens"].startswith("one centroid")
        ids = s.con.execute("SELECT token_id, occurrences FROM tokens").fetchall()
        few = [t for t, n in ids if n <= 3]
        assert few
        counts = s.sense_counts(view="loss")
        assert all(counts[t] == 1 for t in few)
        sense = s.senses_of_token(few[0])[0]
        assert sense.count <= 3 and len(sense.contexts) == 1


def test_focus_words_are_read_first(tiny, tmp_path):
    from sensekit.builder.focus import FocusedDocs, parse_focus

    docs = [(f"d{i}", f"filler text number {i}") for i in range(50)] + [("bank1", "the bank of the river")]
    docs += [(f"e{i}", "more filler") for i in range(10)] + [("bank2", "a BANK loan")]
    f = FocusedDocs(lambda select=None: iter(docs), ("bank", "zebra"), enough=10)
    order = [d for d, _ in f()]
    assert order[:2] == ["bank1", "bank2"] and sorted(order) == sorted(d for d, _ in docs)
    assert f.missing() == ["zebra"]
    assert parse_focus("light, plant,spring bank") == ("light", "plant", "spring", "bank")
    words = tmp_path / "focus.txt"
    words.write_text("light\nbank  # money\n\nbank\n")
    assert parse_focus(str(words)) == ("light", "bank")
    with pytest.raises(InputError, match="--focus file .*nope.txt does not exist"):
        parse_focus(str(tmp_path / "nope.txt"))

    corpus = tmp_path / "c.jsonl"  # one document per line (a .txt file's blocks merge into large documents)
    texts = ["a long text about nothing at all, many words here"] * 40
    texts.append("we walked along the river to sit on the bank, and then went to the bank for money")
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    cfg = _cfg(corpus, tmp_path / "f", max_tokens=40, focus="bank,qqqxz", lexical_layer="none")
    r = build(cfg, teacher=tiny)
    assert r.warnings and "qqqxz" in r.warnings[0] and "bank" not in r.warnings[0].split("(")[1]
    with open_store(r.store) as s:
        assert s.senses("bank") and s.meta["focus"]["words"] == ["bank", "qqqxz"]
        assert s.meta["focus"]["unmatched"] == ["qqqxz"]


def test_eval_store_reads_the_chosen_view(two_stores):
    from sensekit.eval.config import EvalConfig
    from sensekit.eval.store_eval import evaluate_store

    results, teacher, _, _ = two_stores
    store = results["auto"].store
    for view, senses in (("loss", results["auto"].senses), ("lexical", results["auto"].lexical_senses)):
        r = evaluate_store(EvalConfig(store=str(store), view=view, metrics=("health",)), teacher=teacher)
        assert r["store"]["view"] == view and r["store"]["token_senses"] == senses
    r = evaluate_store(EvalConfig(store=str(store), metrics=("health",)), teacher=teacher)
    assert r["store"]["view"] == "lexical" and r["store"]["views"] == ["loss", "lexical"]
    with pytest.raises(InputError, match="no lexical view"):
        evaluate_store(EvalConfig(store=str(results["none"].store), view="lexical", metrics=("health",)))


def test_cli_view_and_focus_and_v2(capsys, two_stores, tmp_path):
    results, _, corpus, _ = two_stores
    store = results["auto"].store
    code, out, _ = run_cli(capsys, "query", "bank", "--store", store, "--json")
    assert code == 0 and json.loads(out)["view"] == "lexical"
    code, out, _ = run_cli(capsys, "query", "bank", "--store", store, "--json", "--view", "loss")
    doc = json.loads(out)
    assert code == 0 and doc["view"] == "loss" and len(doc["senses"]) >= 1
    code, _, err = run_cli(capsys, "query", "bank", "--store", results["none"].store, "--view", "lexical")
    assert code == 1 and "no lexical view" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(capsys, "query", "bank", "--store", store, "--view", "middle")
    assert code == 1 and "no middle view (it holds: loss, lexical)" in err
    code, out, _ = run_cli(capsys, "info", "--store", store, "--json")
    assert set(json.loads(out)["views"]) == {"loss", "lexical"}
    code, out, _ = run_cli(capsys, "info", "--store", store)
    assert code == 0 and "views" in out and "lexical" in out
    for view in ("loss", "lexical"):
        code, _, _ = run_cli(capsys, "export", "--store", store, "-o", tmp_path / view, "--view", view)
        con = duckdb.connect()
        got = con.execute(f"SELECT DISTINCT view FROM '{tmp_path / view / 'senses.parquet'}'").fetchall()
        assert code == 0 and got == [(view,)]
    code, out, _ = run_cli(capsys, "plot", "bank", "--store", store, "-o", tmp_path / "p.png", "--view", "loss")
    assert code == 0 and (tmp_path / "p.png").is_file()
    code, _, err = run_cli(capsys, "build", corpus, "--store", tmp_path / "x", "--focus", tmp_path / "missing.txt")
    assert code == 1 and "missing.txt does not exist" in err and len(err.strip().splitlines()) == 1

    v2 = tmp_path / "none.sensekit"  # a copy: the module's stores stay as built for the other tests
    shutil.copytree(results["none"].store, v2)
    con = duckdb.connect(str(v2 / "store.duckdb"))
    con.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(SchemaMismatch, match="schema version 2 \\(no lexical view\\).*rebuild"):
        open_store(v2)
    (tmp_path / "x.tsv").write_text("happy\tglad\tsyn\n")
    code, _, err = run_cli(capsys, "relations", "add", f"pairs:{tmp_path / 'x.tsv'}", "--store", v2)
    assert code == 2 and "schema version 2" in err  # nothing that reads a v2 store writes to it
    assert not any(p.name.startswith(".none.sensekit.tmp") for p in v2.parent.iterdir())
    open_store(results["none"].store).close()  # the module's store is untouched: it still opens
