"""`sensekit eval store` end to end on a tiny store that `sensekit build` made with a tiny random
Llama whose tokenizer (trained on the fly) puts a BOS before every text, as many real ones do.

The states the evaluation takes must be the very states the build filed: for every token
kept as one raw sample, the state `word_states` computes for its recorded context is the
stored sense (up to the reservoir's float16)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import CORPUS, WORDS

TEXTS = CORPUS + [
    "the river bank was green and the spring water was cold",
    "money in the bank is safe, said the banker with a smile",
    "a light breeze moved the light curtains in the dark room",
    "the bat and the ball were left by the fence in the spring",
]

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from sensekit.errors import InputError  # noqa: E402


def make_bos_teacher_dir(folder: Path, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """A random LlamaForCausalLM whose fast tokenizer prepends <|endoftext|> as BOS."""
    from conftest import train_tokenizer
    from tokenizers.processors import TemplateProcessing
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    raw = train_tokenizer()
    bos = raw.token_to_id("<|endoftext|>")
    raw.post_processor = TemplateProcessing(
        single="<|endoftext|> $A", pair="<|endoftext|> $A $B", special_tokens=[("<|endoftext|>", bos)]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=raw, bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<pad>"
    )
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id,
        bos_token_id=bos,
    )
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():  # a non-trivial final norm: "after the norm" is really tested
        model.model.norm.weight.uniform_(0.5, 1.5)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


def app():
    """The real command tree of `sensekit` (sensekit/cli/)."""
    from sensekit.cli import app

    return app


def invoke(*args: str):
    from typer.testing import CliRunner

    return CliRunner().invoke(app(), [str(a) for a in args])


@pytest.fixture(scope="session")
def bos_teacher_dir(tmp_path_factory) -> Path:
    return make_bos_teacher_dir(tmp_path_factory.mktemp("bos-teacher") / "tiny-llama")


@pytest.fixture(scope="session")
def bos_teacher(bos_teacher_dir):
    from sensekit.model.teacher import load_teacher

    return load_teacher(str(bos_teacher_dir), device="cpu")


@pytest.fixture(scope="session")
def eval_store(tmp_path_factory, bos_teacher_dir) -> Path:
    """Built by `sensekit build`: one file (document, window) per sentence; pair-list relations."""
    return build_eval_store(tmp_path_factory.mktemp("eval-store"), bos_teacher_dir)


@pytest.fixture(scope="session")
def loss_view_store(tmp_path_factory, bos_teacher_dir) -> Path:
    """The same, with the loss view only (--lexical-layer none): k-means senses, 2 for most tokens."""
    return build_eval_store(tmp_path_factory.mktemp("loss-store"), bos_teacher_dir, "--lexical-layer", "none")


def build_eval_store(folder: Path, bos_teacher_dir: Path, *extra) -> Path:
    corpus = folder / "corpus"
    corpus.mkdir()
    for i, text in enumerate(TEXTS):
        (corpus / f"{i:02d}.txt").write_text(text + "\n", encoding="utf-8")
    pairs = folder / "pairs.tsv"
    pairs.write_text(
        "happy\tglad\tsyn\nbig\tlarge\tsyn\nquick\tfast\tsyn\ngood\tbad\tant\nbig\tsmall\tant\nfast\tslow\tant\n",
        encoding="utf-8",
    )
    store = folder / "tiny.sensekit"
    res = invoke(
        "build",
        corpus,
        "--store",
        store,
        "--teacher",
        bos_teacher_dir,
        "--device",
        "cpu",
        "-k",
        "2",
        "-G",
        "6",
        "--seq-len",
        "64",
        "--batch-size",
        "4",
        "--relations",
        f"pairs:{pairs}",
        "--quiet",
        *extra,
    )
    assert res.exit_code == 0, res.output
    return store


def eval_files(folder: Path) -> dict[str, Path]:
    """A 4-pair WiC file and two 5-pair similarity files over CORPUS sentences and WORDS."""

    def item(word, s1, s2, label):
        a, b = s1.index(" " + word) + 1, s2.index(" " + word) + 1
        return {
            "word": word,
            "sentence1": s1,
            "sentence2": s2,
            "start1": a,
            "end1": a + len(word),
            "start2": b,
            "end2": b + len(word),
            "label": label,
        }

    wic = [
        item("bank", CORPUS[0], CORPUS[1], "false"),
        item("bat", CORPUS[2], CORPUS[3], "false"),
        item("light", CORPUS[4], CORPUS[5], "false"),
        item("bank", CORPUS[1], CORPUS[1], "true"),
    ]
    files = {"wic": folder / "wic.jsonl", "simlex": folder / "simlex.txt", "wordsim": folder / "wordsim.tsv"}
    files["wic"].write_text("\n".join(json.dumps(r) for r in wic) + "\n", encoding="utf-8")
    # every word but 'zebrafish' is one token that occurs after 3+ other tokens in TEXTS (so it has next-token
    # senses under the build's default --min-context 3)
    sim = "# comment\nhappy\tglad\t9\nsmall\ttiny\t8\nbad\tdark\t2\nbank\triver\t5\nquick\tzebrafish\t4\n"
    files["simlex"].write_text(sim, encoding="utf-8")
    files["wordsim"].write_text(sim, encoding="utf-8")
    return files


def test_states_are_the_states_the_build_filed(eval_store, bos_teacher):
    from sensekit.eval.senses import SenseTable, unit
    from sensekit.eval.states import teacher_prefix_and_pad, word_states
    from sensekit.store import open_store

    prefix, pad = teacher_prefix_and_pad(bos_teacher.tokenizer)
    assert len(prefix) == 1  # the BOS: sentences are framed as the build frames windows
    with open_store(eval_store, view="loss") as store:  # the post-norm states (the lexical view is layer N's)
        assert store.meta["key_mode"] == "next"
        # a sense of count 1 is one sample exactly (a raw sample, or a cluster of one)
        table = SenseTable.from_store(store)
        raw = [store.sense(int(i)) for i in table.sense_ids[table.counts == 1]]
        raw = [s for s in raw if s.contexts and s.contexts[0].mark_end > s.contexts[0].mark_start]  # not '\n' keys
        assert len(raw) > 20
        ctx = [s.contexts[0] for s in raw]
        states, ok = word_states(
            bos_teacher.final_hidden,
            bos_teacher.tokenizer,
            [c.snippet for c in ctx],
            [c.mark_start for c in ctx],
            [c.mark_end for c in ctx],
            "next",
            prefix,
            bos_teacher.hidden_size,
            device="cpu",
            pad_id=pad,
            min_context=store.meta["min_context"],
        )
        assert ok.all()
        cos = (unit(states) * unit(np.stack([s.embedding for s in raw]))).sum(1)
        assert cos.min() > 0.999, cos


def test_word_opening_a_sentence_has_no_next_state(bos_teacher):
    from sensekit.eval.states import locate, teacher_prefix_and_pad

    prefix, _ = teacher_prefix_and_pad(bos_teacher.tokenizer)
    text = ["bank of the river", "the bank of the river", "the bank"]
    rows, pos, ok = locate(bos_teacher.tokenizer, text, [0, 4, 4], [4, 8, 8], "next", prefix)
    tok = bos_teacher.tokenizer
    bank = tok(" bank", add_special_tokens=False)["input_ids"]
    assert ok.tolist() == [False, True, True]  # the state before 'bank' in row 0 would be the BOS state
    # [BOS, 'the'...] then cut after the position that predicts ' bank': later tokens cannot change it
    assert rows[1][0] == prefix[0] and tok.decode(rows[1][1:]) == "the" and pos[1] == len(rows[1]) - 1
    rows, pos, ok = locate(tok, text, [0, 4, 4], [4, 8, 8], "input", prefix)
    assert ok.all() and pos[0] == 1 and rows[1][pos[1]] == bank[0] and rows[2][-1] == bank[0]
    # the build's --min-context: 'the' is n >= 1 tokens before ' bank'; ask for n + 1 and only the long sentence stays
    n = len(rows[2]) - 2
    _, _, ok = locate(tok, text + ["the the bank"], [0, 4, 4, 8], [4, 8, 8, 12], "input", prefix, min_context=n + 1)
    assert ok.tolist() == [False, False, False, True]


def no_wordnet(folder: Path) -> Path:
    """An empty folder given as --wordnet: no WordNet, whatever NLTK_DATA says."""
    path = folder / "no-wordnet"
    path.mkdir(exist_ok=True)
    return path


def test_eval_store_end_to_end(eval_store, bos_teacher, tmp_path):
    from sensekit.eval.config import EvalConfig
    from sensekit.eval.store_eval import evaluate_store

    f = eval_files(tmp_path)
    cfg = EvalConfig(
        store=str(eval_store),
        wic=str(f["wic"]),
        simlex=str(f["simlex"]),
        wordsim=str(f["wordsim"]),
        wordnet=str(no_wordnet(tmp_path)),  # the WiC file alone (test_eval_heldout.py: the WordNet pairs)
        metrics=("wic", "similarity", "health"),
    )
    seen = []
    r = evaluate_store(
        cfg, progress=lambda stage, done, total, /, **info: seen.append((stage, done, total)), teacher=bos_teacher
    )
    assert seen == [("wic", 0, 3), ("similarity", 1, 3), ("health", 2, 3), ("done", 3, 3)]  # sensekit.progress
    wic = r["metrics"]["wic"]
    assert wic["status"] == "ok" and wic["data"] == "wic-file" and wic["coverage"]["total"] == 4
    assert wic["coverage"]["scored"] + sum(wic["excluded"].values()) == 4  # every pair scored or excluded once
    ctx = wic["in_store_context"]
    assert ctx["min_context"] == 3 and ctx["pairs"] <= wic["coverage"]["scored"]  # the build's default rule
    sim = r["metrics"]["similarity"]["simlex999"]
    # 'zebrafish' is not one token of the tiny tokenizer; 'river' has senses
    assert sim["coverage"] == {"scored": 4, "total": 5, "share": 0.8}
    assert set(sim) >= {"maxsim", "avgsim", "centroid", "baseline"}
    h = r["metrics"]["health"]
    assert h["coverage"]["scored"] == r["store"]["token_senses"] and h["duplicates"]["share"] == 0.0
    # the corpus repeats each sentence three times: identical states filed under the same token are not duplicates
    assert h["raw_tokens"]["k"] == 2 and h["anisotropy"]["pairs"] == cfg.anisotropy_pairs
    json.dumps(r)  # plain data


def test_wic_pairs_of_a_sentence_with_itself_are_all_same(loss_view_store, bos_teacher, tmp_path):
    """A known value: each word's state in a sentence, paired with itself, has one nearest sense, so the store
    answers "same" for every scored pair: accuracy 1.0 (and so does the cosine baseline, at cosine 1)."""
    from sensekit.eval.config import EvalConfig
    from sensekit.eval.store_eval import evaluate_store

    items = []
    for word in WORDS:
        sentence = next((c for c in CORPUS if f" {word} " in c), None)
        if sentence:
            a = sentence.index(f" {word} ") + 1
            pos = {"start1": a, "end1": a + len(word), "start2": a, "end2": a + len(word)}
            items.append({"word": word, "sentence1": sentence, "sentence2": sentence, **pos, "label": "true"})
    path = tmp_path / "self.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in items) + "\n", encoding="utf-8")
    cfg = EvalConfig(store=str(loss_view_store), wic=str(path), wordnet=str(no_wordnet(tmp_path)), metrics=("wic",))
    wic = evaluate_store(cfg, teacher=bos_teacher)["metrics"]["wic"]
    scored = wic["coverage"]["scored"]
    assert scored >= 3 and scored + sum(wic["excluded"].values()) == len(items), wic
    assert wic["accuracy"] == 1.0 and wic["same_sense_rate"] == 1.0


def test_cli_json_table_and_skips(eval_store, bos_teacher_dir, tmp_path, monkeypatch):
    f = eval_files(tmp_path)
    monkeypatch.setenv("SENSEKIT_SHARED", str(tmp_path / "no-shared"))  # no default benchmark files
    res = invoke(
        "eval",
        "store",
        "--store",
        eval_store,
        "--metrics",
        "wic",
        "--metrics",
        "similarity",
        "--simlex",
        f["simlex"],
        "--wordnet",
        no_wordnet(tmp_path),
        "--json",
    )
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    wic = r["metrics"]["wic"]  # neither WordNet nor a WiC file: the one metric that can skip for missing data
    assert wic["status"] == "skipped" and wic["reason"].startswith("WordNet is not available")
    assert wic["reason"].endswith("; and no WiC file: pass --wic FILE (WiC JSONL)")
    wordsim = r["metrics"]["similarity"]["wordsim353"]  # the copy shipped with sensekit
    assert wordsim["status"] == "ok" and wordsim["file"].endswith("wordsim353.tsv")
    assert r["metrics"]["similarity"]["simlex999"]["status"] == "ok"
    res = invoke("eval", "store", "--store", eval_store, "--wic", f["wic"], "--metrics", "wic,health")
    assert res.exit_code == 0, res.output
    assert "WiC accuracy" in res.stdout and "duplicate senses" in res.stdout


@pytest.mark.parametrize(
    "args, error",
    [
        (["--metrics", "colour"], "unknown; choose from"),
        (["--wic", "/no/such/file.jsonl"], "no such file"),
        (["--limit", "0"], "--limit must be >= 1"),
    ],
)
def test_cli_user_errors_are_sensekit_errors(eval_store, args, error):
    res = invoke("eval", "store", "--store", eval_store, *args)
    assert res.exit_code != 0 and isinstance(res.exception, InputError) and error in str(res.exception)


def test_missing_store_is_one_line_exit_2(tmp_path, capsys):
    from sensekit.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["eval", "store", "--store", str(tmp_path / "nothing.sensekit")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "no sensekit store" in err and "Traceback" not in err


def test_all_metrics_with_wordnet(loss_view_store, bos_teacher, shared, tmp_path):
    """Every metric runs and scores, purity included: in the loss view most words have 2 senses, and WordNet's
    held-out examples of several of them ('good', 'light', ...) span 2+ synsets."""
    from sensekit.eval.config import EvalConfig
    from sensekit.eval.store_eval import evaluate_store

    f = eval_files(tmp_path)
    r = evaluate_store(
        EvalConfig(
            store=str(loss_view_store),
            wic=str(f["wic"]),
            simlex=str(f["simlex"]),
            wordsim=str(f["wordsim"]),
            neighbour_words=5,
        ),
        teacher=bos_teacher,
    )
    n = r["metrics"]["neighbours"]
    assert n["status"] == "ok" and n["coverage"]["scored"] == 5 and n["coverage"]["neighbours_judged"] == 50
    p = r["metrics"]["purity"]
    assert p["status"] == "ok", p
    assert p["coverage"]["occurrences"] >= 4 and -1 <= p["ari"] <= 1 and 0 < p["purity"] <= 1


def test_plain_cosine_switch(eval_store, bos_teacher, tmp_path):
    """--cosine plain: every cosine of the stored vectors as they are (no similarity transform)."""
    from sensekit.eval.config import EvalConfig
    from sensekit.eval.store_eval import evaluate_store

    r = evaluate_store(EvalConfig(store=str(eval_store), metrics=("health",), cosine="plain"), teacher=bos_teacher)
    h = r["metrics"]["health"]["anisotropy"]
    assert r["store"]["space"] == {"kind": "identity"} and r["config"]["cosine"] == "plain"
    assert h["in_similarity_space"] == h["mean_cosine"]
    with pytest.raises(InputError, match="--cosine must be one of store-space, plain"):
        EvalConfig(store=str(eval_store), cosine="raw")


def test_view_all_reports_each_view_side_by_side(eval_store, bos_teacher, tmp_path, monkeypatch):
    """--view all: one run per view of the store, opened once, with the numbers of single-view runs, in one table."""
    import sensekit.store
    from sensekit.eval.config import EvalConfig
    from sensekit.eval.store_eval import evaluate_store, evaluate_views

    f = eval_files(tmp_path)
    cfg = EvalConfig(store=str(eval_store), wic=str(f["wic"]), metrics=("wic", "health"), view="all")
    opened = []
    real_open = sensekit.store.open_store
    monkeypatch.setattr(sensekit.store, "open_store", lambda *a, **k: opened.append(a) or real_open(*a, **k))
    both = evaluate_views(cfg, teacher=bos_teacher)
    assert len(opened) == 1  # every view's run reads the one open store
    monkeypatch.undo()
    assert list(both["views"]) == ["loss", "lexical"]
    for view, result in both["views"].items():
        alone = evaluate_store(EvalConfig(**{**cfg.to_dict(), "view": view}), teacher=bos_teacher)
        assert result["store"]["view"] == view
        assert result["metrics"]["health"] == {
            **alone["metrics"]["health"],
            "seconds": result["metrics"]["health"]["seconds"],
        }
    with pytest.raises(InputError, match="evaluate_views"):
        evaluate_store(cfg, teacher=bos_teacher)
    args = ("eval", "store", "--store", eval_store, "--metrics", "health", "--view", "all")
    res = invoke(*args, "--json")
    assert res.exit_code == 0, res.output
    assert list(json.loads(res.stdout)["views"]) == ["loss", "lexical"]
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    assert "lexical" in res.stdout and "duplicate" in res.stdout
