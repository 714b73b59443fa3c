"""Relation pairs: the common currency of every lexicon reader, pair-list files, and normalisation.

A *pair* is `(word1, word2, kind, provenance)` with kind 'syn' or 'ant' and provenance a
dict (or None). Readers yield pairs one way round; `normalize` makes them symmetric,
drops self-pairs, optionally applies polarity normalisation, and deduplicates, giving the
column dict that `StoreWriter.replace_relations` takes.

Pair-list files (`read_pair_file`) hold one pair per line, `word1 <TAB> word2 <TAB> relation`
(whitespace-separated when a line has no tab). The relation is a name (`syn`, `synonym`,
`ant`, `antonym`, any case) or, with `binary_labels`, 0/1: `binary_labels='ant'` reads 1 as
antonym and 0 as synonym (AntSynNET), `'syn'` the other way round. Blank lines and lines
starting with `#` are ignored, and so is a header line (`word1 word2 relation`). Extra
columns after the third are ignored. A line that is not UTF-8, holds a NUL byte or is longer
than `MAX_LINE_BYTES` is a bad line (reported with its number, like any malformed line); a
truncated or corrupt compressed file is refused with the line it stopped at.
"""

from __future__ import annotations

import contextlib
import gc
import io
import lzma
import os
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator

from ..errors import InputError
from ..fs import open_compressed
from .sources import RelationSource, register

__all__ = [
    "Pair",
    "ReadReport",
    "read_pair_file",
    "normalize",
    "open_text",
    "open_binary",
    "paused_gc",
    "KINDS",
    "bounded_lines",
    "MAX_LINE_BYTES",
]

Pair = tuple[str, str, str, "dict[str, Any] | None"]
KINDS = ("syn", "ant")
_SIGN = {"syn": 1, "ant": -1}
_NAMES = {"syn": "syn", "synonym": "syn", "synonyms": "syn", "ant": "ant", "antonym": "ant", "antonyms": "ant"}
MAX_REPORTED_ERRORS = 50
MAX_LINE_BYTES = 10 << 20  # a longer line is a bad line (a file without newlines must not fill memory)
_READ_ERRORS = (OSError, EOFError, lzma.LZMAError, zlib.error)  # truncated or corrupt (compressed) files


@dataclass
class ReadReport:
    """What reading one source gave: counts, and the first bad lines (line number, message)."""

    source: str
    read: int = 0  # lines or entries read
    used: int = 0  # entries kept (language filter, ...)
    pairs: int = 0  # raw pairs yielded
    bad: int = 0  # malformed lines / entries skipped
    errors: list[tuple[int, str]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def error(self, line: int, message: str, on_error: str, path: str | os.PathLike = "") -> None:
        """Record a bad line; raise InputError right away when on_error == 'fail'."""
        self.bad += 1
        if on_error == "fail":
            raise InputError(f"{path}:{line}: {message} (use --on-error skip to skip bad lines)")
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append((line, message))

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "read": self.read,
            "used": self.used,
            "pairs": self.pairs,
            "bad": self.bad,
            "errors": [list(e) for e in self.errors],
            **self.extra,
        }


def check_on_error(on_error: str) -> None:
    if on_error not in ("skip", "fail"):
        raise InputError(f"on_error must be 'skip' or 'fail', got {on_error!r}")


def open_text(path: str | os.PathLike) -> io.TextIOBase:
    """A UTF-8 text stream over an input file, decompressed by its suffix (see `open_binary`)."""
    return io.TextIOWrapper(open_binary(path), encoding="utf-8", errors="replace")


def open_binary(path: str | os.PathLike) -> IO[bytes]:
    """A binary stream over an existing input file: plain, .gz, .bz2 or .xz/.lzma (`fs.open_compressed`)."""
    if not Path(path).is_file():
        raise InputError(f"file {Path(path)} does not exist")
    return open_compressed(path, "rb")


def bounded_lines(
    fh: IO[bytes], path: str | os.PathLike, limit: int = MAX_LINE_BYTES
) -> Iterator[tuple[int, bytes | None]]:
    """(line number, raw line) of a binary stream; None for a line longer than `limit` (skipped unread).

    A truncated or corrupt compressed file raises InputError naming the line where reading stopped.
    """
    n = 0
    try:
        while True:
            raw = fh.readline(limit + 1)
            if not raw:
                return
            n += 1
            if len(raw) > limit and not raw.endswith(b"\n"):
                while raw and not raw.endswith(b"\n"):  # drop the rest of the long line, a bounded piece at a time
                    raw = fh.readline(limit)
                yield n, None
                continue
            yield n, raw
    except _READ_ERRORS as exc:
        raise InputError(f"{path}:{n + 1}: cannot read on ({exc}); the file is truncated or corrupt") from None


def _decoded(raw: bytes | None) -> tuple[str | None, str | None]:
    """(text, None) for a good line; (None, why) for one that is too long, not UTF-8, or holds a NUL byte."""
    if raw is None:
        return None, f"line longer than {MAX_LINE_BYTES >> 20} MiB"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not valid UTF-8 (bytes {raw[exc.start : exc.start + 4].hex(' ')} at byte {exc.start + 1})"
    if "\x00" in text:
        return None, "NUL byte in the line"
    return text, None


def read_pair_file(
    path: str | os.PathLike,
    report: ReadReport | None = None,
    *,
    binary_labels: str | None = None,
    on_error: str = "skip",
) -> Iterator[Pair]:
    """Yield the pairs of a pair-list file (see the module docstring for the format)."""
    check_on_error(on_error)
    if binary_labels not in (None, "ant", "syn"):
        raise InputError(f"binary_labels must be 'ant' (1 = antonym) or 'syn' (1 = synonym), got {binary_labels!r}")
    report = report if report is not None else ReadReport(str(path))
    name = Path(path).name
    one, zero = ("ant", "syn") if binary_labels == "ant" else ("syn", "ant")
    with open_binary(path) as fh:
        for n, raw in bounded_lines(fh, path):
            line, why = _decoded(raw)
            if line is None:
                report.read += 1
                report.error(n, why, on_error, path)
                continue
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            report.read += 1
            parts = line.split("\t") if "\t" in line else line.split()
            if len(parts) < 3:
                report.error(n, f"expected 3 columns (word1, word2, relation), got {len(parts)}", on_error, path)
                continue
            w1, w2, label = parts[0].strip(), parts[1].strip(), parts[2].strip()
            key = label.lower()
            if binary_labels is not None and key in ("0", "1", "true", "false"):
                kind = one if key in ("1", "true") else zero
            elif binary_labels is None and key in _NAMES:
                kind = _NAMES[key]
            elif report.read == 1:  # a header line
                continue
            elif key in ("0", "1"):
                report.error(
                    n,
                    f"relation {label!r} is a 0/1 label; pass --binary-labels ant|syn to say what 1 means",
                    on_error,
                    path,
                )
                continue
            else:
                report.error(n, f"unknown relation {label!r} (expected syn/synonym/ant/antonym)", on_error, path)
                continue
            if not w1 or not w2:
                report.error(n, "empty word", on_error, path)
                continue
            report.used += 1
            report.pairs += 1
            yield w1, w2, kind, {"file": name, "line": n}


@contextlib.contextmanager
def paused_gc():
    """Pause the cyclic garbage collector around bulk work on acyclic data (tuples, dicts of
    strings): millions of allocations otherwise trigger collections that cost more than the work."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def normalize(
    pairs: Iterable[Pair],
    *,
    polarity: bool = False,
    known: Iterable[str] | None = None,
    polarizer: Callable[[str], tuple[str, int, tuple[str, ...]]] | None = None,
) -> dict[str, list]:
    """Symmetric, deduplicated relation rows: {head, related, kind, derived, provenance} columns.

    - Both directions of every pair are kept; self-pairs (same word up to case) are dropped.
    - With `polarity=True` each word is mapped through polarity.strip_negation against
      `known` (default: every word of the pairs); a remapped pair gets kind sign * p1 * p2,
      derived=True, and its provenance records the original pair and the stripped affixes.
    - One row per (head, related, kind): a row read directly wins over its mirror image,
      and both win over a derived row.
    """
    with paused_gc():
        return _normalize(list(pairs), polarity, known, polarizer)


def _normalize(pairs, polarity, known, polarizer) -> dict[str, list]:
    if polarity and polarizer is None:
        from .polarity import Polarizer

        vocab = set(known) if known is not None else set()
        if known is None:
            for a, b, _, _ in pairs:
                vocab.add(a)
                vocab.add(b)
        polarizer = Polarizer(vocab)
    direct: dict[tuple[str, str, str], tuple[bool, Any]] = {}
    mirrored: list[tuple[tuple[str, str, str], tuple[bool, Any]]] = []
    derived_rows: list[tuple[tuple[str, str, str], tuple[bool, Any]]] = []
    for a, b, kind, prov in pairs:
        if polarity:
            ba, pa, affa = polarizer(a)
            bb, pb, affb = polarizer(b)
            if pa < 0 or pb < 0:
                new_kind = "syn" if _SIGN[kind] * pa * pb > 0 else "ant"
                if ba.casefold() == bb.casefold():
                    continue
                p = dict(prov or {})
                p["original"] = [a, b, kind]
                p["polarity"] = {w: list(aff) for w, aff in ((a, affa), (b, affb)) if aff}
                derived_rows.append(((ba, bb, new_kind), (True, p)))
                derived_rows.append(((bb, ba, new_kind), (True, p)))
                continue
        if a.casefold() == b.casefold():
            continue
        direct.setdefault((a, b, kind), (False, prov))
        mirrored.append(((b, a, kind), (False, prov)))
    rows = direct
    for key, val in mirrored:
        rows.setdefault(key, val)
    for key, val in derived_rows:
        rows.setdefault(key, val)
    out: dict[str, list] = {"head": [], "related": [], "kind": [], "derived": [], "provenance": []}
    for (h, r, k), (d, p) in rows.items():
        out["head"].append(h)
        out["related"].append(r)
        out["kind"].append(k)
        out["derived"].append(d)
        out["provenance"].append(p)
    return out


def _read(path: str, cfg, report: ReadReport, vocabulary: set[str]) -> list[Pair]:
    """The pair-list relation source."""
    return list(read_pair_file(path, report, binary_labels=cfg.binary_labels, on_error=cfg.on_error))


register(
    RelationSource(
        "pairs",
        "pairs",
        re.compile(r"\.(tsv|txt|csv)(\.(gz|bz2|xz))?$", re.I),
        _read,
        lambda path: f"pairs:{Path(path).name}",
        "pairs:FILE.tsv",
    )
)
