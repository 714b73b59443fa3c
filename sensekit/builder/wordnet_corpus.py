"""WordNet's glosses and examples as a corpus: the offline default of `sensekit build`.

`iter_wordnet()` yields one `(synset name, text)` document per synset, read straight from
WordNet's data files (about 5x faster than materialising NLTK's 117k Synset objects), in a
fixed pseudo-random order. `wordnet_fingerprint()` identifies the WordNet a build read (and
its held-out rule), for checkpoints and provenance.

**Held-out examples.** A stated share of WordNet's example sentences never enters the corpus:
`is_heldout(sentence, share)` decides by a stable hash of the sentence itself (sha256 of the
stripped UTF-8 text, its first 8 bytes read as a fraction of 2**64, held out when below the
share; `HELDOUT_SHARE` = 0.2 by default, in (0, 0.5]). The rule is monotone in the share: the
sentences held out at 0.1 are among those held out at 0.2. `sensekit eval` builds its WiC-style
pairs and its purity test from exactly these sentences (sensekit/eval/wordnet_pairs.py), and
the build records `heldout_provenance()` in the store, so eval can tell a store whose corpus
may contain its evaluation sentences. Glosses (definitions) are not held out, except the few
that read exactly like a held-out example of another synset ("fly a kite"): the corpus and the
evaluation sentences are disjoint.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from pathlib import Path
from typing import Iterator

from ..errors import InputError, MissingDependency

__all__ = [
    "iter_wordnet",
    "wordnet_fingerprint",
    "wordnet_synsets",
    "WORDNET_CORPUS",
    "HELDOUT_SHARE",
    "HELDOUT_RULE",
    "heldout_key",
    "is_heldout",
    "check_heldout_share",
    "heldout_provenance",
    "find_occurrence",
    "open_wordnet_for_link",
]

WORDNET_CORPUS = "wordnet"  # the name under which the default corpus is recorded
HELDOUT_SHARE = 0.2  # share of WordNet's example sentences held out of the default corpus for evaluation
HELDOUT_RULE = "sha256(example sentence, stripped, UTF-8)[:8] as a big-endian integer / 2**64 < share"
_WORDNET_CACHE: dict[str, list] = {}  # parsed glosses of the last WordNet read (one at a time)
_READERS: dict[str | None, object] = {}
_QUOTED = re.compile(r'"([^"]*)"')
_QUOTED_ANY = re.compile(r'["].*?["]')
_WORD = re.compile(r"[A-Za-z]+(?:['-][A-Za-z]+)*")
_MORPHY_POS = {"s": "a"}  # morphy knows adjective satellites as adjectives


def iter_wordnet(
    root: str | None = None, lemmas: bool = False, heldout_share: float = HELDOUT_SHARE
) -> Iterator[tuple[str, str]]:
    """WordNet's glosses and example sentences, one document per synset (doc id = synset name).

    Synsets come in a fixed pseudo-random order (by a hash of their name), not WordNet's
    adjectives-first order, so that a `--max-tokens` prefix is a fair sample of all of WordNet.
    With `lemmas`, a gloss reads as in a dictionary: "bank, depository financial institution:
    a financial institution that ..." (a bare gloss is a few words with no topic). The example
    sentences held out for evaluation (`is_heldout(sentence, heldout_share)`) are left out.
    """
    check_heldout_share(heldout_share)
    synsets = wordnet_synsets(root)
    # a few glosses read exactly like another synset's example ("fly a kite"): a held-out one goes too
    held = {e.strip() for _, _, examples, _ in synsets for e in examples if is_heldout(e, heldout_share)}
    for name, definition, examples, names in synsets:
        head = ", ".join(n.replace("_", " ") for n in names) + ": " if lemmas and names else ""
        kept = [e.strip() for e in examples if not is_heldout(e, heldout_share)]
        gloss = definition.strip() if definition.strip() not in held else ""
        parts = ([head + gloss] if gloss else []) + kept
        text = "\n".join(p for p in parts if p)
        if text:
            yield name, text


def wordnet_synsets(root: str | None = None) -> list[tuple[str, str, list[str], list[str]]]:
    """Every synset as (name, definition, example sentences, lemma names), parsed once per WordNet,
    in the corpus's fixed order. The example sentences are all of them, held out or not."""
    wn = _open_for_corpus(root)
    key = str(getattr(wn, "root", root))
    docs = _WORDNET_CACHE.get(key)
    if docs is None:  # a build reads it up to three times (check, harvest, contexts): parse once
        try:
            docs = _wordnet_glosses_fast(wn)
        except (AttributeError, KeyError, ValueError, OSError):  # NLTK internals moved: the public, slower path
            docs = [(s.name(), s.definition(), s.examples(), s.lemma_names()) for s in wn.all_synsets()]
        docs.sort(key=lambda d: (zlib.crc32(d[0].encode()), d[0]))
        _WORDNET_CACHE.clear()
        _WORDNET_CACHE[key] = docs
    return docs


# -- the held-out rule ---------------------------------------------------------------------
def heldout_key(sentence: str) -> float:
    """A stable number in [0, 1) per sentence: the first 8 bytes of sha256(stripped UTF-8 text) / 2**64."""
    digest = hashlib.sha256(sentence.strip().encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def is_heldout(sentence: str, share: float = HELDOUT_SHARE) -> bool:
    """True when the example sentence is held out of the default corpus (see the module docstring)."""
    return heldout_key(sentence) < share


def check_heldout_share(share: float, flag: str = "--heldout-share") -> float:
    """The share itself, or an InputError naming the range (0, 0.5]."""
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 < float(share) <= 0.5:
        raise InputError(
            f"{flag} {share!r} is outside (0, 0.5]: the share of WordNet example sentences held out for evaluation"
        )
    return float(share)


def heldout_provenance(share: float = HELDOUT_SHARE) -> dict:
    """What a store built on the default corpus records about the held-out examples."""
    return {"unit": "WordNet example sentence", "rule": HELDOUT_RULE, "share": check_heldout_share(share)}


def find_occurrence(sentence: str, lemma: str, pos: str | None, wn) -> tuple[int, int] | None:
    """Char span of the first word of `sentence` that is `lemma` or an inflection of it (WordNet's morphy):
    where a synset's lemma occurs in its own example sentence (a tagged occurrence)."""
    lemma = lemma.lower()
    for m in _WORD.finditer(sentence):
        w = m.group().lower()
        if w == lemma:
            return m.span()
        # morphy only for plausible inflections: it is the slow part
        if w[:2] == lemma[:2] and len(w) > len(lemma) - 2 and wn.morphy(w, _MORPHY_POS.get(pos, pos)) == lemma:
            return m.span()
    return None


def open_wordnet_for_link(root: str | None = None):
    """The WordNet reader that sense linking reads synsets from (one line naming the fix when absent)."""
    return _open_for_corpus(root)


def _open_for_corpus(root: str | None):
    """The WordNet reader, or a one-line error that says to pass a corpus instead."""
    try:
        from ..lexicon.wordnet import open_wordnet  # noqa: F401  (only to fail early with a clear message)
    except ImportError:
        raise MissingDependency(
            "the default corpus needs sensekit.lexicon.wordnet, which is not installed; "
            "pass a corpus path to `sensekit build`"
        ) from None
    try:
        return _open_wordnet_cached(root)
    except InputError as exc:
        raise InputError(
            f"default corpus (WordNet glosses): {exc}; or pass a corpus path to `sensekit build`"
        ) from None
    except (LookupError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(
            "no WordNet found for the default corpus; pass a corpus path, or install Debian's "
            f"wordnet-base or set NLTK_DATA ({reason})"
        ) from None


def _open_wordnet_cached(root: str | None):
    from ..lexicon.wordnet import open_wordnet

    if root not in _READERS:
        _READERS[root] = open_wordnet(root)
    return _READERS[root]


def _wordnet_glosses_fast(wn) -> list[tuple[str, str, list[str], list[str]]]:
    """(synset name, definition, examples, lemma names) read straight from the data files, as NLTK parses them."""
    out = []
    offsets_of = wn._lemma_pos_offset_map
    for fname in ("data.noun", "data.verb", "data.adj", "data.adv"):
        with wn.open(fname) as fh:
            for line in fh:
                if line.startswith("  "):
                    continue  # licence header
                columns, gloss = line.strip().split("|", 1)
                cols = columns.split()
                offset, pos = int(cols[0]), cols[2]
                names = [_strip_marker(w) for w in cols[4 : 4 + 2 * int(cols[3], 16) : 2]]  # (word, lex_id) pairs
                lemma = names[0].lower()
                sense = offsets_of[lemma][pos].index(offset) + 1
                definition = _QUOTED_ANY.sub("", gloss).strip().strip("; ")
                out.append((f"{lemma}.{pos}.{sense:02d}", definition, _QUOTED.findall(gloss), names))
    return out


def _strip_marker(word: str) -> str:
    """'long(a)' -> 'long': adjectives carry a syntactic marker in the data files."""
    paren = word.rfind("(")
    return word[:paren] if paren > 0 and word.endswith(")") else word


def wordnet_fingerprint(root: str | None = None, heldout_share: float = HELDOUT_SHARE) -> str:
    """sha256 over WordNet's version, its files' names and sizes, and the held-out rule (a corpus
    without some examples is another corpus: a checkpoint of the older one must not resume)."""
    wn = _open_wordnet_cached(root)
    h = hashlib.sha256(b"wordnet")
    h.update(str(getattr(wn, "get_version", lambda: "")()).encode())
    base = Path(str(getattr(wn, "root", "")))
    if base.is_dir():
        for f in sorted(base.iterdir()):
            if f.is_file():
                h.update(f"{f.name}:{f.stat().st_size}".encode())
    h.update(f"heldout:{HELDOUT_RULE}:{check_heldout_share(heldout_share)!r}".encode())
    return h.hexdigest()[:32]
