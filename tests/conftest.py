"""Shared fixtures: a tokenizer trained on the fly, a tiny Llama from config, small stores."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from sensekit.paths import shared_dir

CORPUS = [
    "the bank of the river was muddy after the spring flood",
    "she deposited money at the bank on monday morning",
    "a bat flew out of the cave at night",
    "he swung the bat and hit the ball over the fence",
    "turn on the light because the room is dark",
    "the box was light enough to carry with one hand",
    "good and bad are opposites while happy and glad are similar",
    "the spring in the mattress was broken so we bought a new one",
    "big large huge small tiny little quick fast slow",
]
WORDS = [
    "bank",
    "bat",
    "spring",
    "light",
    "good",
    "bad",
    "happy",
    "glad",
    "sad",
    "big",
    "large",
    "small",
    "river",
    "money",
    "ball",
    "dark",
    "quick",
    "fast",
    "slow",
    "huge",
    "tiny",
]


def train_tokenizer(vocab_size: int = 300):
    """A byte-level BPE trained on CORPUS, with every word in WORDS a single ' word' token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 20 + [" ".join(WORDS)] * 50, trainer)
    tok.add_tokens([" " + w for w in WORDS])
    return tok


def missing(reason: str) -> None:
    """Skip the test for want of `reason` on a user's machine; fail it under CI (CI=true, set by .ci/run),
    where `make test` installed everything and a skip would hide a broken set-up."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI must run this test, but: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def tok():
    """The trained test tokenizer (a `tokenizers.Tokenizer`)."""
    return train_tokenizer()


@pytest.fixture(scope="session")
def tokenizer_json(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    train_tokenizer().save(str(path))
    return path


@pytest.fixture(scope="session")
def shared() -> Path:
    """../shared (or $SENSEKIT_SHARED); skips the test on a user's machine without it."""
    path = shared_dir()
    if not (path / "data").is_dir():
        pytest.skip(f"shared data folder {path} is absent (set SENSEKIT_SHARED to run integration tests)")
    os.environ.setdefault("NLTK_DATA", str(path / "data" / "nltk_data"))
    return path


@pytest.fixture(scope="session")
def wiktextract():
    """wiktextract, importable: it loads NLTK's Brown corpus at import (from NLTK_DATA, NLTK's own folders, or
    the shared folder's nltk_data); skips with the reason and the install command when it cannot."""
    from sensekit.errors import MissingDependency
    from sensekit.lexicon.wiktionary_dump import _import_wiktextract

    try:
        _import_wiktextract()
    except MissingDependency as exc:
        pytest.skip(f"{exc} (the tiny-dump.xml tests need nothing else)")


def clustered(rng: np.random.Generator, centres: np.ndarray, n_per: int, noise: float = 0.01) -> np.ndarray:
    """[len(centres) * n_per, d] points drawn around the centres."""
    return (
        np.repeat(centres, n_per, axis=0) + noise * rng.standard_normal((len(centres) * n_per, centres.shape[1]))
    ).astype(np.float32)


# -- tiny teachers, stores and corpora (factories in helpers.py) ------------------------------------
@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    from helpers import make_tiny_teacher_dir

    return make_tiny_teacher_dir(tmp_path_factory.mktemp("tiny") / "teacher")


@pytest.fixture(scope="session")
def tiny(tiny_dir):
    from sensekit.model.teacher import load_teacher

    return load_teacher(str(tiny_dir), device="cpu")


@pytest.fixture
def text_corpus(tmp_path) -> Path:
    from helpers import TEXTS

    path = tmp_path / "corpus.txt"
    path.write_text("\n\n".join(TEXTS * 3) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def teacher_dir(tmp_path_factory) -> Path:
    from helpers import make_teacher_dir

    return make_teacher_dir(tmp_path_factory.mktemp("teacher") / "tiny-llama")


@pytest.fixture(scope="session")
def store_dir(tmp_path_factory, teacher_dir) -> Path:
    from helpers import make_store

    return make_store(tmp_path_factory.mktemp("store") / "tiny.sensekit", teacher_dir)


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory) -> Path:
    from helpers import write_corpus

    return write_corpus(tmp_path_factory.mktemp("corpus") / "train.txt")


@pytest.fixture(scope="session")
def teacher(teacher_dir):
    from sensekit.model.teacher import load_teacher

    return load_teacher(str(teacher_dir), device="cpu")


# -- the run's results behind the documentation's claims (tests/test_readme_claims.py) ---------------------
# Every collected test (before -k / -m deselection), the tests this session runs, each one's outcome, and
# the figures tests record with the `figure` fixture. test_readme_claims.py runs last and checks the
# reliability page against them; SENSEKIT_CLAIMS_OUT=FILE writes them as JSON at the end of the session.
RUN: dict = {"collected": set(), "selected": set(), "outcomes": {}, "figures": {}}


@pytest.fixture
def figure(request):
    """figure(name, value): a number this test asserted, which the documentation may cite."""

    def record(name: str, value: float) -> None:
        RUN["figures"].setdefault(request.node.nodeid, {})[name] = value

    return record


def pytest_itemcollected(item):
    RUN["collected"].add(item.nodeid)


def pytest_collection_finish(session):
    RUN["selected"] = {item.nodeid for item in session.items}


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """The claims check last, whatever the order (pytest-randomly shuffles first): it reads this run."""
    items.sort(key=lambda item: item.nodeid.startswith("tests/test_readme_claims.py"))


def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome != "passed":  # a failed set-up or teardown counts as failed
        if RUN["outcomes"].get(report.nodeid) != "failed":
            RUN["outcomes"][report.nodeid] = report.outcome


def pytest_sessionfinish(session):
    out = os.environ.get("SENSEKIT_CLAIMS_OUT")
    if out:
        Path(out).write_text(json.dumps({"outcomes": RUN["outcomes"], "figures": RUN["figures"]}))
