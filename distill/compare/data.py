"""The experiment's data: the split by article, the held-out relation lemmas, the windows, the leak checks.

- **Split.** Articles are ordered by sha256(split_seed, title); the first `test_articles` are test, the next
  `dev_articles` dev, the rest train. The train articles are cut again: the first ones feed the training
  windows, the others the stores, so no store context comes from a text the students train on (the overlap
  is measured, not assumed: `store_overlap`).
- **Held-out lemmas.** Before any store is built, every relation pair of the sources is read and a share of
  the lemmas (by hash) is held out: the stores get the pairs with no held-out word, the lexical probe the
  pairs whose two words are both held out.
- **Leak checks** raise LeakError: no title or text shared between splits, no held-out article sharing more
  than a bound of its word 13-grams with train, no store context from a non-store article, and the training
  windows sharing (almost) no 16-token sequence with the dev and test windows.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from sensekit.errors import InputError, SensekitError

__all__ = [
    "LeakError",
    "write_splits",
    "holdout_relations",
    "article_windows",
    "packed_articles",
    "spread",
    "leak_check",
    "window_leak_check",
    "store_overlap",
    "read_jsonl",
]

NGRAM, MAX_NGRAM_SHARE = 13, 0.5  # word 13-grams (as GPT-3's contamination check)
TOKEN_NGRAM, MAX_TOKEN_NGRAM_SHARE = 16, 0.01


class LeakError(SensekitError):
    """Held-out text reached a store or the training data."""


def _h(*parts: Any) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).hexdigest()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def write_splits(exp, folder: Path, train_window_chars: int) -> dict[str, Any]:
    """corpus -> folder/{train_windows,store,dev,test}.jsonl and a manifest (reused when the corpus is unchanged).

    `train_window_chars`: characters the training windows need (the first train articles up to it feed them).
    """
    from sensekit.builder.corpus import corpus_fingerprint, iter_documents, resolve_paths

    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / "splits.json"
    fingerprint = corpus_fingerprint(resolve_paths([exp.corpus]), "text")
    rule = [exp.split_seed, exp.test_articles, exp.dev_articles, train_window_chars]
    if exp.train_article_chars or exp.dev_article_chars:  # absent from older manifests: they stay valid
        rule += [exp.train_article_chars, exp.dev_article_chars]
    if manifest_path.is_file():
        old = json.loads(manifest_path.read_text())
        if old.get("corpus_fingerprint") == fingerprint and old.get("rule_values") == rule:
            if all(Path(p).is_file() for p in old["files"].values()):
                return old
    docs = [{"id": t, "text": x} for t, x in iter_documents([exp.corpus]) if x.strip()]
    docs.sort(key=lambda d: _h(exp.split_seed, d["id"]))
    test, dev = docs[: exp.test_articles], docs[exp.test_articles : exp.test_articles + exp.dev_articles]
    train = docs[exp.test_articles + exp.dev_articles :]
    used, cut = 0, 0
    while cut < len(train) and used < train_window_chars:
        used += min(len(train[cut]["text"]), exp.train_article_chars or len(train[cut]["text"]))
        cut += 1
    # a capped training article gives its opening; the rest of it goes nowhere (never to a store)
    windows_part = [_head(d, exp.train_article_chars) for d in train[:cut]]
    dev = [_middle(d, exp.dev_article_chars) for d in dev]
    parts = {"train_windows": windows_part, "store": train[cut:], "dev": dev, "test": test}
    if len(test) < exp.min_test_articles:
        raise InputError(
            f"the corpus {exp.corpus} has {len(docs)} articles: the test split gets {len(test)}, fewer than "
            f"min_test_articles {exp.min_test_articles}; give a larger corpus or lower test_articles"
        )
    if not parts["store"] or not dev:
        raise InputError(
            f"the corpus {exp.corpus} has {len(docs)} articles: too few for test {exp.test_articles}, dev "
            f"{exp.dev_articles}, the training windows and the stores; give a larger corpus"
        )
    files = {name: _write_jsonl(folder / f"{name}.jsonl", rows) for name, rows in parts.items()}
    full = {d["id"]: d["text"] for d in docs}  # the leak check hashes whole articles, not the slices
    manifest = {
        "corpus": exp.corpus,
        "corpus_fingerprint": fingerprint,
        "rule": "articles ordered by sha256(split_seed, title): test, then dev, then train; the first train "
        "articles (up to the training windows' characters) feed the windows, the rest the stores",
        "rule_values": rule,
        "files": files,
        "articles": {k: len(v) for k, v in parts.items()},
        "characters": {k: sum(len(d["text"]) for d in v) for k, v in parts.items()},
        "titles": {k: [d["id"] for d in v] for k, v in parts.items()},
        "text_sha256": {k: [_h(full[d["id"]]) for d in v] for k, v in parts.items()},
    }
    manifest_path.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return manifest


def _head(doc: dict[str, str], chars: int) -> dict[str, str]:
    """The article's first `chars` characters, cut at a space (0: the whole article)."""
    text = doc["text"]
    if not chars or len(text) <= chars:
        return doc
    cut = text.rfind(" ", 0, chars)
    return {"id": doc["id"], "text": text[: cut if cut > chars // 2 else chars]}


def _middle(doc: dict[str, str], chars: int) -> dict[str, str]:
    """`chars` characters from the middle of the article, cut at spaces (0: the whole article)."""
    text = doc["text"]
    if not chars or len(text) <= chars:
        return doc
    start = (len(text) - chars) // 2
    space = text.find(" ", start)
    start = space + 1 if 0 <= space < start + chars // 2 else start
    return _head({"id": doc["id"], "text": text[start:]}, chars)


# -- held-out relation lemmas ---------------------------------------------------------------
def holdout_relations(sources: list[str], share: float, seed: int, folder: Path) -> dict[str, Any]:
    """Read every pair of `sources`, hold out `share` of the lemmas (by hash), and write
    folder/store_pairs.tsv (pairs with no held-out word: what the stores get) and folder/heldout_pairs.tsv
    (pairs whose two words are both held out: the probe). Reused when written for the same arguments."""
    from sensekit.lexicon.attach import parse_source, read_source

    folder.mkdir(parents=True, exist_ok=True)
    stamp = folder / "relations.json"
    args = [sources, share, seed]
    if stamp.is_file() and json.loads(stamp.read_text()).get("args") == args:
        return json.loads(stamp.read_text())
    kept, held, counts = set(), set(), {"read": 0}
    cut = int(share * 2**32)
    for spec in sources:
        pairs, _, _ = read_source(parse_source(spec))
        for a, b, kind, _prov in pairs:
            if kind not in ("syn", "ant") or a == b:
                continue
            counts["read"] += 1
            out_a = int(_h(seed, a.lower())[:8], 16) < cut
            out_b = int(_h(seed, b.lower())[:8], 16) < cut
            if out_a and out_b:
                held.add((a, b, kind))
            elif not (out_a or out_b):
                kept.add((a, b, kind))
    if not kept:
        raise InputError(f"the relation sources {sources} gave no pairs for the stores")
    write = lambda p, rows: p.write_text("".join(f"{a}\t{b}\t{k}\n" for a, b, k in sorted(rows)), encoding="utf-8")  # noqa: E731
    write(folder / "store_pairs.tsv", kept)
    write(folder / "heldout_pairs.tsv", held)
    info = {
        "args": args,
        "store_pairs": str(folder / "store_pairs.tsv"),
        "heldout_pairs": str(folder / "heldout_pairs.tsv"),
        "pairs_read": counts["read"],
        "store_pairs_count": {k: sum(1 for r in kept if r[2] == k) for k in ("syn", "ant")},
        "heldout_pairs_count": {k: sum(1 for r in held if r[2] == k) for k in ("syn", "ant")},
        "rule": f"a lemma is held out when sha256(seed, lemma) < {share} of the hash range; the stores get pairs "
        "with no held-out word, the probe pairs with two held-out words (so no probe word is in any store's relations)",
    }
    stamp.write_text(json.dumps(info, indent=1), encoding="utf-8")
    return info


# -- windows ----------------------------------------------------------------------------------
def spread(n: int, k: int) -> np.ndarray:
    """k of the indices 0..n-1 spread evenly from the first to the last (all n when k >= n)."""
    if k >= n:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, k)).astype(np.int64))


def article_windows(path: str, tokenizer, seq_len: int, per_article: int):
    """Up to `per_article` windows from EACH article of a JSONL split, spread evenly over the article (its
    opening, its end and between) -> (Windows, article index per window [N], titles). A split with no windows
    is a one-line error."""
    from ..data import Windows, pack_documents

    ids, lengths, owner, titles, n_prefix = [], [], [], [], 0
    for row in read_jsonl(path):
        try:
            w = pack_documents(iter([(row["id"], row["text"])]), tokenizer, seq_len)
        except InputError:  # an article shorter than one window
            continue
        pick = spread(len(w), per_article)
        ids.append(w.ids[pick])
        lengths.append(w.lengths[pick])
        owner += [len(titles)] * len(pick)
        titles.append(row["id"])
        n_prefix = w.n_prefix
    if not ids:
        raise InputError(
            f"the split {path} has no windows of {seq_len} tokens (every article is shorter); "
            "lower seq_len or give longer articles"
        )
    windows = Windows(np.concatenate(ids), np.concatenate(lengths), n_prefix)
    return windows, np.asarray(owner), titles


def packed_articles(path: str, tokenizer, seq_len: int, n_windows: int) -> int:
    """How many articles of a JSONL file the first `n_windows` windows of `distill.data.pack_documents` read
    (documents packed end to end, an EOS between them)."""
    from ..data import special_prefix

    body = seq_len - len(special_prefix(tokenizer))
    ends = np.cumsum([len(tokenizer(r["text"], add_special_tokens=False)["input_ids"]) + 1 for r in read_jsonl(path)])
    if not len(ends) or n_windows < 1:
        return 0
    last = min(n_windows * body, int(ends[-1]) - 1)  # the last stream position read (window i: i*body .. +body)
    return int(min(np.searchsorted(ends, last, side="right") + 1, len(ends)))


# -- leak checks ------------------------------------------------------------------------------
_WORD = re.compile(r"\w+")


def _ngrams(text: str, n: int = NGRAM) -> set[int]:
    words = _WORD.findall(text.lower())
    return {hash(tuple(words[i : i + n])) for i in range(len(words) - n + 1)}


def leak_check(splits: dict[str, Any], store_docs: dict[int, list[str]]) -> dict[str, Any]:
    """Titles/texts disjoint between splits, held-out 13-gram share bounded, store contexts only from store
    articles (`store_docs`: size -> doc ids of its contexts). Raises LeakError."""
    problems: list[str] = []
    titles = {k: set(v) for k, v in splits["titles"].items()}
    hashes = {k: set(v) for k, v in splits["text_sha256"].items()}
    train = titles["train_windows"] | titles["store"]
    held = titles["dev"] | titles["test"]
    if train & held or titles["dev"] & titles["test"] or titles["train_windows"] & titles["store"]:
        problems.append(
            f"titles shared between splits: {sorted((train & held) | (titles['dev'] & titles['test']))[:5]}"
        )
    train_h = hashes["train_windows"] | hashes["store"]
    if train_h & (hashes["dev"] | hashes["test"]):
        problems.append("held-out texts also occur verbatim in train")
    grams: set[int] = set()
    for part in ("train_windows", "store"):
        for row in read_jsonl(splits["files"][part]):
            grams |= _ngrams(row["text"])
    shares = {}
    for part in ("dev", "test"):
        for row in read_jsonl(splits["files"][part]):
            g = _ngrams(row["text"])
            shares[row["id"]] = len(g & grams) / max(len(g), 1)
    worst = max(shares, key=shares.get) if shares else None
    if worst is not None and shares[worst] > MAX_NGRAM_SHARE:
        problems.append(f"held-out article {worst!r} shares {shares[worst]:.0%} of its {NGRAM}-grams with train")
    bad_ctx = {size: sorted(set(ids) - titles["store"]) for size, ids in store_docs.items()}
    for size, bad in bad_ctx.items():
        if bad:
            problems.append(f"the {size}-token store has contexts from non-store articles: {bad[:3]}")
    out = {
        "ngram": NGRAM,
        "ngram_share_max": round(shares[worst], 4) if worst else None,
        "ngram_share_mean": round(float(np.mean(list(shares.values()))), 4) if shares else None,
        "ngram_share_bound": MAX_NGRAM_SHARE,
        "store_context_docs": {str(k): len(v) for k, v in store_docs.items()},
        "problems": problems,
        "passed": not problems,
    }
    if problems:
        raise LeakError("leak check failed: " + "; ".join(problems))
    return out


def _window_grams(windows, n: int = TOKEN_NGRAM) -> set[bytes]:
    out: set[bytes] = set()
    for row, length in zip(np.ascontiguousarray(windows.ids, dtype=np.int32), windows.lengths):
        data = row[: int(length)].tobytes()
        out.update(data[4 * i : 4 * (i + n)] for i in range(int(length) - n + 1))
    return out


def window_leak_check(train, held: dict[str, Any]) -> dict[str, Any]:
    """The share of each held-out split's 16-token sequences that occur in the training windows (bounded)."""
    grams = _window_grams(train)
    out: dict[str, Any] = {"token_ngram": TOKEN_NGRAM, "bound": MAX_TOKEN_NGRAM_SHARE}
    problems = []
    for name, w in held.items():
        g = _window_grams(w)
        share = len(g & grams) / max(len(g), 1)
        out[f"{name}_share_in_train"] = round(share, 5)
        if share > MAX_TOKEN_NGRAM_SHARE:
            problems.append(
                f"{share:.1%} of the {name} windows' {TOKEN_NGRAM}-token sequences are in the training windows"
            )
    out["problems"], out["passed"] = problems, not problems
    if problems:
        raise LeakError("training-window check failed: " + "; ".join(problems))
    return out


def store_overlap(train, store_text_windows) -> dict[str, Any]:
    """The store-vs-training-window overlap, measured: the share of the training windows' 16-token sequences
    that also occur in the text the stores were built from (0 by construction of the split; stated here)."""
    grams, store = _window_grams(train), _window_grams(store_text_windows)
    return {
        "token_ngram": TOKEN_NGRAM,
        "training_sequences_in_store_text": round(len(grams & store) / max(len(grams), 1), 5),
        "by_construction": "the stores are built from train articles that no training window reads",
    }
