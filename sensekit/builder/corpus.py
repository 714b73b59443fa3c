"""Streaming corpus readers and the window packer. Nothing here loads a corpus into memory.

`iter_documents(paths)` yields `(doc_id, text)` from, by path:
- plain text (`.txt`, `.md`, anything unrecognised; `.gz`/`.bz2`/`.xz` compressed too),
  split into documents at blank lines (a document is capped at ~1 MB of text);
- JSONL (`.jsonl`, `.ndjson`, `.json` lines, compressed too) with a text field;
- MediaWiki XML dumps (`.xml`, `.xml.bz2`), article namespace only, markup stripped;
- Hugging Face `datasets` folders written by `save_to_disk`;
- folders (recursively, sorted) and globs of any of the above.
(The offline default corpus, WordNet's glosses, is read by `wordnet_corpus`.)

Text must be UTF-8: a byte sequence that is not UTF-8, or a NUL byte in a plain-text file (a
binary or UTF-16 file), is refused with its file and line number rather than silently replaced,
so a wrong file never becomes a store of replacement characters. A JSONL line over
`MAX_JSONL_LINE` (10 MiB) is refused too: it is almost always a file without newlines.

`pack_windows()` tokenizes documents into windows of at most `seq_len` tokens, keeping the
character span of every token so that contexts can be cut out of the document later.
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import lzma
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ..errors import InputError, MissingDependency
from ..fs import open_compressed, strip_compression

__all__ = [
    "iter_documents",
    "resolve_paths",
    "corpus_fingerprint",
    "pack_windows",
    "special_prefix",
    "Window",
    "DOC_CHAR_CAP",
]

DOC_CHAR_CAP = 1_000_000  # plain-text documents are cut at the next blank line past this
MAX_JSONL_LINE = 10 << 20  # characters; a longer JSONL line is refused (a file without newlines?)
_JSONL = (".jsonl", ".ndjson", ".json")
_XML = (".xml",)


# -- paths --------------------------------------------------------------------------------
def _is_hf_dataset(path: Path) -> bool:
    return path.is_dir() and (
        (path / "dataset_info.json").is_file()
        or (path / "state.json").is_file()
        or (path / "dataset_dict.json").is_file()
    )


def resolve_paths(paths: Iterable[str]) -> list[Path]:
    """Expand globs and folders into a sorted, de-duplicated list of files / HF dataset folders."""
    out: list[Path] = []
    for raw in paths:
        raw = os.path.expanduser(str(raw))
        matches = sorted(glob.glob(raw, recursive=True)) if glob.has_magic(raw) else [raw]
        if not matches:
            raise InputError(f"corpus path {raw!r} matches no file; check the glob or pass a file or folder")
        for m in matches:
            p = Path(m)
            if not p.exists():
                raise InputError(f"corpus path {p} does not exist; pass a text/JSONL/XML file, a folder or a glob")
            if _is_hf_dataset(p) or p.is_file():
                out.append(p)
            elif p.is_dir():
                found = sorted(
                    f
                    for f in p.rglob("*")
                    if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts)
                )
                # a folder that holds HF dataset folders: take those as units, not their arrow files
                sub = sorted({d for d in p.rglob("*") if _is_hf_dataset(d)})
                sub = [d for d in sub if not any(u in d.parents for u in sub)]  # a DatasetDict, not also its splits
                for d in sub:
                    found = [f for f in found if d not in f.parents and f.parent != d]
                out.extend(sorted(found + sub))
    seen: set[Path] = set()
    uniq = []
    for p in out:
        if p not in seen:
            seen.add(p)
            uniq.append(p)
    return uniq


def _format_of(path: Path) -> str:
    """'text' | 'jsonl' | 'xml' | 'hf', by the suffix under any compression suffix."""
    if path.is_dir():
        return "hf"
    last = Path(strip_compression(path.name)).suffix.lower()
    if last in _JSONL:
        return "jsonl"
    if last in _XML:
        return "xml"
    return "text"


def _open_text(path: Path, errors: str = "strict") -> io.TextIOWrapper:
    """UTF-8 text over a plain or compressed file (universal newlines, as `open`)."""
    return io.TextIOWrapper(open_compressed(path, "rb"), encoding="utf-8", errors=errors)


def _not_utf8(path: Path) -> InputError:
    """The error for a file that failed UTF-8 decoding, with the exact line: the decoder reads in chunks,
    so the failing line is found again by a binary re-scan (only on this error path)."""
    with open_compressed(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad = raw[exc.start : exc.start + 4].hex(" ")
                return InputError(
                    f"{path}:{lineno}: not valid UTF-8 (bytes {bad} at byte {exc.start + 1} of the "
                    "line); convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)"
                )
    return InputError(f"{path}: not valid UTF-8; convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)")


def corpus_fingerprint(paths: list[Path], text_field: str) -> str:
    """sha256 over each input's name, size and content (files up to 64 MB whole; larger: head and tail)."""
    h = hashlib.sha256(f"text_field={text_field}".encode())
    for p in paths:
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        for f in files:
            size = f.stat().st_size
            h.update(f"{f.name}:{size}".encode())
            with open(f, "rb") as fh:
                if size <= 64 << 20:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        h.update(chunk)
                else:
                    h.update(fh.read(1 << 20))
                    fh.seek(size - (1 << 20))
                    h.update(fh.read())
    return h.hexdigest()[:32]


# -- readers ------------------------------------------------------------------------------
def _read_text(path: Path, label: str) -> Iterator[tuple[str, str]]:
    """Documents = blank-line separated blocks, merged up to DOC_CHAR_CAP; doc id = 'file:first_line'."""
    with _open_text(path) as fh:
        buf: list[str] = []
        size = 0
        start = 1
        lines = enumerate(fh, 1)
        while True:
            try:
                lineno, line = next(lines)
            except StopIteration:
                break
            except UnicodeDecodeError:
                raise _not_utf8(path) from None
            if "\x00" in line:
                raise InputError(
                    f"{path}:{lineno}: NUL byte in a text file (binary? UTF-16?); give UTF-8 text"
                ) from None
            if not buf:
                start = lineno
            buf.append(line)
            size += len(line)
            if size >= DOC_CHAR_CAP and not line.strip():
                text = "".join(buf).strip()
                if text:
                    yield f"{label}:{start}", text
                buf, size = [], 0
        text = "".join(buf).strip()
        if text:
            yield f"{label}:{start}", text


def _read_jsonl(path: Path, label: str, text_field: str) -> Iterator[tuple[str, str]]:
    with _open_text(path) as fh:
        lineno = 0
        while True:
            try:
                line = fh.readline(MAX_JSONL_LINE + 1)  # bounded: a file without newlines must not fill memory
            except UnicodeDecodeError:
                raise _not_utf8(path) from None
            if not line:
                break
            lineno += 1
            if len(line) > MAX_JSONL_LINE:
                raise InputError(
                    f"{path}:{lineno}: line longer than {MAX_JSONL_LINE >> 20} MiB; JSONL needs one "
                    "JSON object per line (is it a JSON array, or a file without newlines?)"
                )
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{lineno}: malformed JSON line ({exc.msg} at column {exc.colno})") from None
            if not isinstance(obj, dict):
                raise InputError(f"{path}:{lineno}: expected a JSON object per line, got {type(obj).__name__}")
            if text_field not in obj:
                keys = ", ".join(list(obj)[:8])
                raise InputError(f"{path}:{lineno}: no field {text_field!r} (fields: {keys}); pass --text-field")
            text = obj[text_field]
            if text is None:
                continue
            if not isinstance(text, str):
                raise InputError(f"{path}:{lineno}: field {text_field!r} is {type(text).__name__}, not a string")
            doc_id = obj.get("id")
            yield (str(doc_id) if doc_id is not None else f"{label}:{lineno}"), text


_DROP_LINKS = re.compile(r"^(file|image|category|media)\s*:", re.I)
_BLANKS = re.compile(r"\n\s*\n+")
_SPACES = re.compile(r"[ \t]+")


def wikitext_to_text(wikitext: str) -> str:
    """Plain prose from wikitext: templates, refs, tables, files and categories removed."""
    import mwparserfromhell

    code = mwparserfromhell.parse(wikitext)
    for link in code.filter_wikilinks(recursive=False):
        if _DROP_LINKS.match(str(link.title).strip()):
            try:
                code.remove(link)
            except ValueError:
                pass
    for tag in code.filter_tags(recursive=False):
        if str(tag.tag).lower() in ("ref", "table", "gallery", "math", "timeline", "score", "syntaxhighlight"):
            try:
                code.remove(tag)
            except ValueError:
                pass
    text = code.strip_code(normalize=True, collapse=True, keep_template_params=False)
    lines = []
    for line in text.split("\n"):
        s = line.strip()
        # headings survive strip_code as "== X ==" -> keep the words; drop table debris
        if s.startswith("{|") or s.startswith("|") or s.startswith("!"):
            continue
        s = s.strip("=").strip()
        lines.append(_SPACES.sub(" ", s))
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def _read_mediawiki(path: Path) -> Iterator[tuple[str, str]]:
    """Articles (namespace 0, not redirects, not empty) of a MediaWiki XML export, as raw wikitext;
    doc id = page title."""
    import xml.etree.ElementTree as ET

    with open_compressed(path, "rb") as fh:
        try:
            context = ET.iterparse(fh, events=("start", "end"))
            _, root = next(context)
            for event, elem in context:
                if event != "end" or not elem.tag.endswith("}page") and elem.tag != "page":
                    continue
                ns_tag = "{" + elem.tag[1:].split("}")[0] + "}" if elem.tag.startswith("{") else ""
                title = elem.findtext(f"{ns_tag}title") or ""
                ns = elem.findtext(f"{ns_tag}ns") or "0"
                redirect = elem.find(f"{ns_tag}redirect") is not None
                text = elem.findtext(f"{ns_tag}revision/{ns_tag}text") or ""
                elem.clear()
                root.clear()  # drop finished pages: memory stays flat over a whole dump
                if ns.strip() != "0" or redirect or not text.strip():
                    continue
                yield title, text  # raw wikitext: iter_documents strips it (only for selected documents)
        except ET.ParseError as exc:
            raise InputError(f"{path}: malformed XML ({exc}); is it a MediaWiki export?") from None
        except (OSError, EOFError) as exc:
            raise InputError(f"{path}: cannot read ({exc}); the file may be truncated") from None


def _read_hf(path: Path, text_field: str) -> Iterator[tuple[str, str]]:
    import importlib.util

    if importlib.util.find_spec("datasets") is None:
        raise MissingDependency(f"{path} is a Hugging Face datasets folder; reading it needs `pip install datasets`")
    import datasets

    ds = datasets.load_from_disk(str(path))
    splits = [(name, ds[name]) for name in sorted(ds)] if isinstance(ds, datasets.DatasetDict) else [("", ds)]
    for split, d in splits:
        if text_field not in d.column_names:
            raise InputError(
                f"{path}: dataset {split or 'split'} has no column {text_field!r} "
                f"(columns: {', '.join(d.column_names[:8])}); pass --text-field"
            )
        has_id = "id" in d.column_names
        for i, row in enumerate(d.select_columns([text_field] + (["id"] if has_id else [])).iter(batch_size=1000)):
            texts = row[text_field]
            row_ids = row["id"] if has_id else [None] * len(texts)
            for j, (t, rid) in enumerate(zip(texts, row_ids)):
                if isinstance(t, str) and t:
                    yield (str(rid) if rid is not None else f"{split + ':' if split else ''}{i * 1000 + j}"), t


def iter_documents(
    paths: list[str], text_field: str = "text", select: Callable[[int], bool] | None = None
) -> Iterator[tuple[str, str]]:
    """Stream `(doc_id, text)` from files, folders, globs and HF dataset folders, in a stable order.

    `select(ordinal)`: when given and False for a document, its text may come back as "" without
    the costly part (wiki markup stripping). Ordinals (positions in this stream) do not depend
    on `select`, so callers that shard, resume or re-read the corpus skip work cheaply. A
    document whose text is empty after stripping is still yielded (as "") to keep ordinals fixed.
    """
    resolved = resolve_paths(paths)
    if not resolved:
        raise InputError("no corpus files found in " + ", ".join(map(str, paths)))
    multi = len(resolved) > 1
    ordinal = 0
    for p in resolved:
        fmt = _format_of(p)
        label = str(p) if multi else p.name
        try:
            if fmt == "hf":
                docs = _read_hf(p, text_field)
            elif fmt == "jsonl":
                docs = _read_jsonl(p, label, text_field)
            elif fmt == "xml":
                docs = (
                    (t, wikitext_to_text(w) if select is None or select(o) else "")
                    for o, (t, w) in enumerate(_read_mediawiki(p), ordinal)
                )
            else:
                docs = _read_text(p, label)
            for doc in docs:
                yield doc
                ordinal += 1
        except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:  # truncated or corrupt compressed files
            raise InputError(f"cannot read {p}: {exc} (truncated or corrupt?)") from None


# -- windows ------------------------------------------------------------------------------
@dataclass
class Window:
    """One teacher input row: ids [T] int64, offsets [T, 2] int32 (char span in the doc; -1 for added
    specials), the document's ordinal in the stream and where the window starts in the doc's tokens."""

    ids: np.ndarray
    offsets: np.ndarray
    doc: int
    repeated: int  # leading body tokens repeated from the doc's previous window (0 in its first window)


def special_prefix(tokenizer) -> list[int]:
    """The ids the tokenizer puts before a text by default (a BOS, or nothing)."""
    with_sp = tokenizer("a", add_special_tokens=True)["input_ids"]
    without = tokenizer("a", add_special_tokens=False)["input_ids"]
    for i in range(len(with_sp)):
        if with_sp[i : i + len(without)] == without:
            return list(with_sp[:i])
    return []


def pack_windows(
    docs: Iterable[tuple[int, str]],
    tokenizer,
    seq_len: int,
    overlap: int,
    prefix: list[int] | None = None,
    batch_docs: int = 64,
) -> Iterator[Window]:
    """Tokenize `(ordinal, text)` documents into windows of at most `seq_len` tokens.

    Each window starts with the tokenizer's own prefix (BOS, if it adds one). A long document
    is cut into several windows; each continuation repeats the last `overlap` tokens of the
    previous one (`Window.repeated`) as context, so no position after a cut is read without
    context, and `key_positions` skips the positions the previous window already used. Documents
    are tokenized in groups of `batch_docs` (the fast tokenizer runs them in parallel, outside the GIL).
    """
    prefix = list(prefix or [])
    body = seq_len - len(prefix)
    if body <= overlap:
        raise InputError(f"--seq-len {seq_len} is too short (the tokenizer adds {len(prefix)} prefix tokens)")
    pre_ids = np.asarray(prefix, np.int64)
    pre_off = np.full((len(prefix), 2), -1, np.int32)
    group: list[tuple[int, str]] = []

    def flush(group):
        enc = tokenizer(
            [t for _, t in group], add_special_tokens=False, return_offsets_mapping=True, return_attention_mask=False
        )
        for (ordinal, _), ids, offs in zip(group, enc["input_ids"], enc["offset_mapping"]):
            ids = np.asarray(ids, np.int64)
            offs = np.asarray(offs, np.int32).reshape(-1, 2)
            start, repeated = 0, 0
            while start < len(ids) and (repeated == 0 or len(ids) - start > overlap):
                end = min(start + body, len(ids))
                yield Window(
                    np.concatenate([pre_ids, ids[start:end]]),
                    np.concatenate([pre_off, offs[start:end]]),
                    ordinal,
                    repeated,
                )
                if end == len(ids):
                    break
                start, repeated = end - overlap, overlap

    for item in docs:
        group.append(item)
        if len(group) >= batch_docs:
            yield from flush(group)
            group = []
    if group:
        yield from flush(group)
