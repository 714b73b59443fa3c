"""Shared fixtures: a tokenizer trained on the fly, a tiny Llama from config, small stores."""

from __future__ import annotations

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


def clustered(rng: np.random.Generator, centres: np.ndarray, n_per: int, noise: float = 0.01) -> np.ndarray:
    """[len(centres) * n_per, d] points drawn around the centres."""
    return (
        np.repeat(centres, n_per, axis=0) + noise * rng.standard_normal((len(centres) * n_per, centres.shape[1]))
    ).astype(np.float32)
