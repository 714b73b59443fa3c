"""Raw MediaWiki Wiktionary dumps -> wiktextract entries (`dump_entries`) and kaikki JSONL (`extract`).

A `pages-articles.xml[.bz2]` is parsed with wiktextract 1.99.7 / wikitextprocessor 0.4.96, in
parallel worker processes. A dump sample has no Template: or Module: pages, so
wikitextprocessor would render every template as a `Template:NAME` link, and those leak into
the output as words. `STUBS` defines small bodies for the templates the linking and sense
machinery needs before `analyze_templates()` runs. wiktextract 1.99.7 also drops the
sense-level nym lines (`#: {{syn|en|a|b}}`, `#: {{ant|en|c}}`) as if they were usage examples;
they are moved onto their gloss line first (`hoist_nym_lines`), where wiktextract's own
sense-linkage code reads them into that sense's synonyms / antonyms. It also files
"Alternative forms" sections (spelling variants) under synonyms; here they go to `related`.

The language captured follows the kaikki reader's rule (`kaikki.in_language`): every
language whose code or name matches `lang_code`, case-insensitively.

wiktextract needs `setuptools<81` and NLTK's Brown corpus at import time (set NLTK_DATA).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import time
from pathlib import Path
from typing import Any, Iterator

from ..errors import InputError, MissingDependency
from ..fs import open_compressed, swap_into_place, temp_sibling
from .kaikki import in_language, wanted_language
from .sources import RelationSource, register

__all__ = ["STUBS", "family_stub", "hoist_nym_lines", "dump_entries", "extract"]


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


_LINK = "{{{2|}}}"  # {{l|en|word|alt}}: the linked word itself
_Q = "({{{1|}}})"  # {{q|informal}}
_LB = "(" + _join_args(2) + ")"  # {{lb|en|slang|dated}}
_NYMS = _join_args(2)  # {{syn|en|a|b|c}} wherever it is expanded, not read

# Template bodies defined before analyze_templates(). Names a dump sample uses whose real
# rendering is a link, a label or a sense marker; everything that the link and sense
# parsers see must render as plain text, or it comes out as a `Template:NAME` word.
STUBS: dict[str, str] = {
    # links and mentions
    "l": _LINK,
    "link": _LINK,
    "ll": _LINK,
    "l-self": _LINK,
    "L": _LINK,
    "l-lite": _LINK,
    "m": _LINK,
    "mention": _LINK,
    "m-self": _LINK,
    "m-lite": _LINK,
    "w": "{{{2|{{{1|}}}}}}",
    "wikipedia": "",
    "pedia": "",
    "wp": "{{{2|{{{1|}}}}}}",
    "vern": "{{{1|}}}",
    "taxlink": "{{{1|}}}",
    "taxfmt": "{{{1|}}}",
    "alter": _join_until_empty(2),
    "alt": _join_until_empty(2),
    # nym templates (wiktextract reads these itself where it looks for them)
    "syn": _NYMS,
    "ant": _NYMS,
    "synonyms": _NYMS,
    "antonyms": _NYMS,
    "hyp": _NYMS,
    "hyper": _NYMS,
    "hypernyms": _NYMS,
    "hyponyms": _NYMS,
    "cot": _NYMS,
    "coord": _NYMS,
    "mer": _NYMS,
    "hol": _NYMS,
    "syn-lite": _NYMS,
    "ant-lite": _NYMS,
    # sense markers, qualifiers, labels, glosses
    "sense": "({{{1|}}}):",
    "s": "({{{1|}}}):",
    "senseno": "({{{2|}}}):",
    "q": _Q,
    "qualifier": _Q,
    "qual": _Q,
    "i": _Q,
    "qf": _Q,
    "q-lite": _Q,
    "qualifier-lite": _Q,
    "gloss": "(“{{{1|}}}”)",
    "gl": "(“{{{1|}}}”)",
    "gloss-lite": "(“{{{1|}}}”)",
    "lb": _LB,
    "lbl": _LB,
    "label": _LB,
    "term-label": _LB,
    "tlb": _LB,
    # usage examples (wiktextract drops examples when not capturing them)
    "ux": "{{{2|}}}",
    "uxi": "{{{2|}}}",
    "usex": "{{{2|}}}",
    # layout and maintenance templates inside relation sections
    "checksense": "",
    "rel-top": "",
    "rel-mid": "",
    "rel-mid3": "",
    "rel-mid4": "",
    "rel-bottom": "",
    "der-top": "",
    "der-mid": "",
    "der-mid3": "",
    "der-bottom": "",
    "top2": "",
    "top3": "",
    "mid2": "",
    "mid3": "",
    "bottom": "",
    "attention": "",
    "rfe": "",
    "rfex": "",
    "rfv-sense": "",
    "rfd-sense": "",
    "rfquotek": "",
    "rfdate": "",
    "defdate": "",
    "senseid": "",
    "anchor": "",
    "-": "",
    "topics": "",
    "c": "",
    "C": "",
    "cln": "",
    "catlangname": "",
    "wikispecies": "",
    "slim-wikipedia": "",
    "see": "{{{1|}}}",
    "see also": "{{{1|}}}",
    "smallcaps": "{{{1|}}}",
    "nowrap": "{{{1|}}}",
    "g": "",
    "sup": "{{{1|}}}",
    "sub": "{{{1|}}}",
}

STUBS.update(
    {
        "seeSynonyms": "",
        "seeMoreCites": "",
        "projectlink": "",
        "langcat": "",
        "langlist": "",
        "pedialite": "",
        "specieslite": "",
        "wikispecieslite": "",
        "commonslite": "",
        "lookfrom": "",
        "pos": "",
        "pos a": "",
        "lang": "{{{2|}}}",
        "rfc-sense": "",
        "rfclarify": "",
        "rfm-sense": "",
        "rfi": "",
    }
)

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
    r"(?:[^{}]|\{\{[^{}]*\}\})*\}\}\s*)+)$"
)
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

        # NLTK reads NLTK_DATA once, at its first import: a folder named after that (here, or by the user
        # before an earlier import) must be added to its path by hand
        for folder in filter(None, os.environ.get("NLTK_DATA", "").split(os.pathsep)):
            if folder not in nltk.data.path:
                nltk.data.path.append(folder)
        # wiktextract calls nltk.download("brown") at import: never reach for the network from
        # here. Without the corpus its next line raises LookupError, answered below.
        download = nltk.download
        nltk.download = lambda *args, **kwargs: False
        try:
            with (
                contextlib.redirect_stdout(io.StringIO()),
                contextlib.redirect_stderr(io.StringIO()),
                warnings.catch_warnings(),
            ):
                warnings.simplefilter("ignore")  # pkg_resources deprecation
                import wikitextprocessor  # noqa: F401
                import wiktextract  # noqa: F401
        finally:
            nltk.download = download
        _silence_debug_dump_file()
    except ImportError as exc:
        raise MissingDependency(
            f"parsing Wiktionary dumps needs wiktextract==1.99.7 and wikitextprocessor==0.4.96 with setuptools<81 "
            f"({exc}); pip install 'wiktextract==1.99.7' 'wikitextprocessor==0.4.96' 'setuptools<81'"
        ) from None
    except LookupError as exc:
        raise MissingDependency(
            "wiktextract needs NLTK's Brown corpus: python -m nltk.downloader brown, "
            "or set NLTK_DATA to a folder holding corpora/brown.zip"
        ) from exc
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
    """The language names wiktextract should capture: those `kaikki.in_language` keeps (None: every one)."""
    want = wanted_language(lang_code)
    if want is None:
        return None
    from wiktextract.datautils import languages_by_code

    names = sorted({info["name"] for code, info in languages_by_code.items() if in_language(want, code, info["name"])})
    if not names:
        raise InputError(
            f"unknown Wiktionary language {lang_code!r}; use a code such as en, fr, de or a name such as English"
        )
    return names


def _worker_count(processes: int | None) -> int:
    """Parser processes: `processes`, else the CPU count; 1 where workers cannot fork."""
    if processes is not None and processes < 1:
        raise InputError(f"processes must be >= 1, got {processes}")
    import multiprocessing

    n_proc = processes or os.cpu_count() or 1
    if n_proc > 1 and multiprocessing.get_start_method(allow_none=False) != "fork":
        n_proc = 1  # wikitextprocessor's workers inherit the parser state by fork (not on macOS/Windows)
    return n_proc


_LOOP = '<strong class="error">Template loop detected: [[Template:{}]]</strong>'


def _stubbed_wtp(Wtp):
    """A Wtp that notes the template names pages use while it collects them (phase 1) and,
    just before analyze_templates(), defines family stubs for those the dump lacks. It also
    refuses template loops as MediaWiki does: a template met again inside its own expansion
    becomes an error marker. wikitextprocessor only caps the depth (100), so a template that calls
    itself twice would expand 2^100 times and hang the parser."""

    class StubbedWtp(Wtp):
        def expand(self, text, parent=None, pre_expand=False, template_fn=None, *rest, **kwargs):
            def loop_safe(name, args):
                # the template being expanded was just pushed on expand_stack: seen below it = a loop
                stack = self.expand_stack
                if stack and stack[-1] in stack[:-1]:
                    return _LOOP.format(stack[-1])
                return template_fn(name, args) if template_fn is not None else None

            return super().expand(text, parent, pre_expand, loop_safe, *rest, **kwargs)

        def add_page(self, model, title, text, transient=False):
            model = model or "wikitext"  # an export without <model> elements (wikitextprocessor asserts a str)
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


def dump_entries(
    path: str | os.PathLike,
    *,
    processes: int | None = None,
    lang_code: str | None = "en",
    full: bool = False,
    stats: dict[str, Any] | None = None,
) -> Iterator[dict[str, Any]]:
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

    n_proc = _worker_count(processes)
    config = WiktionaryConfig(
        capture_languages=_language_names(lang_code),
        capture_translations=full,
        capture_pronunciation=full,
        capture_linkages=True,
        capture_compounds=full,
        capture_redirects=False,
        capture_examples=full,
        capture_etymologies=full,
        capture_inflections=full,
    )
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
        stats.update(
            processes=n_proc,
            pages=n_pages,
            entries=n_entries,
            seconds=time.perf_counter() - t0,
            page_errors=errors,
            failed_pages=failed + sink.getvalue().count("=== EXCEPTION"),
        )
        tmp = getattr(ctx, "tmp_file", None)
        if tmp is not None:
            with contextlib.suppress(Exception):
                tmp.close()


def extract(
    dump: str | os.PathLike,
    out: str | os.PathLike,
    *,
    lang_code: str | None = None,
    processes: int | None = None,
    full: bool = True,
) -> dict[str, Any]:
    """Parse `dump` with wiktextract and write its entries to `out` as JSONL (kaikki format;
    .gz/.bz2/.xz by suffix), atomically. Returns pages, entries, seconds, synonyms, antonyms."""
    import orjson

    out = Path(out)
    if out.parent and not out.parent.exists():
        raise InputError(f"output folder {out.parent} does not exist")
    tmp = temp_sibling(out)
    stats: dict[str, Any] = {}
    syn = ant = 0
    try:
        with open_compressed(tmp, "wb", compression_of=out) as fh:
            for entry in dump_entries(dump, processes=processes, lang_code=lang_code, full=full, stats=stats):
                for s in entry.get("senses") or ():
                    syn += len(s.get("synonyms") or ())
                    ant += len(s.get("antonyms") or ())
                syn += len(entry.get("synonyms") or ())
                ant += len(entry.get("antonyms") or ())
                fh.write(orjson.dumps(entry))
                fh.write(b"\n")
        swap_into_place(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return {**stats, "synonyms": syn, "antonyms": ant, "out": str(out)}


def _read(path: str, cfg, report, vocabulary: set[str]) -> list:
    """The raw Wiktionary dump relation source: parsed with wiktextract (report.read = pages parsed)."""
    from .kaikki import entries_pairs

    stats: dict[str, Any] = {}
    entries = dump_entries(path, processes=cfg.processes, lang_code=cfg.lang_code, stats=stats)
    pairs = list(entries_pairs(entries, report, lang_code=cfg.lang_code, vocabulary=vocabulary))
    report.read = stats.get("pages", report.read)  # `used` counts the entries kept
    report.extra.update(dump_seconds=round(stats.get("seconds", 0.0), 1), failed_pages=stats.get("failed_pages", 0))
    return pairs


register(
    RelationSource(
        "dump",
        "wiktionary",
        re.compile(r"\.xml(\.(bz2|gz))?$", re.I),
        _read,
        lambda path: "wiktionary",
        "FILE.xml.bz2 (Wiktionary dump)",
    )
)
