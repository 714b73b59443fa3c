"""RelationsConfig: every option of attaching relations, with its default, in one place.

`attach_relations(store, sources, config)` takes it; `sensekit relations add` generates its
flags from it (`sensekit.options.cli_parameters`). Only `options` is imported here, so the CLI
can build its flags without loading the lexicon machinery.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..options import check_fields, option

__all__ = ["RelationsConfig"]


@dataclass(frozen=True)
class RelationsConfig:
    """How relation sources are read, filtered and turned into rows (docs/method.md section 1, steps 4-5)."""

    head_min_chars: int = option(3, "A head word is one token of at least this many characters.", min=1)
    max_span_tokens: int = option(3, "A related word may span 1..N tokens (N >= 2 gets a span cloud).", min=1)
    polarity: bool = option(False, "Polarity normalisation: syn(unhappy, sad) -> ant(happy, sad), marked derived.")
    # `--lang` is the documented flag; the field keeps the name the Wiktionary readers use.
    lang_code: Optional[str] = option(
        "en", "Wiktionary: keep entries of this language, by code or name ('all' keeps every language).", short="--lang"
    )
    on_error: str = option(
        "skip", "A malformed input line: skip (counted and reported) or fail.", choices=("skip", "fail")
    )
    similar_tos: bool = option(False, "WordNet: adjective similar_to links count as synonyms.")
    binary_labels: Optional[str] = option(
        None, "Pair lists with 0/1 labels: 'ant' (1 = antonym) or 'syn' (1 = synonym).", choices=("ant", "syn")
    )
    cloud_rows: Optional[int] = option(None, "Rows per span cloud K (default: the store's k).", min=1)
    require_senses: bool = option(False, "Keep only pairs whose words have senses (or a span cloud) in the store.")
    processes: Optional[int] = option(None, "Wiktionary dumps: parser processes (default: CPU count).", min=1)

    def __post_init__(self) -> None:
        check_fields(self)
