"""`annotate` and the linked lexical view end to end on the tiny teacher: a build whose WordNet is a fake with
two synsets of `bank`, then records, offsets, the JSON shape, the unknown-word count and same_sense.
The real teacher and WordNet: a check of the make-demo targets that skips without the shared folder."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import build_config, run_cli

pytest.importorskip("torch")

from test_eval_heldout import nltk_wordnet, wordnet_here  # noqa: E402, F401

from sensekit import open_store  # noqa: E402
from sensekit.annotate import WORD_FIELDS, Annotator, Occurrence, same_best, same_sense, sense_agreement  # noqa: E402
from sensekit.errors import InputError  # noqa: E402


class _Lemma:
    def __init__(self, name, count):
        self._name, self._count = name, count

    def name(self):
        return self._name

    def count(self):
        return self._count


class _Synset:
    def __init__(self, name, definition, examples, lemmas, counts=None):
        self._name, self._def, self._ex, self._lemmas = name, definition, examples, lemmas
        self._counts = counts or [0] * len(lemmas)

    def lemmas(self):
        return [_Lemma(n, c) for n, c in zip(self._lemmas, self._counts)]

    def name(self):
        return self._name

    def pos(self):
        return self._name.split(".")[1]

    def definition(self):
        return self._def

    def examples(self):
        return self._ex

    def lemma_names(self):
        return self._lemmas


class FakeWordNet:
    """Two synsets of `bank`, one of `light`; every other word has none."""

    SYNSETS = {
        "bank": [
            _Synset("bank.n.01", "sloping land beside a body of water", ["the river bank was green"], ["bank"], [25]),
            _Synset(
                "depository_financial_institution.n.01",
                "a financial institution that accepts deposits",
                [],
                ["depository_financial_institution", "bank"],
                [3, 20],
            ),
        ],
        "light": [_Synset("light.n.01", "electromagnetic radiation that can be seen", [], ["light"])],
    }

    def synsets(self, word):
        return self.SYNSETS.get(word, [])

    def synset(self, name):
        return next(s for ss in self.SYNSETS.values() for s in ss if s.name() == name)

    def morphy(self, word, pos=None):
        return None


@pytest.fixture(scope="module")
def linked_store(tmp_path_factory, teacher_dir):
    from helpers import TEXTS

    import sensekit.builder.wordnet_corpus as W
    from sensekit.builder.pipeline import build
    from sensekit.model.teacher import load_teacher

    tmp = tmp_path_factory.mktemp("annotate")
    corpus = tmp / "corpus.txt"
    corpus.write_text("\n\n".join(TEXTS * 3) + "\n", encoding="utf-8")
    old_home, old_open = os.environ.get("SENSEKIT_HOME"), W.open_wordnet_for_link
    os.environ["SENSEKIT_HOME"] = str(tmp / "home")  # the prototype cache
    W.open_wordnet_for_link = lambda root=None: FakeWordNet()
    try:
        cfg = build_config(
            corpus,
            tmp / "s.sensekit",
            lexical_layer="auto",
            min_sense_size=2,
            key="input",
            link_threshold=-1.0,
            link_budget=40000,
        )
        result = build(cfg, teacher=load_teacher(str(teacher_dir), device="cpu"))
    finally:
        W.open_wordnet_for_link = old_open
        if old_home is None:
            os.environ.pop("SENSEKIT_HOME", None)
        else:
            os.environ["SENSEKIT_HOME"] = old_home
    return result


def test_the_build_links_bank_and_labels_every_sense(linked_store):
    link = linked_store.meta["link"]
    assert link["words_linked"] == 2 and link["prototypes"] >= 3 and link["teacher_tokens"] > 0
    with open_store(linked_store.store, view="lexical") as s:
        senses = s.senses("bank", view="lexical")
        synsets = {x.synset for x in senses}
        # threshold -1: every sample of bank joins one of its two synsets; a synset nobody joined is a sense too
        assert synsets == {"bank.n.01", "depository_financial_institution.n.01"}
        for x in senses:
            assert x.gloss and x.lemma == "bank" and x.label.startswith(x.synset + ": ")
        other = [x for x in s.senses("river", view="lexical")]
        assert other and all(x.synset is None for x in other)  # not in WordNet: induced senses


def test_annotate_records_offsets_and_unknown_count(linked_store):
    from sensekit.model.teacher import load_teacher

    with open_store(linked_store.store) as store:
        teacher = load_teacher(store.meta["teacher"], "cpu")
        a = Annotator(store, teacher)
        line = "the river bank was green, zzqx"
        docs = a.annotate([line, ""])
    assert [d["text"] for d in docs] == [line, ""]
    words = docs[0]["words"]
    assert words and all(tuple(w) == WORD_FIELDS for w in words)
    for w in words:
        assert line[w["start"] : w["end"]] == w["text"]
        assert 0 < w["score"] <= 1
    bank = next(w for w in words if w["text"] == "bank")
    assert bank["synset"] in ("bank.n.01", "depository_financial_institution.n.01") and bank["gloss"]
    assert docs[0]["unknown"] >= 1  # zzqx
    assert docs[1] == {"text": "", "words": [], "unknown": 0}


class RiverWordNet(FakeWordNet):
    """The build's WordNet, and two synsets of `river`, a word the build did not link."""

    SYNSETS = {
        **FakeWordNet.SYNSETS,
        "river": [
            _Synset("river.n.01", "a large natural stream of water", ["the river was wide and slow"], ["river"], [9]),
            _Synset("river.n.02", "a made-up second sense of the word", [], ["river"]),
        ],
        # not a key token of the store (the tiny tokenizer splits it): no store senses at all
        "meadowlark": [_Synset("meadowlark.n.01", "a songbird of grassland", [], ["meadowlark"])],
    }


def test_a_word_the_build_did_not_link_is_named_from_wordnet_once(linked_store, tmp_path, monkeypatch):
    import sensekit.model.occurrence as occurrence
    from sensekit.model.teacher import load_teacher

    monkeypatch.setenv("SENSEKIT_HOME", str(tmp_path / "home"))  # an empty prototype cache
    read = []
    states = occurrence.occurrence_states
    monkeypatch.setattr(
        occurrence, "occurrence_states", lambda t, texts, *a, **k: read.append(list(texts)) or states(t, texts, *a, **k)
    )
    line = "the river bank was green, a meadowlark sang"
    with open_store(linked_store.store) as store:
        assert len(store.token_ids("meadowlark")) > 1  # the premise: the store has no senses for it
        teacher = load_teacher(store.meta["teacher"], "cpu")
        (doc,) = Annotator(store, teacher, wordnet=RiverWordNet()).annotate([line])
        words = {w["text"]: w for w in doc["words"]}
        assert words["river"]["synset"] in ("river.n.01", "river.n.02") and words["river"]["sense_id"] is None
        assert words["river"]["gloss"] in ("a large natural stream of water", "a made-up second sense of the word")
        assert words["bank"]["synset"] and words["bank"]["sense_id"] >= 0  # linked by the build: a store sense
        lark = words["meadowlark"]
        assert (lark["synset"], lark["sense_id"], lark["score"]) == ("meadowlark.n.01", None, 1.0)
        assert line[lark["start"] : lark["end"]] == "meadowlark"
        (texts,) = read  # one pass: the gloss sentences of river's two synsets and meadowlark's (bank's are cached)
        assert len(texts) == 3 and all("In short:" in t for t in texts)
        (again,) = Annotator(store, teacher, wordnet=RiverWordNet()).annotate([line])  # a new annotator
        assert len(read) == 1 and again == doc  # read from the cache
        (only,), _ = Annotator(store, teacher, wordnet=RiverWordNet()).occurrences([line], [(10, 14)])
        assert [o.text for o in only] == ["bank"]  # a target span: its word alone
        Annotator(store, teacher, wordnet=RiverWordNet(), wordnet_prototypes="examples").annotate([line])
        assert read[1] == ["the river was wide and slow"]  # the build's rule: river.n.01's tagged example
        with pytest.raises(InputError, match="wordnet_prototypes must be one of"):
            Annotator(store, teacher, wordnet_prototypes="lemmas")
        (off,) = Annotator(store, teacher, wordnet=RiverWordNet(), name_from_wordnet=False).annotate([line])
    river = next(w for w in off["words"] if w["text"] == "river")
    assert river["synset"] is None and river["sense_id"] >= 0  # the store's induced sense
    assert "meadowlark" not in {w["text"] for w in off["words"]} and off["unknown"] >= doc["unknown"] + 1


def test_annotate_probabilities_sum_to_one_over_the_words_senses(linked_store):
    from sensekit.model.teacher import load_teacher

    with open_store(linked_store.store) as store:
        a = Annotator(store, load_teacher(store.meta["teacher"], "cpu"))
        (occ,), _ = a.occurrences(["money in the bank is safe"])
        n_bank = len(store.senses("bank", view="lexical"))
    bank = next(o for o in occ if o.text == "bank")
    assert len(bank.probs) == n_bank and abs(bank.probs.sum() - 1) < 1e-5


def test_the_wordnet_prior_is_the_semcor_count_of_the_senses_lemma(linked_store):
    from sensekit.model.teacher import load_teacher

    with open_store(linked_store.store) as store:
        teacher = load_teacher(store.meta["teacher"], "cpu")
        plain = Annotator(store, teacher)
        counted = Annotator(store, teacher, prior="wordnet", wordnet=FakeWordNet())
        line = ["money in the bank is safe"]
        (p_occ,), _ = plain.occurrences(line)
        (w_occ,), _ = counted.occurrences(line)
    bank, plain_bank = (next(o for o in occ if o.text == "bank") for occ in (w_occ, p_occ))
    want = {"bank.n.01": np.log1p(25), "depository_financial_institution.n.01": np.log1p(20), None: 0.0}
    assert bank.log_prior == pytest.approx([want[s] for s in bank.synsets])
    assert bank.rescored(0.0) == pytest.approx(plain_bank.probs, abs=1e-6)  # weight 0: the prior is off
    assert bank.synsets[int(np.argmax(bank.rescored(1000.0)))] == "bank.n.01"  # the largest count wins
    with pytest.raises(InputError, match="prior must be one of"):
        Annotator(store, teacher, prior="cntlist")


def test_annotate_cli_json_and_table(linked_store, capsys, tmp_path):
    f = tmp_path / "in.txt"
    f.write_text("the river bank was green\nqqq zzz\n", encoding="utf-8")
    code, out, err = run_cli(capsys, "annotate", "--file", f, "--store", linked_store.store, "--json")
    assert code == 0, err
    docs = [json.loads(x) for x in out.splitlines()]
    assert [d["text"] for d in docs] == ["the river bank was green", "qqq zzz"]
    assert set(docs[0]) == {"text", "words"} and docs[1]["words"] == []
    summary = re.search(r"(\d+) words annotated in 2 lines; (\d+) words without senses skipped", err)
    assert summary and int(summary.group(1)) == len(docs[0]["words"]) and int(summary.group(2)) >= 2  # qqq, zzz
    code, out, err = run_cli(capsys, "annotate", "the river bank was green", "--store", linked_store.store)
    assert code == 0 and "bank" in out and "words annotated" in err
    code, out, err = run_cli(capsys, "annotate", "--file", tmp_path / "missing.txt", "--store", linked_store.store)
    assert code == 1 and "does not exist" in err and "Traceback" not in err


def test_plot_legend_names_linked_and_induced_senses(linked_store):
    from sensekit.plot import _named

    with open_store(linked_store.store) as store:
        senses = store.senses("bank", view="lexical") + store.senses("river", view="lexical")
    names = [_named(s) for s in senses]
    assert any(
        n.startswith(("bank.n.01: sloping", "depository_financial_institution.n.01: a financial")) for n in names
    )
    assert all(n == "" or n.endswith("\n") for n in names)


def test_same_sense_combines_sense_probabilities_and_cosine():
    v = np.array([1.0, 0.0])
    a = Occurrence(0, 4, "bank", np.array([1, 2]), np.array([0.9, 0.1]), v)
    b = Occurrence(0, 4, "bank", np.array([1, 2]), np.array([0.9, 0.1]), v)
    c = Occurrence(0, 4, "bank", np.array([1, 2]), np.array([0.1, 0.9]), -v)
    assert same_sense(a, b) == pytest.approx(0.5 * 0.82 + 0.5 * 1.0)
    assert same_sense(a, c) == pytest.approx(0.5 * 0.18 + 0.5 * 0.0)
    assert same_sense(a, b, weight=1.0) > same_sense(a, c, weight=1.0)


def test_senses_named_from_wordnet_match_by_synset_across_words():
    """`banks` and `bank`, each named from WordNet on its own, number their candidates independently: the
    agreement and the hard answer compare synsets, not those numbers; store senses without one compare ids."""
    v = np.array([1.0, 0.0])
    bank = Occurrence(0, 4, "bank", np.array([-1, -2]), np.array([0.9, 0.1]), v, synsets=["bank.n.01", "bank.n.02"])
    banks = Occurrence(0, 5, "banks", np.array([-1, -2]), np.array([0.9, 0.1]), v, synsets=["bank.n.02", "bank.n.01"])
    assert sense_agreement(bank, banks) == pytest.approx(0.9 * 0.1 + 0.1 * 0.9) and not same_best(bank, banks)
    flipped = Occurrence(0, 5, "banks", np.array([-1, -2]), np.array([0.1, 0.9]), v, synsets=banks.synsets)
    assert sense_agreement(bank, flipped) == pytest.approx(0.82) and same_best(bank, flipped)
    induced = Occurrence(0, 4, "bank", np.array([7, 8]), np.array([0.3, 0.7]), v, synsets=[None, None])
    other = Occurrence(0, 4, "bank", np.array([8, 9]), np.array([0.6, 0.4]), v, synsets=[None, None])
    assert sense_agreement(induced, other) == pytest.approx(0.7 * 0.6) and same_best(induced, other)


def test_the_wic_metric_scores_annotates_senses_on_every_pair(linked_store, teacher_dir, tmp_path, wordnet_here):  # noqa: F811
    """Six pairs of a sentence with itself, three labelled same and three different: annotate answers "same"
    on all six (one state, one most probable sense), so its hard accuracy is exactly 0.5 at full coverage."""
    from helpers import TEXTS

    from sensekit.eval.config import EvalConfig
    from sensekit.eval.store_eval import evaluate_store
    from sensekit.model.teacher import load_teacher

    items = []
    for sentence, word in [(TEXTS[-3], "bank"), (TEXTS[-2], "bank"), (TEXTS[-1], "light")]:
        a = sentence.index(word)
        pos = {"start1": a, "end1": a + len(word), "start2": a, "end2": a + len(word)}
        for label in ("true", "false"):
            items.append({"word": word, "sentence1": sentence, "sentence2": sentence, **pos, "label": label})
    path = tmp_path / "self.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in items) + "\n", encoding="utf-8")
    cfg = EvalConfig(store=str(linked_store.store), wic=str(path), metrics=("wic",), device="cpu")
    teacher = load_teacher(str(teacher_dir), device="cpu")
    wic = evaluate_store(cfg, teacher=teacher)["metrics"]["wic"]
    entry = wic if wic.get("data") == "wic-file" else wic["wic_file"]
    a = entry["annotate"]
    assert a["status"] == "ok", a
    assert a["coverage"]["scored"] == 6 and a["accuracy"] == 0.5 and a["same_sense_rate"] == 1.0, a
    assert set(a["soft"]) == {"accuracy", "weight_per_fold"} and a["baseline"]["accuracy"] is not None


# -- the real teacher and WordNet: the targets on a make-demo store -------------------------------------
DEMO_STORE = os.environ.get("SENSEKIT_DEMO_STORE")


@pytest.mark.skipif(not DEMO_STORE, reason="set SENSEKIT_DEMO_STORE to a `make demo` store (needs the shared data)")
def test_demo_store_bank_targets(shared):
    if not Path(DEMO_STORE).is_dir():
        pytest.skip(f"{DEMO_STORE} is not a store")
    with open_store(DEMO_STORE, view="lexical") as store:
        synsets = {s.synset for s in store.senses("bank", view="lexical")}
        assert {"bank.n.01", "depository_financial_institution.n.01"} <= synsets
        a = Annotator.open(DEMO_STORE)
        (doc,) = a.annotate(["They pulled the canoe up onto the bank of the river."])
        a.close()
    bank = next(w for w in doc["words"] if w["text"] == "bank")
    assert bank["synset"] == "bank.n.01"


def test_serve_annotate_api_and_box(linked_store):
    pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx (pip install -e '.[test]')")
    from starlette.testclient import TestClient

    from sensekit.model.teacher import load_teacher
    from sensekit.serve import create_app

    with open_store(linked_store.store) as store:
        annotator = Annotator(store, load_teacher(store.meta["teacher"], "cpu"))
        with TestClient(create_app(linked_store.store, annotator=annotator.annotate), base_url="http://127.0.0.1") as c:
            r = c.get("/api/annotate", params={"text": "the river bank was green\nzzqx"})
            assert r.status_code == 200
            lines = r.json()["lines"]
            assert [x["text"] for x in lines] == ["the river bank was green", "zzqx"]
            assert any(w["text"] == "bank" and w["synset"] for w in lines[0]["words"])
            assert 'id="annotate"' in c.get("/").text
            doc = c.get("/api/word", params={"w": "bank", "view": "lexical"}).json()
            linked = [x for x in doc["senses"] if x["synset"]]
            assert linked and all(x["gloss"] and x["label"].startswith(x["synset"]) for x in linked)
            assert linked[0]["synset"] in c.get("/", params={"w": "bank", "view": "lexical"}).text
            bad = c.get("/api/annotate", params={"text": " "})
            assert bad.status_code == 400 and "give the text" in bad.json()["error"]
        with TestClient(create_app(linked_store.store), base_url="http://127.0.0.1") as c:  # no --annotate
            assert c.get("/api/annotate", params={"text": "bank"}).status_code == 404
            assert 'id="annotate"' not in c.get("/").text


@pytest.mark.parametrize("representation", ["first", "mean", "repeat"])
def test_annotate_states_are_the_occurrence_states(linked_store, representation):
    """One forward per line gives each word the state model.occurrence gives it alone (every representation)."""
    from sensekit.model.occurrence import occurrence_states
    from sensekit.model.teacher import load_teacher

    line = "money in the bank is safe, said the banker"
    spans = [(m.start(), m.end()) for m in __import__("re").finditer(r"[a-z]+", line)]
    with open_store(linked_store.store) as store:
        a = Annotator(store, load_teacher(store.meta["teacher"], "cpu"))
        a.representation = representation
        (ours,) = a._states([line], [spans])
        theirs, ok = occurrence_states(
            a.teacher, [line] * len(spans), [s[0] for s in spans], [s[1] for s in spans], a.layer, representation
        )
    assert ok.all()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


class _NamedLemma:
    def __init__(self, name, antonyms=()):
        self._name, self._antonyms = name, list(antonyms)

    def name(self):
        return self._name

    def antonyms(self):
        return [_NamedLemma(a) for a in self._antonyms]


class _RelationsWordNet:
    """Against the teacher's nearest senses on purpose: bank's sloping-land synset names `money` as a lemma,
    its financial one has `river` as an antonym."""

    LEMMAS = {
        "bank.n.01": [_NamedLemma("bank"), _NamedLemma("money")],
        "depository_financial_institution.n.01": [_NamedLemma("bank", antonyms=["river"])],
    }

    def synset(self, name):
        from nltk.corpus.reader.wordnet import WordNetError

        if name not in self.LEMMAS:
            raise WordNetError(name)
        lemmas = self.LEMMAS[name]
        return type("S", (), {"lemmas": lambda self: lemmas})()


def test_relations_of_a_linked_sense_attach_to_the_sense_its_synset_names(linked_store, tmp_path):
    import shutil

    from sensekit.lexicon.attach import attach_relations

    store = tmp_path / "s.sensekit"
    shutil.copytree(linked_store.store, store)  # the module's store stays as built
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("bank\tmoney\tsyn\nbank\triver\tant\n", encoding="utf-8")
    got = attach_relations(str(store), [f"pairs:{pairs}"], wordnet=_RelationsWordNet())
    assert got["attached_lexical_by_synset"] == 2, got
    with open_store(store, view="lexical") as s:
        sense_of = {x.synset: x.sense_index for x in s.senses("bank", view="lexical")}
        head = {r.related: r.head_sense for r in s.relations("bank", view="lexical")}
    assert head["money"] == sense_of["bank.n.01"]
    assert head["river"] == sense_of["depository_financial_institution.n.01"]
