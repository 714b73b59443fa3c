"""Wiktionary: kaikki.org / wiktextract JSONL (the main path), and raw MediaWiki dumps.

**JSONL** (`iter_kaikki`, `kaikki_pairs`). One wiktextract entry per line, plain or
.gz/.bz2/.xz, read as a stream and parsed with orjson. Every line is checked against
`schemas/wiktextract-entry.schema.json` (the fields read here): the schema is compiled
once into straight-line Python (a yes/no check), and only a failing line goes through
the slower validator that names the offending field. A malformed line is reported with its line number; `on_error='skip'`
counts it and goes on, `'fail'` raises InputError. Entries are filtered by `lang_code`.

Pairs come from each sense's `synonyms` / `antonyms` and from the entry-level lists. The
provenance keeps the headword's entry (`entry`, `pos`), which of its senses the link came
from (`sense_index`, 0-based, and `sense_id` when wiktextract gave one) and that sense's
`gloss`; an entry-level link with a `sense` string gets it as its gloss, and the sense
whose gloss it matches as its `sense_index`.

**Dumps** (`dump_entries`, `extract`). A `pages-articles.xml[.bz2]` is parsed with
wiktextract 1.99.7 / wikitextprocessor 0.4.96, in parallel worker processes. A dump
sample has no Template: or Module: pages, so wikitextprocessor would render every
template as a `Template:NAME` link, and those leak into the output as words. `STUBS`
defines small bodies for the templates the linking and sense machinery needs before
`analyze_templates()` runs. wiktextract 1.99.7 also drops the sense-level nym lines
(`#: {{syn|en|a|b}}`, `#: {{ant|en|c}}`) as if they were usage examples; they are moved
onto their gloss line first (`hoist_nym_lines`), where wiktextract's own sense-linkage
code reads them into that sense's synonyms / antonyms. It also files "Alternative forms"
sections (spelling variants) under synonyms; here they go to `related` instead.

wiktextract needs `setuptools<81` and NLTK's Brown corpus at import time (set NLTK_DATA).
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..errors import InputError, MissingDependency
from .pairs import Pair, ReadReport, check_on_error, open_binary

__all__ = [
    "SCHEMA_NAME", "load_schema", "compile_validator", "compile_fast_check", "validate_entry", "iter_kaikki",
    "entry_pairs", "entries_pairs", "kaikki_pairs", "STUBS", "family_stub", "hoist_nym_lines", "dump_entries",
    "extract",
]

SCHEMA_NAME = "wiktextract-entry.schema.json"
_NAMESPACE_STRIP = ("Thesaurus:", "Wikisaurus:")
_NAMESPACE_DROP = re.compile(r"^(Template|Category|Appendix|Module|Citations|Wiktionary|Index|File|Image|Help|Rhymes):")


# -- the schema and its validator -------------------------------------------------------------
def load_schema() -> dict[str, Any]:
    from ..paths import schema_text

    return json.loads(schema_text(SCHEMA_NAME))


_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _type_name(v: Any) -> str:
    return {str: "string", list: "array", dict: "object", bool: "boolean", int: "integer", float: "number",
            type(None): "null"}.get(type(v), type(v).__name__)


def compile_validator(schema: dict[str, Any]) -> Callable[[Any], str | None]:
    """Compile the JSON-Schema subset the entry schema uses (type, required, properties, items,
    minLength, local $ref) into nested closures. The validator returns None for a valid
    value, else a one-line message naming the offending path."""
    defs = schema.get("$defs", {})
    compiled: dict[str, Callable[[Any, str], str | None]] = {}

    def build(node: dict[str, Any]) -> Callable[[Any, str], str | None]:
        if "$ref" in node:
            ref = node["$ref"]
            if not ref.startswith("#/$defs/"):
                raise ValueError(f"unsupported $ref {ref}")
            name = ref[len("#/$defs/"):]
            if name not in compiled:
                compiled[name] = lambda v, p: None  # placeholder for recursion
                compiled[name] = build(defs[name])
            return lambda v, p: compiled[name](v, p)
        checks: list[Callable[[Any, str], str | None]] = []
        typ = node.get("type")
        if typ is not None:
            names = typ if isinstance(typ, list) else [typ]
            fns = [_TYPES[t] for t in names]
            want = " or ".join(names)
            if len(fns) == 1:
                f = fns[0]
                checks.append(lambda v, p: None if f(v) else f"{p or 'entry'}: expected {want}, got {_type_name(v)}")
            else:
                checks.append(lambda v, p: None if any(f(v) for f in fns) else f"{p or 'entry'}: expected {want}, got {_type_name(v)}")
        if "minLength" in node:
            n = node["minLength"]
            checks.append(lambda v, p: f"{p}: shorter than {n} character(s)" if isinstance(v, str) and len(v) < n else None)
        required = tuple(node.get("required", ()))
        if required:
            def req(v, p, required=required):
                if isinstance(v, dict):
                    for r in required:
                        if r not in v:
                            return f"{p + '.' if p else ''}{r}: required field missing"
                return None
            checks.append(req)
        props = {k: build(s) for k, s in node.get("properties", {}).items()}
        if props:
            items_ = tuple(props.items())

            def properties(v, p, items_=items_):
                if isinstance(v, dict):
                    for key, fn in items_:
                        if key in v:
                            err = fn(v[key], f"{p}.{key}" if p else key)
                            if err:
                                return err
                return None
            checks.append(properties)
        if "items" in node:
            item_fn = build(node["items"])

            def items(v, p, item_fn=item_fn):
                if isinstance(v, list):
                    for i, x in enumerate(v):
                        err = item_fn(x, f"{p}[{i}]")
                        if err:
                            return err
                return None
            checks.append(items)
        checks_t = tuple(checks)
        if len(checks_t) == 1:
            return checks_t[0]

        def all_checks(v, p, checks_t=checks_t):
            for c in checks_t:
                err = c(v, p)
                if err:
                    return err
            return None
        return all_checks

    root = build(schema)
    return lambda value: root(value, "")


_PY_TYPES = {"string": "str", "array": "list", "object": "dict", "boolean": "bool", "null": "type(None)"}


def compile_fast_check(schema: dict[str, Any]) -> Callable[[Any], bool]:
    """The same schema subset compiled to straight-line Python source (exec'd once): True
    when a value is valid. It only answers yes/no, fast; `compile_validator` says why not."""
    defs = schema.get("$defs", {})
    lines = ["def check(v0):"]
    counter = [0]

    def emit(node: dict[str, Any], var: str, indent: int, depth: int) -> None:
        if depth > 12:
            raise ValueError("schema nests too deeply for the fast checker")
        if "$ref" in node:
            node = defs[node["$ref"][len("#/$defs/"):]]
        pad = "    " * indent
        typ = node.get("type")
        if typ is not None:
            names = typ if isinstance(typ, list) else [typ]
            conds = []
            for t in names:
                if t == "integer":
                    conds.append(f"(type({var}) is int)")
                elif t == "number":
                    conds.append(f"(type({var}) in (int, float))")
                else:
                    conds.append(f"(type({var}) is {_PY_TYPES[t]})")
            lines.append(f"{pad}if not ({' or '.join(conds)}): return False")
        if "minLength" in node:
            lines.append(f"{pad}if type({var}) is str and len({var}) < {int(node['minLength'])}: return False")
        if node.get("required"):
            lines.append(f"{pad}if type({var}) is dict:")
            for r in node["required"]:
                lines.append(f"{pad}    if {r!r} not in {var}: return False")
        props = node.get("properties", {})
        if props:
            lines.append(f"{pad}if type({var}) is dict:")
            for key, sub in props.items():
                counter[0] += 1
                child = f"v{counter[0]}"
                lines.append(f"{pad}    {child} = {var}.get({key!r}, _MISSING)")
                lines.append(f"{pad}    if {child} is not _MISSING:")
                before = len(lines)
                emit(sub, child, indent + 2, depth + 1)
                if len(lines) == before:
                    lines.append(f"{pad}        pass")
        if "items" in node:
            counter[0] += 1
            child = f"v{counter[0]}"
            lines.append(f"{pad}if type({var}) is list:")
            lines.append(f"{pad}    for {child} in {var}:")
            before = len(lines)
            emit(node["items"], child, indent + 2, depth + 1)
            if len(lines) == before:
                lines.append(f"{pad}        pass")

    emit(schema, "v0", 1, 0)
    lines.append("    return True")
    namespace: dict[str, Any] = {"_MISSING": object()}
    exec(compile("\n".join(lines), f"<{SCHEMA_NAME} fast check>", "exec"), namespace)
    return namespace["check"]


_VALIDATOR: Callable[[Any], str | None] | None = None
_FAST: Callable[[Any], bool] | None = None


def validate_entry(entry: Any) -> str | None:
    """None when `entry` satisfies the entry schema, else the first problem (one line)."""
    global _VALIDATOR, _FAST
    if _FAST is None:
        schema = load_schema()
        _VALIDATOR = compile_validator(schema)
        _FAST = compile_fast_check(schema)
    if _FAST(entry):
        return None
    return _VALIDATOR(entry) or "does not match the schema"


# -- JSONL ----------------------------------------------------------------------------------------
def iter_kaikki(path: str | os.PathLike, report: ReadReport | None = None, *, on_error: str = "skip",
                lang_code: str | None = "en") -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, entry) for every valid entry of `lang_code` (None: every language)."""
    import orjson

    check_on_error(on_error)
    report = report if report is not None else ReadReport(str(path))
    validate = validate_entry
    validate(None)  # compile once
    loads = orjson.loads
    want = lang_code.lower() if lang_code else None
    # JSON trees hold no reference cycles, yet allocating millions of containers keeps the
    # cyclic collector busy (about half the time of a read): pause it while the stream runs.
    # The previous state comes back when the generator finishes, fails or is closed.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield from _kaikki_lines(path, report, on_error, loads, validate, want)
    finally:
        if gc_was_enabled:
            gc.enable()


def _kaikki_lines(path, report, on_error, loads, validate, want):
    import orjson

    with open_binary(path) as fh:
        for n, line in enumerate(fh, 1):
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
            if want is not None:
                code = entry.get("lang_code")
                if code is None:
                    lang = entry.get("lang")
                    if lang is None or lang.lower() != want:
                        continue
                elif code.lower() != want and (entry.get("lang") or "").lower() != want:
                    continue
            report.used += 1
            yield n, entry


def _clean_word(word: str) -> str | None:
    w = word.strip()
    for prefix in _NAMESPACE_STRIP:
        if w.startswith(prefix):
            w = w[len(prefix):].strip()
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


def entries_pairs(entries: Iterable[dict[str, Any]], report: ReadReport | None = None, *,
                  lang_code: str | None = "en", vocabulary: set[str] | None = None) -> Iterator[Pair]:
    """Pairs of already-parsed entries (e.g. from `dump_entries`), filtered by `lang_code`."""
    report = report if report is not None else ReadReport("entries")
    want = lang_code.lower() if lang_code else None
    for entry in entries:
        report.read += 1
        err = validate_entry(entry)
        if err:
            report.error(report.read, err, "skip")
            continue
        if want is not None and (entry.get("lang_code") or "").lower() != want and (entry.get("lang") or "").lower() != want:
            continue
        report.used += 1
        if vocabulary is not None:
            vocabulary.add(entry["word"])
        for p in entry_pairs(entry):
            report.pairs += 1
            yield p


def kaikki_pairs(path: str | os.PathLike, report: ReadReport | None = None, *, lang_code: str | None = "en",
                 on_error: str = "skip", vocabulary: set[str] | None = None) -> Iterator[Pair]:
    """Pairs of a kaikki / wiktextract JSONL file (streamed; see `iter_kaikki`)."""
    report = report if report is not None else ReadReport(str(path))
    for n, entry in iter_kaikki(path, report, on_error=on_error, lang_code=lang_code):
        if vocabulary is not None:
            vocabulary.add(entry["word"])
        for p in entry_pairs(entry, n):
            report.pairs += 1
            yield p


# -- raw dumps through wiktextract ----------------------------------------------------------------
def _join_args(first: int, last: int = 12) -> str:
    """Wikitext that renders template args first..last joined by ', '."""
    body = "{{{%d|}}}" % first
    for i in range(first + 1, last + 1):
        body += "{{#if:{{{%d|}}}|, {{{%d}}}}}" % (i, i)
    return body


def _join_until_empty(first: int, last: int = 12) -> str:
    """Args first.. joined by ', ', stopping at the first empty one ({{alter|en|a|b||dated}}:
    the args after the empty one are labels, not words)."""
    body = ""
    for i in range(last, first, -1):
        body = "{{#if:{{{%d|}}}|, {{{%d}}}%s}}" % (i, i, body)
    return "{{{%d|}}}" % first + body


_LINK = "{{{2|}}}"                          # {{l|en|word|alt}}: the linked word itself
_Q = "({{{1|}}})"                            # {{q|informal}}
_LB = "(" + _join_args(2) + ")"              # {{lb|en|slang|dated}}
_NYMS = _join_args(2)                        # {{syn|en|a|b|c}} wherever it is expanded, not read

# Template bodies defined before analyze_templates(). Names a dump sample uses whose real
# rendering is a link, a label or a sense marker; everything that the link and sense
# parsers see must render as plain text, or it comes out as a `Template:NAME` word.
STUBS: dict[str, str] = {
    # links and mentions
    "l": _LINK, "link": _LINK, "ll": _LINK, "l-self": _LINK, "L": _LINK, "l-lite": _LINK,
    "m": _LINK, "mention": _LINK, "m-self": _LINK, "m-lite": _LINK,
    "w": "{{{2|{{{1|}}}}}}", "wikipedia": "", "pedia": "", "wp": "{{{2|{{{1|}}}}}}",
    "vern": "{{{1|}}}", "taxlink": "{{{1|}}}", "taxfmt": "{{{1|}}}",
    "alter": _join_until_empty(2), "alt": _join_until_empty(2),
    # nym templates (wiktextract reads these itself where it looks for them)
    "syn": _NYMS, "ant": _NYMS, "synonyms": _NYMS, "antonyms": _NYMS, "hyp": _NYMS, "hyper": _NYMS,
    "hypernyms": _NYMS, "hyponyms": _NYMS, "cot": _NYMS, "coord": _NYMS, "mer": _NYMS, "hol": _NYMS,
    "syn-lite": _NYMS, "ant-lite": _NYMS,
    # sense markers, qualifiers, labels, glosses
    "sense": "({{{1|}}}):", "s": "({{{1|}}}):", "senseno": "({{{2|}}}):",
    "q": _Q, "qualifier": _Q, "qual": _Q, "i": _Q, "qf": _Q, "q-lite": _Q, "qualifier-lite": _Q,
    "gloss": "(“{{{1|}}}”)", "gl": "(“{{{1|}}}”)", "gloss-lite": "(“{{{1|}}}”)",
    "lb": _LB, "lbl": _LB, "label": _LB, "term-label": _LB, "tlb": _LB,
    # usage examples (wiktextract drops examples when not capturing them)
    "ux": "{{{2|}}}", "uxi": "{{{2|}}}", "usex": "{{{2|}}}",
    # layout and maintenance templates inside relation sections
    "checksense": "", "rel-top": "", "rel-mid": "", "rel-mid3": "", "rel-mid4": "", "rel-bottom": "",
    "der-top": "", "der-mid": "", "der-mid3": "", "der-bottom": "", "top2": "", "top3": "", "mid2": "",
    "mid3": "", "bottom": "", "attention": "", "rfe": "", "rfex": "", "rfv-sense": "", "rfd-sense": "",
    "rfquotek": "", "rfdate": "", "defdate": "", "senseid": "", "anchor": "", "-": "", "topics": "",
    "c": "", "C": "", "cln": "", "catlangname": "", "wikispecies": "", "slim-wikipedia": "",
    "see": "{{{1|}}}", "see also": "{{{1|}}}", "smallcaps": "{{{1|}}}", "nowrap": "{{{1|}}}",
    "g": "", "sup": "{{{1|}}}", "sub": "{{{1|}}}",
}

STUBS.update({
    "seeSynonyms": "", "seeMoreCites": "", "projectlink": "", "langcat": "", "langlist": "", "pedialite": "",
    "specieslite": "", "wikispecieslite": "", "commonslite": "", "lookfrom": "", "pos": "", "pos a": "",
    "lang": "{{{2|}}}", "rfc-sense": "", "rfclarify": "", "rfm-sense": "", "rfi": "",
})

# Families of templates a dump sample uses without defining them: navigation lists
# ({{list:days of the week|en}}) render as nothing; language-specific link templates
# ({{ja-r|...}}, {{ko-l|...}}, {{l/fro|...}}, {{l-nn|...}}) render as their first argument.
_FAMILY_STUBS = (
    (re.compile(r"^list:"), ""),
    (re.compile(r"^(?:.+ Hypernyms|pos(?:[ _].*)?|g2|katharevousa|Latin letter names of the Roman alphabet)$"), ""),
    (re.compile(r"^(?:[a-z]{2,3}(?:-[a-z]+)?-(?:l|r|link|m)|[lm][-/][a-z]{2,3}(?:-[a-z]+)?)$"), "{{{1|}}}"),
)
_TEMPLATE_USE = re.compile(r"\{\{\s*([^{}|\n]+?)\s*[|}]")


def family_stub(name: str) -> str | None:
    """The stub body for a template name of a known family, else None."""
    for pattern, body in _FAMILY_STUBS:
        if pattern.match(name):
            return body
    return None


# `#: {{syn|en|a|b}}` (any depth): a nym line under a gloss.
_NYM_LINE = re.compile(
    r"^(#+):\s*((?:\{\{\s*(?:syn|ant|synonyms|antonyms|syn-lite|ant-lite)\s*\|"
    r"(?:[^{}]|\{\{[^{}]*\}\})*\}\}\s*)+)$")
_GLOSS_LINE = re.compile(r"^(#+)(?![#:*])")


def hoist_nym_lines(text: str) -> str:
    """Move each `#: {{syn|...}}` / `#: {{ant|...}}` line onto the end of the gloss line it
    belongs to (the nearest earlier `#`-line of the same depth in the same section), where
    wiktextract's sense parser reads it. Lines it cannot place stay where they are."""
    if "{{syn" not in text and "{{ant" not in text:
        return text
    lines = text.split("\n")
    out: list[str] = []
    last_gloss: dict[int, int] = {}
    for line in lines:
        if line.startswith("="):
            last_gloss.clear()
        elif line.startswith("#"):
            m = _NYM_LINE.match(line)
            if m:
                depth = len(m.group(1))
                at = last_gloss.get(depth)
                if at is not None and out[at].count("{{") == out[at].count("}}"):
                    out[at] = out[at].rstrip() + " " + m.group(2).strip()
                    continue
            else:
                g = _GLOSS_LINE.match(line)
                if g:
                    depth = len(g.group(1))
                    last_gloss[depth] = len(out)
                    for deeper in [d for d in last_gloss if d > depth]:
                        del last_gloss[deeper]
        out.append(line)
    return "\n".join(out)


def _import_wiktextract():
    nltk_data = os.environ.get("NLTK_DATA")
    if not nltk_data:
        from ..paths import shared_dir

        candidate = shared_dir() / "data" / "nltk_data"
        if candidate.is_dir():
            os.environ["NLTK_DATA"] = str(candidate)
    try:
        import warnings

        import nltk

        # wiktextract calls nltk.download("brown") at import: never reach for the network from
        # here. Without the corpus its next line raises LookupError, answered below.
        download = nltk.download
        nltk.download = lambda *args, **kwargs: False
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                    warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pkg_resources deprecation
                import wikitextprocessor  # noqa: F401
                import wiktextract  # noqa: F401
        finally:
            nltk.download = download
        _silence_debug_dump_file()
    except ImportError as exc:
        raise MissingDependency(
            f"parsing Wiktionary dumps needs wiktextract==1.99.7 and wikitextprocessor==0.4.96 with setuptools<81 "
            f"({exc}); pip install 'wiktextract==1.99.7' 'wikitextprocessor==0.4.96' 'setuptools<81'") from None
    except LookupError as exc:
        raise MissingDependency("wiktextract needs NLTK's Brown corpus: python -m nltk.downloader brown, "
                                "or set NLTK_DATA to a folder holding corpora/brown.zip") from exc
    return wikitextprocessor, wiktextract


def _silence_debug_dump_file() -> None:
    """wiktextract 1.99.7's inflection parser writes every table it sees to `temp.XXX` in the
    current directory (leftover debug code). Send that file to os.devnull: a module-level `open`
    shadows the builtin for that module only."""
    import builtins

    from wiktextract import inflection

    def _open(file, *args, **kwargs):
        return builtins.open(os.devnull if file == "temp.XXX" else file, *args, **kwargs)

    inflection.open = _open


def _language_names(lang_code: str | None) -> list[str] | None:
    if lang_code is None:
        return None
    from wiktextract.datautils import languages_by_code, languages_by_name

    if lang_code in languages_by_code:
        return [languages_by_code[lang_code]["name"]]
    if lang_code in languages_by_name:
        return [lang_code]
    raise InputError(f"unknown Wiktionary language code {lang_code!r}; use a code such as en, fr, de")


def _stubbed_wtp(Wtp):
    """A Wtp that notes the template names pages use while it collects them (phase 1) and,
    just before analyze_templates(), defines family stubs for those the dump lacks."""

    class StubbedWtp(Wtp):
        def add_page(self, model, title, text, transient=False):
            if model == "wikitext" and not title.startswith("Template:"):
                used = self.__dict__.setdefault("_used_templates", set())
                used.update(m.strip() for m in _TEMPLATE_USE.findall(text))
            return super().add_page(model, title, text, transient)

        def analyze_templates(self):
            for name in sorted(self.__dict__.get("_used_templates", ())):
                body = family_stub(name)
                if body is None:
                    continue
                key = self._canonicalize_template_name("Template:" + name)
                if key not in self.templates:
                    self.templates[key] = body
            return super().analyze_templates()

    return StubbedWtp


def dump_entries(path: str | os.PathLike, *, processes: int | None = None, lang_code: str | None = "en",
                 full: bool = False, stats: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Parse a MediaWiki Wiktionary dump with wiktextract and yield its entries (dicts in
    wiktextract's JSONL format). `processes` worker processes parse pages in parallel
    (default: the CPU count; 1 parses in this process). `lang_code` picks the language
    captured (None: every language). `full=False` captures only senses and relations
    (fast); `full=True` also translations, pronunciations, etymologies, examples and forms.
    `stats` (a dict) receives pages, entries, seconds and page_errors. wiktextract's own
    console output is suppressed."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Wiktionary dump {path} does not exist")
    _wtp, _wx = _import_wiktextract()
    from wikitextprocessor import Wtp
    from wiktextract import WiktionaryConfig
    from wiktextract.thesaurus import extract_thesaurus_data
    from wiktextract.wiktionary import page_handler

    if processes is not None and processes < 1:
        raise InputError(f"processes must be >= 1, got {processes}")
    n_proc = processes or os.cpu_count() or 1
    import multiprocessing

    if n_proc > 1 and multiprocessing.get_start_method(allow_none=False) != "fork":
        n_proc = 1  # wikitextprocessor's workers inherit the parser state by fork (not on macOS/Windows)
    languages = _language_names(lang_code)
    config = WiktionaryConfig(
        capture_languages=languages, capture_translations=full, capture_pronunciation=full,
        capture_linkages=True, capture_compounds=full, capture_redirects=False, capture_examples=full,
        capture_etymologies=full, capture_inflections=full)
    stats = stats if stats is not None else {}
    t0 = time.perf_counter()
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        ctx = _stubbed_wtp(Wtp)(num_threads=n_proc, quiet=True)
        for name, body in STUBS.items():
            ctx.add_page("wikitext", "Template:" + name, body)
        ctx.process(str(path), lambda model, title, text: None, phase1_only=True)
        thesaurus_data = extract_thesaurus_data(ctx, config)
    config_kwargs = config.to_kwargs()
    # wiktextract 1.99.7 files "Alternative forms" sections (spelling variants such as
    # banck/bancke for bank) under synonyms; they are not synonyms, so they go to `related`.
    # Set before the worker processes fork, restored when the parse ends.
    from wiktextract import page as _page

    saved_alt = _page.linkage_map.get("alternative forms")
    _page.linkage_map["alternative forms"] = "related"

    def handler(model, title, text):
        if model == "wikitext" and text:
            text = hoist_nym_lines(text)
        return page_handler(ctx, model, title, text, None, config_kwargs, thesaurus_data)

    n_pages = sum(1 for _, title in ctx.page_seq if not title.startswith("Template:"))
    n_entries = 0
    errors = 0
    failed = 0
    try:
        results = ctx.reprocess(handler)
        while True:
            # Only wiktextract's own work runs with stdout captured, never the consumer's code.
            with contextlib.redirect_stdout(sink):
                try:
                    ret, page_stats = next(results)
                except StopIteration:
                    break
            failed += sink.getvalue().count("=== EXCEPTION")
            sink.seek(0)
            sink.truncate()
            errors += len(page_stats.get("errors", ()) or ())
            for entry in ret:
                if "redirect" in entry and "word" not in entry:
                    continue
                n_entries += 1
                yield entry
    finally:
        if saved_alt is not None:
            _page.linkage_map["alternative forms"] = saved_alt
        stats.update(processes=n_proc, pages=n_pages, entries=n_entries, seconds=time.perf_counter() - t0,
                     page_errors=errors, failed_pages=failed + sink.getvalue().count("=== EXCEPTION"))
        tmp = getattr(ctx, "tmp_file", None)
        if tmp is not None:
            with contextlib.suppress(Exception):
                tmp.close()


def _open_out(path: Path, name: str):
    name = name.lower()
    if name.endswith(".gz"):
        import gzip

        return gzip.open(path, "wb")
    if name.endswith(".bz2"):
        import bz2

        return bz2.open(path, "wb")
    return open(path, "wb")


def extract(dump: str | os.PathLike, out: str | os.PathLike, *, lang_code: str | None = None,
            processes: int | None = None, full: bool = True) -> dict[str, Any]:
    """Parse `dump` with wiktextract and write its entries to `out` as JSONL (kaikki format;
    .gz/.bz2 by suffix), atomically. Returns pages, entries, seconds, synonyms, antonyms."""
    import orjson

    out = Path(out)
    if out.parent and not out.parent.exists():
        raise InputError(f"output folder {out.parent} does not exist")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    stats: dict[str, Any] = {}
    syn = ant = 0
    try:
        with _open_out(tmp, out.name) as fh:
            for entry in dump_entries(dump, processes=processes, lang_code=lang_code, full=full, stats=stats):
                for s in entry.get("senses") or ():
                    syn += len(s.get("synonyms") or ())
                    ant += len(s.get("antonyms") or ())
                syn += len(entry.get("synonyms") or ())
                ant += len(entry.get("antonyms") or ())
                fh.write(orjson.dumps(entry))
                fh.write(b"\n")
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return {**stats, "synonyms": syn, "antonyms": ant, "out": str(out)}
