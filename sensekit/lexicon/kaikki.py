"""kaikki.org / wiktextract JSONL -> relation pairs (the main Wiktionary path).

One wiktextract entry per line, plain or .gz/.bz2/.xz/.lzma, read as a stream and parsed with
orjson. Every line is checked against the entry schema (`wiktextract_schema`). A malformed
line is reported with its line number; `on_error='skip'` counts it and goes on, `'fail'`
raises InputError.

Languages follow one rule (`in_language`), also used by the dump parser to pick what it
captures: a language is named by its code or its name, case-insensitively (`en` or
`English`); None, '', 'all' or '*' keep every language.

Pairs come from each sense's `synonyms` / `antonyms` and from the entry-level lists. The
provenance keeps the headword's entry (`entry`, `pos`), which of its senses the link came
from (`sense_index`, 0-based, and `sense_id` when wiktextract gave one) and that sense's
`gloss`; an entry-level link with a `sense` string gets it as its gloss, and the sense
whose gloss it matches as its `sense_index`.
"""

from __future__ import annotations

import os
import re
from typing import Any, Iterable, Iterator

from .pairs import MAX_LINE_BYTES, Pair, ReadReport, bounded_lines, check_on_error, open_binary, paused_gc
from .sources import RelationSource, register
from .wiktextract_schema import SCHEMA_NAME, validate_entry

__all__ = [
    "EVERY_LANGUAGE",
    "wanted_language",
    "in_language",
    "iter_kaikki",
    "entry_pairs",
    "entries_pairs",
    "kaikki_pairs",
]

EVERY_LANGUAGE = ("", "all", "*")  # lang_code values (besides None) that keep every language
_NAMESPACE_STRIP = ("Thesaurus:", "Wikisaurus:")
_NAMESPACE_DROP = re.compile(r"^(Template|Category|Appendix|Module|Citations|Wiktionary|Index|File|Image|Help|Rhymes):")


# -- the language rule ----------------------------------------------------------------------------
def wanted_language(lang_code: str | None) -> str | None:
    """The key the language rule compares: `lang_code` lower-cased, or None for every language."""
    if lang_code is None:
        return None
    key = lang_code.strip().lower()
    return None if key in EVERY_LANGUAGE else key


def in_language(want: str | None, code: str | None, name: str | None) -> bool:
    """Whether a language with this `code` and `name` is the one `wanted_language` gave (None: any)."""
    return want is None or (code or "").lower() == want or (name or "").lower() == want


# -- JSONL ----------------------------------------------------------------------------------------
def iter_kaikki(
    path: str | os.PathLike, report: ReadReport | None = None, *, on_error: str = "skip", lang_code: str | None = "en"
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, entry) for every valid entry of `lang_code` (None: every language)."""
    check_on_error(on_error)
    report = report if report is not None else ReadReport(str(path))
    validate_entry(None)  # compile the schema once, before the stream starts
    # JSON trees hold no reference cycles, yet allocating millions of containers keeps the
    # cyclic collector busy (about half the time of a read): pause it while the stream runs.
    # The previous state comes back when the generator finishes, fails or is closed.
    with paused_gc():
        yield from _kaikki_lines(path, report, on_error, wanted_language(lang_code))


def _kaikki_lines(path, report: ReadReport, on_error: str, want: str | None) -> Iterator[tuple[int, dict[str, Any]]]:
    import orjson

    loads, validate = orjson.loads, validate_entry
    with open_binary(path) as fh:
        for n, line in bounded_lines(fh, path):  # a truncated .bz2/.gz raises InputError with its line
            if line is None:
                report.read += 1
                report.error(n, f"line longer than {MAX_LINE_BYTES >> 20} MiB", on_error, path)
                continue
            if not line.strip():
                continue
            report.read += 1
            try:
                entry = loads(line)
            except orjson.JSONDecodeError as exc:
                report.error(n, f"not valid JSON ({exc})", on_error, path)
                continue
            err = validate(entry)
            if err:
                report.error(n, f"does not match {SCHEMA_NAME}: {err}", on_error, path)
                continue
            if not in_language(want, entry.get("lang_code"), entry.get("lang")):
                continue
            report.used += 1
            yield n, entry


def _clean_word(word: str) -> str | None:
    w = word.strip()
    for prefix in _NAMESPACE_STRIP:
        if w.startswith(prefix):
            w = w[len(prefix) :].strip()
    if not w or _NAMESPACE_DROP.match(w):
        return None
    return w


def _gloss(sense: dict[str, Any]) -> str | None:
    g = sense.get("glosses") or sense.get("raw_glosses")
    return g[-1] if g else None


def _match_sense(senses: list[dict[str, Any]], text: str) -> int | None:
    """The index of the sense whose gloss best matches an entry-level link's `sense` string."""
    t = text.strip().lower().rstrip(".:")
    if len(t) < 3:
        return None
    for i, s in enumerate(senses):
        g = (_gloss(s) or "").lower()
        if g.startswith(t) or t in g:
            return i
    return None


def entry_pairs(entry: dict[str, Any], line: int | None = None) -> Iterator[Pair]:
    """The (headword, linked word, 'syn'|'ant', provenance) pairs of one wiktextract entry."""
    head = _clean_word(entry["word"])
    if head is None:
        return
    pos = entry.get("pos")
    senses = entry.get("senses") or ()
    for si, sense in enumerate(senses):
        gloss = None
        for field, kind in (("synonyms", "syn"), ("antonyms", "ant")):
            links = sense.get(field)
            if not links:
                continue
            if gloss is None:
                gloss = _gloss(sense)
            for link in links:
                w = _clean_word(link["word"])
                if w is None:
                    continue
                prov: dict[str, Any] = {"gloss": gloss, "entry": head, "pos": pos, "sense_index": si}
                if sense.get("id"):
                    prov["sense_id"] = sense["id"]
                if link.get("tags"):
                    prov["tags"] = link["tags"]
                if line is not None:
                    prov["line"] = line
                yield head, w, kind, prov
    for field, kind in (("synonyms", "syn"), ("antonyms", "ant")):
        for link in entry.get(field) or ():
            w = _clean_word(link["word"])
            if w is None:
                continue
            prov = {"entry": head, "pos": pos}
            sense_text = link.get("sense")
            if sense_text:
                prov["gloss"] = sense_text
                si = _match_sense(senses, sense_text)
                if si is not None:
                    prov["sense_index"] = si
            if link.get("tags"):
                prov["tags"] = link["tags"]
            if line is not None:
                prov["line"] = line
            yield head, w, kind, prov


def entries_pairs(
    entries: Iterable[dict[str, Any]],
    report: ReadReport | None = None,
    *,
    lang_code: str | None = "en",
    vocabulary: set[str] | None = None,
) -> Iterator[Pair]:
    """Pairs of already-parsed entries (e.g. from `dump_entries`), filtered by `lang_code`."""
    report = report if report is not None else ReadReport("entries")
    want = wanted_language(lang_code)
    for entry in entries:
        report.read += 1
        err = validate_entry(entry)
        if err:
            report.error(report.read, err, "skip")
            continue
        if not in_language(want, entry.get("lang_code"), entry.get("lang")):
            continue
        report.used += 1
        if vocabulary is not None:
            vocabulary.add(entry["word"])
        for p in entry_pairs(entry):
            report.pairs += 1
            yield p


def kaikki_pairs(
    path: str | os.PathLike,
    report: ReadReport | None = None,
    *,
    lang_code: str | None = "en",
    on_error: str = "skip",
    vocabulary: set[str] | None = None,
) -> Iterator[Pair]:
    """Pairs of a kaikki / wiktextract JSONL file (streamed; see `iter_kaikki`)."""
    report = report if report is not None else ReadReport(str(path))
    for n, entry in iter_kaikki(path, report, on_error=on_error, lang_code=lang_code):
        if vocabulary is not None:
            vocabulary.add(entry["word"])
        for p in entry_pairs(entry, n):
            report.pairs += 1
            yield p


def _read(path: str, cfg, report: ReadReport, vocabulary: set[str]) -> list[Pair]:
    """The kaikki.org / wiktextract JSONL relation source."""
    with paused_gc():
        return list(kaikki_pairs(path, report, lang_code=cfg.lang_code, on_error=cfg.on_error, vocabulary=vocabulary))


register(
    RelationSource(
        "kaikki",
        "wiktionary",
        re.compile(r"\.(jsonl|json|ndjson)(\.(gz|bz2|xz))?$", re.I),
        _read,
        lambda path: "wiktionary",
        "FILE.jsonl[.gz|.bz2] (kaikki/wiktextract)",
    )
)
