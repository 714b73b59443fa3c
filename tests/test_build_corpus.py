"""Corpus readers (text, JSONL, MediaWiki XML, HF datasets, folders/globs) and the window packer."""

from __future__ import annotations

import bz2
import importlib.util
import json

import numpy as np
import pytest

from sensekit.builder.corpus import iter_documents, pack_windows, resolve_paths
from sensekit.errors import InputError, MissingDependency

WIKI = """<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/">
  <siteinfo><sitename>Test</sitename></siteinfo>
  <page><title>River bank</title><ns>0</ns><id>1</id>
    <revision><id>5</id><text xml:space="preserve">'''River bank''' is the [[land]] beside a {{convert|3|m}} [[river|stream]].&lt;ref&gt;A source&lt;/ref&gt;
[[File:Bank.jpg|thumb|A bank]]
== History ==
Banks erode.
[[Category:Geography]]</text></revision></page>
  <page><title>Talk:River bank</title><ns>1</ns><id>2</id><revision><text>talk text</text></revision></page>
  <page><title>Riverbank</title><ns>0</ns><id>3</id><redirect title="River bank"/><revision><text>#REDIRECT [[River bank]]</text></revision></page>
</mediawiki>"""


def test_plain_text_folder_and_glob(tmp_path):
    (tmp_path / "a.txt").write_text("first doc\n", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text("second doc\n", encoding="utf-8")
    (tmp_path / ".hidden").write_text("skip me", encoding="utf-8")
    docs = list(iter_documents([str(tmp_path)]))
    assert [t for _, t in docs] == ["first doc", "second doc"]
    assert [t for _, t in iter_documents([str(tmp_path / "**" / "*.md")])] == ["second doc"]
    with pytest.raises(InputError, match="does not exist"):
        list(iter_documents([str(tmp_path / "missing.txt")]))
    with pytest.raises(InputError, match="matches no file"):
        list(iter_documents([str(tmp_path / "*.nope")]))


def test_jsonl_text_field_ids_and_compression(tmp_path):
    path = tmp_path / "c.jsonl.bz2"
    with bz2.open(path, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": "d1", "body": "hello bank"}) + "\n\n")
        fh.write(json.dumps({"body": "second"}) + "\n")
    assert list(iter_documents([str(path)], text_field="body")) == [("d1", "hello bank"), ("c.jsonl.bz2:3", "second")]
    with pytest.raises(InputError, match="no field 'text'.*--text-field"):
        list(iter_documents([str(path)]))


def test_malformed_jsonl_line_is_reported_with_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n{"text": "fine"}\n{"text": broken\n', encoding="utf-8")
    docs = iter_documents([str(path)])
    assert next(docs)[1] == "ok"
    with pytest.raises(InputError) as err:
        list(docs)
    assert f"{path}:3:" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("compress", [False, True])
def test_mediawiki_xml_articles_only_markup_stripped(tmp_path, compress):
    path = tmp_path / ("wiki.xml.bz2" if compress else "wiki.xml")
    data = WIKI.encode()
    path.write_bytes(bz2.compress(data) if compress else data)
    docs = list(iter_documents([str(path)]))
    assert [d for d, _ in docs] == ["River bank"]
    text = docs[0][1]
    assert text.startswith("River bank is the land beside a stream.")
    for junk in ("[[", "{{", "'''", "thumb", "Category", "A source", "=="):
        assert junk not in text
    assert "History" in text and "Banks erode." in text


def test_hf_datasets_save_to_disk_folders(tmp_path):
    """Real `save_to_disk` folders (datasets is in the test extra): a Dataset, a DatasetDict of two splits read
    in name order with their ids, --text-field, and a missing column as a one-line error."""
    datasets = pytest.importorskip("datasets", reason="pip install -e '.[test]' installs datasets")

    datasets.Dataset.from_dict({"text": ["a bank", "", "a bat"]}).save_to_disk(str(tmp_path / "ds"))
    assert list(iter_documents([str(tmp_path / "ds")])) == [("0", "a bank"), ("2", "a bat")]  # empty text skipped
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"id": ["t1", "t2"], "body": ["river bank", "money bank"]}),
            "dev": datasets.Dataset.from_dict({"id": ["d1"], "body": ["a light box"]}),
        }
    ).save_to_disk(str(tmp_path / "dd"))
    docs = list(iter_documents([str(tmp_path / "dd")], text_field="body"))
    assert docs == [("d1", "a light box"), ("t1", "river bank"), ("t2", "money bank")]
    # a folder of them: each is one unit (a DatasetDict once, not again as its split folders)
    assert resolve_paths([str(tmp_path)]) == [tmp_path / "dd", tmp_path / "ds"]
    with pytest.raises(InputError, match="has no column 'text'.*--text-field"):
        list(iter_documents([str(tmp_path / "dd")]))


def test_hf_datasets_folder_without_the_package_names_the_install(tmp_path, monkeypatch):
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "dataset_info.json").write_text("{}")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "datasets" else real(name, *a))
    with pytest.raises(MissingDependency, match="pip install datasets"):
        list(iter_documents([str(folder)]))


def test_hf_folder_is_a_unit(tmp_path):
    folder = tmp_path / "corpus" / "ds"
    folder.mkdir(parents=True)
    (folder / "dataset_info.json").write_text("{}")
    (folder / "data-00000.arrow").write_bytes(b"")
    (tmp_path / "corpus" / "x.txt").write_text("x")
    assert resolve_paths([str(tmp_path / "corpus")]) == [folder, tmp_path / "corpus" / "x.txt"]


def test_pack_windows_overlap_covers_every_pair_once():
    from conftest import train_tokenizer
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=train_tokenizer())
    text = " ".join(["the bank of the river was muddy"] * 6)
    full = tok(text, add_special_tokens=False)["input_ids"]
    windows = list(pack_windows([(7, text)], tok, seq_len=10, overlap=1, prefix=[0]))
    assert all(len(w.ids) <= 10 and w.ids[0] == 0 and w.doc == 7 for w in windows)
    assert windows[0].repeated == 0 and all(w.repeated == 1 for w in windows[1:])
    pairs = [(int(a), int(b)) for w in windows for a, b in zip(w.ids[1:-1], w.ids[2:])]
    assert pairs == list(zip(full[:-1], full[1:]))
    # offsets point at the token's text
    w = windows[1]
    for tid, (s, e) in zip(w.ids[1:], w.offsets[1:]):
        assert tok.decode([int(tid)]).strip() == text[s:e].strip()
    no_overlap = list(pack_windows([(0, text)], tok, seq_len=10, overlap=0))
    assert np.concatenate([w.ids for w in no_overlap]).tolist() == full


def test_select_skips_stripping_but_keeps_ordinals(tmp_path, monkeypatch):
    from sensekit.builder import corpus

    path = tmp_path / "wiki.xml"
    page = "<page><title>P{i}</title><ns>0</ns><revision><text>[[a|Page]] {i} text.</text></revision></page>"
    path.write_text(
        '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/">'
        + "".join(page.format(i=i) for i in range(5))
        + "</mediawiki>"
    )
    calls = []
    real = corpus.wikitext_to_text
    monkeypatch.setattr(corpus, "wikitext_to_text", lambda w: calls.append(w) or real(w))
    docs = list(iter_documents([str(path)], select=lambda o: o % 2 == 1))
    assert [d for d, _ in docs] == [f"P{i}" for i in range(5)]
    assert [t for _, t in docs] == ["", "Page 1 text.", "", "Page 3 text.", ""]
    assert len(calls) == 2


def test_wordnet_default_corpus(shared):
    from sensekit.builder.wordnet_corpus import iter_wordnet

    docs = iter_wordnet()
    first = [next(docs) for _ in range(50)]
    names = [d for d, _ in first]
    assert all(n.count(".") >= 2 for n in names)
    assert len({n.split(".")[-2] for n in names}) > 1  # a mix of parts of speech, not all adjectives first
    assert [d for d, _ in zip(iter_wordnet(), range(50))] == first  # a fixed order
    from sensekit.builder.wordnet_corpus import _open_wordnet_cached

    wn = _open_wordnet_cached(None)  # the reader iter_wordnet used
    name, text = first[0]
    s = wn.synset(name)
    assert text.split("\n") == [s.definition()] + s.examples()


def test_missing_wordnet_says_to_pass_a_corpus(monkeypatch):
    from sensekit.builder import wordnet_corpus
    from sensekit.lexicon import wordnet

    def nowhere(root=None):
        raise InputError("WordNet not found")

    monkeypatch.setattr(wordnet, "open_wordnet", nowhere)
    monkeypatch.setattr(wordnet_corpus, "_READERS", {})
    with pytest.raises(InputError, match="pass a corpus path") as err:
        next(wordnet_corpus.iter_wordnet())
    assert "\n" not in str(err.value)
