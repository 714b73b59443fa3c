"""WordNet through NLTK: open a WordNet 3.0 database and read synonym / antonym pairs.

`open_wordnet(root)` finds the data, in this order:

1. an explicit `root`: a WordNet 3.0 dict folder (Debian's `/usr/share/wordnet`, any folder
   holding `data.noun`, `index.noun`, ...), a `wordnet.zip`, or an nltk_data directory
   (its `corpora/wordnet.zip` or `corpora/wordnet/`);
2. NLTK's data path (`NLTK_DATA` and NLTK's defaults), `corpora/wordnet.zip` included;
3. `/usr/share/wordnet` (Debian/Ubuntu `wordnet-base`).

Debian's folder lacks the `lexnames` file that NLTK's reader needs. When it is missing, a
cache copy of the folder with WordNet 3.0's 45 lexnames added (about 35 MB, made once;
NLTK refuses symbolic and hard links that lead out of a corpus folder) is made under
`sensekit_home()/wordnet/` and read instead; nothing is ever written next to the data. NLTK 3.9+
reads corpora only below its data path, so an explicitly chosen folder is appended to `nltk.data.path`.

`wordnet_pairs(wn, ...)` yields the relation pairs of a WordNet: synonyms are the lemmas
sharing a synset (the synset's gloss is the provenance), antonyms are lemma antonyms, and
with `similar_tos=True` adjective `similar_to` satellites count as synonyms.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import warnings
from pathlib import Path
from typing import Iterator

from ..errors import InputError, MissingDependency
from ..fs import swap_into_place, temp_sibling
from ..paths import sensekit_home
from .sources import RelationSource, register

__all__ = ["open_wordnet", "wordnet_pairs", "LEXNAMES", "DEBIAN_WORDNET"]

DEBIAN_WORDNET = "/usr/share/wordnet"

# WordNet 3.0's lexicographer files: number, name, syntactic category (dict/lexnames).
_LEXNAME_LIST = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
    "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
    "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
    "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
    "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
_CATEGORY = {"adj": 3, "adv": 4, "noun": 1, "verb": 2}
LEXNAMES = "".join(f"{i:02d}\t{name}\t{_CATEGORY[name.split('.')[0]]}\n" for i, name in enumerate(_LEXNAME_LIST))

_REQUIRED = ("data.noun", "index.noun", "data.verb", "index.verb", "data.adj", "index.adj", "data.adv", "index.adv")
_FIX = (
    "install it with `python -m nltk.downloader wordnet` (or set NLTK_DATA to a folder holding "
    "corpora/wordnet.zip), `apt-get install wordnet-base`, or pass the dict folder explicitly"
)


def _is_dict_folder(path: Path) -> bool:
    return path.is_dir() and all((path / f).is_file() for f in _REQUIRED)


def _with_lexnames(folder: Path) -> Path:
    """`folder` itself when it has `lexnames`, otherwise a cache copy that does."""
    if (folder / "lexnames").is_file():
        _authorize(folder)
        return folder
    key = hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:12]
    cache = sensekit_home() / "wordnet" / f"dict-{key}"
    if not (cache / "lexnames").is_file():
        tmp = temp_sibling(cache)
        tmp.mkdir(parents=True, exist_ok=True)
        for entry in folder.iterdir():
            link = tmp / entry.name
            if entry.is_file() and not link.exists():
                # A copy: NLTK refuses symbolic links that leave the corpus folder and hard links.
                shutil.copyfile(entry, link)
        (tmp / "lexnames").write_text(LEXNAMES, encoding="utf-8")
        swap_into_place(tmp, cache, keep_existing=True)  # another process may have made it first
    _authorize(cache)
    return cache


def _authorize(*folders: Path) -> None:
    """NLTK (3.9+) reads corpora only under its data path: put an explicitly chosen folder
    (and, for a cache copy, the folder its links point to) on `nltk.data.path`."""
    import nltk.data

    for folder in folders:
        text = str(folder.resolve())
        if text not in nltk.data.path:
            nltk.data.path.append(text)


def _reader(pointer):
    from nltk.corpus.reader import WordNetCorpusReader

    class Reader(WordNetCorpusReader):
        def map_wn(self, version="wordnet"):
            # NLTK 3.10 builds a version map against its *own* `corpora/wordnet` resource at
            # construction (for OMW); that resource is absent on a machine with only Debian's
            # WordNet, and sensekit never uses the map.
            return None

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available" (no OMW)
        return Reader(pointer, None)


def _from_root(root: Path):
    """A reader for an explicit root, or None when `root` holds no WordNet."""
    import nltk.data

    if _is_dict_folder(root):
        return _reader(str(_with_lexnames(root)))
    if root.is_file() and root.suffix == ".zip":
        _authorize(root.parent)
        return _reader(nltk.data.find(f"{root.resolve().as_posix()}/wordnet/"))
    for sub in ("corpora/wordnet", "wordnet", "dict"):
        if _is_dict_folder(root / sub):
            return _reader(str(_with_lexnames(root / sub)))
    if (root / "corpora" / "wordnet.zip").is_file():
        _authorize(root)
        try:
            return _reader(nltk.data.find("corpora/wordnet.zip/wordnet/", paths=[str(root)]))
        except LookupError:
            return None
    return None


def open_wordnet(root: str | os.PathLike | None = None):
    """An NLTK `WordNetCorpusReader` over WordNet 3.0 (see the module docstring for the search order).

    Raises InputError when no WordNet is found (the message says how to install one) and
    MissingDependency when NLTK is not installed.
    """
    try:
        import nltk.data  # noqa: F401
    except ImportError:
        raise MissingDependency("WordNet needs NLTK: pip install nltk") from None
    import nltk.data

    if root is not None:
        path = Path(root).expanduser()
        if not path.exists():
            raise InputError(f"WordNet folder {path} does not exist; {_FIX}")
        reader = _from_root(path)
        if reader is None:
            raise InputError(
                f"no WordNet 3.0 found in {path} (expected data.noun, index.noun, ... or corpora/wordnet.zip); {_FIX}"
            )
        return reader
    for resource in ("corpora/wordnet", "corpora/wordnet.zip/wordnet/"):
        try:
            found = nltk.data.find(resource)
        except LookupError:
            continue
        if hasattr(found, "path") and not str(found.path).endswith(".zip"):
            folder = Path(found.path)
            if _is_dict_folder(folder):
                return _reader(str(_with_lexnames(folder)))
        return _reader(found)
    debian = Path(DEBIAN_WORDNET)
    if _is_dict_folder(debian):
        return _reader(str(_with_lexnames(debian)))
    raise InputError(f"WordNet not found on NLTK's data path or in {DEBIAN_WORDNET}; {_FIX}")


def _word(name: str) -> str:
    return name.replace("_", " ")


def wordnet_pairs(
    wn, *, similar_tos: bool = False, lang: str = "eng", stats: dict | None = None
) -> Iterator[tuple[str, str, str, dict]]:
    """(word1, word2, kind, provenance) for every synonym / antonym link of the WordNet.

    Pairs come one way round; normalisation (pairs.normalize) makes them symmetric. The
    provenance carries the synset name, part of speech and its gloss (`gloss`). `stats`
    (a dict) receives the number of synsets read.
    """
    n = 0
    for synset in wn.all_synsets():
        n += 1
        if stats is not None:
            stats["synsets"] = n
        name = synset.name()
        pos = synset.pos()
        gloss = synset.definition()
        lemmas = synset.lemmas(lang) if lang != "eng" else synset.lemmas()
        words = list(dict.fromkeys(_word(lemma.name()) for lemma in lemmas))
        prov = {"gloss": gloss, "synset": name, "pos": pos}
        for i, a in enumerate(words):
            for b in words[i + 1 :]:
                yield a, b, "syn", prov
        for lemma in lemmas:
            for ant in lemma.antonyms():
                yield (
                    _word(lemma.name()),
                    _word(ant.name()),
                    "ant",
                    {
                        "gloss": gloss,
                        "synset": name,
                        "pos": pos,
                        "antonym_synset": ant.synset().name(),
                        "antonym_gloss": ant.synset().definition(),
                    },
                )
        if similar_tos and pos in ("a", "s"):
            for other in synset.similar_tos():
                sim_prov = {
                    "gloss": gloss,
                    "synset": name,
                    "pos": pos,
                    "similar_to": other.name(),
                    "similar_gloss": other.definition(),
                }
                for a in words:
                    for lemma in other.lemmas():
                        yield a, _word(lemma.name()), "syn", sim_prov


def _read(path: str | None, cfg, report, vocabulary: set[str]) -> list:
    """The `wordnet` / `wordnet:DIR` relation source: every synset's pairs (report.read = synsets)."""
    from .pairs import paused_gc

    wn = open_wordnet(path)
    stats: dict[str, int] = {}
    with paused_gc():
        pairs = list(wordnet_pairs(wn, similar_tos=cfg.similar_tos, stats=stats))
    report.read = report.used = stats.get("synsets", 0)
    report.pairs = len(pairs)
    return pairs


register(RelationSource("wordnet", "wordnet", None, _read, lambda path: "wordnet", "wordnet | wordnet:DIR", bare=True))
