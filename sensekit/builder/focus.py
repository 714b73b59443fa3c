"""Focus words (`sensekit build --focus WORDS|FILE`): read the documents that contain them first.

A small `--max-tokens` budget read in corpus order fills the reservoirs of frequent tokens and
leaves a rare word such as "bank" with a handful of samples. With focus words, the corpus is
read in two passes that together yield every document exactly once, in a deterministic order:

1. the documents that contain a focus word (whole word, case-insensitive) not yet seen `enough`
   times, in corpus order, until every focus word has been seen `enough` times (or the corpus
   ends): a frequent focus word stops taking the budget once it has enough, a rare one keeps going;
2. every other document, in corpus order.

The order depends only on the corpus and the words, so the re-read of `contexts.fetch_documents`
(by ordinal) and `--resume` see the same stream. Reading a document costs its parse, so the
first pass stops early once the focus words are covered.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, Iterable, Iterator

from ..errors import InputError

__all__ = ["parse_focus", "FocusedDocs", "untokenizable"]

_FILE_SUFFIXES = (".txt", ".tsv", ".csv", ".lst", ".list", ".words")


def parse_focus(spec: str | None) -> tuple[str, ...]:
    """'light,plant,spring,bank' or a file with one word per line (comments after '#') -> the words, in order,
    without duplicates. A path that does not exist is an InputError (one line)."""
    if spec is None or not str(spec).strip():
        return ()
    spec = str(spec).strip()
    path = Path(spec).expanduser()
    if path.is_file():
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(
                f"--focus file {path} cannot be read ({exc.__class__.__name__}); give a UTF-8 word list"
            ) from None
        words = [w.strip() for line in lines for w in line.split("#", 1)[0].split(",")]
    elif os.sep in spec or spec.lower().endswith(_FILE_SUFFIXES) or path.is_dir():
        raise InputError(f"--focus file {path} does not exist; give a word list file or comma-separated words")
    else:
        words = [w.strip() for w in re.split(r"[,\s]+", spec)]
    out = tuple(dict.fromkeys(w for w in words if w))
    if not out:
        raise InputError(f"--focus {spec!r} holds no words")
    return out


def untokenizable(words: Iterable[str], tokenizer) -> list[str]:
    """The focus words that are not one token with a leading space: they can never be a key token."""
    return [w for w in words if len(tokenizer.encode(" " + w, add_special_tokens=False)) != 1]


class FocusedDocs:
    """docs(select=None) -> (doc_id, text), focus documents first (see the module docstring).

    `found` counts each focus word's occurrences in the documents of the first pass read so far;
    `missing()` lists the words no document read so far matched."""

    def __init__(self, docs: Callable[..., Iterable[tuple[str, str]]], words: tuple[str, ...], enough: int) -> None:
        self.docs, self.words, self.enough = docs, words, max(1, int(enough))
        self.pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)
        self.found: dict[str, int] = {}
        self.complete = False  # the first pass read the whole corpus

    def __call__(self, select=None) -> Iterator[tuple[str, str]]:
        # select is on this stream's ordinals; both passes read every document (the match needs the text)
        lower = {w.lower(): w for w in self.words}
        found = self.found = {w: 0 for w in self.words}  # live: a --max-tokens budget may stop the stream early
        matched: set[int] = set()
        complete = True
        for i, (doc_id, text) in enumerate(self.docs(None)):
            hits = [lower[h.lower()] for h in self.pattern.findall(text) if h.lower() in lower]
            if not any(found[w] < self.enough for w in hits):
                continue  # no focus word, or only words already seen `enough` times: read in the second pass
            for w in hits:
                found[w] += 1
            matched.add(i)
            yield doc_id, text
            if all(n >= self.enough for n in found.values()):
                complete = False
                break
        self.complete = complete
        for i, item in enumerate(self.docs(None)):
            if i not in matched:
                yield item

    def missing(self) -> list[str]:
        """Focus words no document of the first pass contained (all of the corpus when it ran to the end)."""
        return [w for w in self.words if self.found.get(w, 0) == 0]
