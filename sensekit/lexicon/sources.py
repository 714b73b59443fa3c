"""Relation sources: one reader module each, registered here (the way store metrics register in
sensekit/eval/registry.py).

A source is a `RelationSource` declared at the bottom of its reader module with `register(...)`:
- `source_type`: its registered name (`Source.source_type`);
- `prefix`: the word before `:` that names it in a SOURCE (`pairs:FILE`); sources may share one
  (`wiktionary:FILE` is read by `kaikki` or `dump`, whichever's `suffix` the file name matches);
- `suffix`: the file names it reads without a prefix (None: only with its prefix);
- `read(path, config, report, vocabulary) -> [Pair]`: its pairs `(word1, word2, syn|ant,
  provenance)`, counting lines in `report` (pairs.ReadReport) and adding to `vocabulary` the words
  polarity may map to;
- `name(path)`: the `relations.source` value when the SOURCE gives no `NAME=`;
- `syntax`: its part of the SOURCE help (`sensekit relations add --help`, the docs);
- `bare`: the SOURCE may be the prefix alone (`wordnet`: the default location), and its path is
  a folder the reader checks itself, not a file.

**Adding a relation source = one new module under `sensekit/lexicon/` ending in
`register(RelationSource(...))`, plus its module name in `MODULES` below** (the order there is
the order of the help and of matching bare file names). Normalisation, tokenization, span clouds
and attachment to senses are shared by every source (`attach.attach_relations`).
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import InputError

__all__ = ["MODULES", "RelationSource", "Source", "register", "sources", "parse_source", "source_help"]

# The reader modules, in the order of the help and of matching a bare file name. A new source adds its module here.
MODULES = ("wordnet", "kaikki", "wiktionary_dump", "pairs")

_NAME = re.compile(r"^([A-Za-z][\w.:-]*)=(.+)$")


@dataclass(frozen=True)
class RelationSource:
    source_type: str  # the registered name: wordnet, kaikki, dump, pairs
    prefix: str
    suffix: Optional[re.Pattern]
    read: Callable[[Optional[str], Any, Any, set], list]  # (path, RelationsConfig, ReadReport, vocabulary) -> pairs
    name: Callable[[Optional[str]], str]
    syntax: str
    bare: bool = False


@dataclass(frozen=True)
class Source:
    """One parsed SOURCE string."""

    source_type: str  # a registered RelationSource.source_type
    path: str | None  # file or folder (None: the source's default location)
    name: str  # the relations.source value


_REGISTRY: dict[str, RelationSource] = {}


def register(source: RelationSource) -> RelationSource:
    """Add a source (called at the bottom of its reader module). A second source of the same source_type replaces
    the first."""
    _REGISTRY[source.source_type] = source
    return source


def sources() -> dict[str, RelationSource]:
    """Every registered source by source_type, in MODULES' order (imported on first use), then any registered elsewhere."""
    for module in MODULES:
        importlib.import_module(f"{__package__}.{module}")
    order = {f"{__package__}.{m}": i for i, m in enumerate(MODULES)}  # a reader module may import another first
    ranked = sorted(_REGISTRY.values(), key=lambda s: order.get(s.read.__module__, len(order)))
    return {s.source_type: s for s in ranked}


def source_help() -> str:
    """The SOURCE syntax of every registered source, as `sensekit relations add --help` shows it."""
    return " | ".join(s.syntax for s in sources().values()) + ", optionally NAME=SPEC to store the rows under NAME"


def parse_source(spec: str) -> Source:
    """Parse a SOURCE string: `[NAME=]PREFIX:PATH`, a bare file name a source's `suffix` matches, or a `bare`
    source's prefix alone. Raises InputError with the syntax."""
    if not isinstance(spec, str) or not spec.strip():
        raise InputError(f"empty relation source; give one of: {source_help()}")
    spec = spec.strip()
    name = None
    m = _NAME.match(spec)
    if m and not os.path.exists(spec):
        name, spec = m.group(1), m.group(2)
    known = sources()
    prefix, colon, rest = spec.partition(":")
    owners = [s for s in known.values() if s.prefix == prefix and (colon or s.bare)]
    if owners:
        path = rest or None
        source = next((s for s in owners if path and s.suffix is not None and s.suffix.search(path)), owners[0])
    else:
        source = next((s for s in known.values() if s.suffix is not None and s.suffix.search(spec)), None)
        path = spec
        if source is None:
            raise InputError(f"cannot tell what relation source {spec!r} is; use {source_help()}")
    if not source.bare:
        path = _existing(path or "")
    return Source(source.source_type, path, name or source.name(path))


def _existing(path: str) -> str:
    if path and Path(path).expanduser().is_dir():
        raise InputError(f"relation source {path!r} is a directory; give a file")
    if not path or not Path(path).expanduser().is_file():
        raise InputError(f"relation source file {path!r} does not exist")
    return str(Path(path).expanduser())
