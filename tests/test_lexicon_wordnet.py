"""WordNet through NLTK: the shared nltk_data, a Debian-style dict folder without lexnames, and pairs."""

from __future__ import annotations

import zipfile

import pytest

from sensekit.errors import InputError
from sensekit.lexicon.wordnet import LEXNAMES, open_wordnet, wordnet_pairs


@pytest.fixture(scope="module")
def wn(shared):
    return open_wordnet()


def test_lexnames_constant():
    lines = LEXNAMES.splitlines()
    assert len(lines) == 45 and lines[0] == "00\tadj.all\t3" and lines[44] == "44\tadj.ppl\t3"
    assert lines[3] == "03\tnoun.Tops\t1" and lines[29] == "29\tverb.body\t2"


@pytest.mark.integration
def test_wordnet_good_bad_and_bank(wn):
    assert len(wn.synsets("bank")) >= 10
    ants = {a.name() for s in wn.synsets("good", pos="a") for lemma in s.lemmas() for a in lemma.antonyms()}
    assert "bad" in ants


@pytest.mark.integration
def test_wordnet_pairs(wn):
    pairs = list(wordnet_pairs(wn, similar_tos=True))
    plain = [p for p in pairs if "similar_to" not in p[3]]
    good_bad = [p for a, b, k, p in plain if (a, b, k) == ("good", "bad", "ant") and p["synset"].startswith("good.a.")]
    assert good_bad and good_bad[0]["gloss"] and good_bad[0]["antonym_synset"].startswith("bad.a.")
    name = wn.synset("bank.n.02").name()  # depository_financial_institution.n.01
    syn = {(a, b) for a, b, k, p in plain if k == "syn" and p["synset"] == name}
    assert ("depository financial institution", "bank") in syn or ("bank", "depository financial institution") in syn
    assert sum(k == "ant" for _, _, k, _ in plain) > 7000 and sum(k == "syn" for _, _, k, _ in plain) > 100_000
    similar = [p for p in pairs if "similar_to" in p[3]]
    assert similar and all(k == "syn" and p["pos"] in ("a", "s") for _, _, k, p in similar)


@pytest.mark.integration
def test_wordnet_dict_folder_without_lexnames(shared, tmp_path, monkeypatch):
    """A Debian-style folder (no lexnames): a cache copy with the 45 lexnames is made under SENSEKIT_HOME."""
    folder = tmp_path / "wordnet"
    folder.mkdir()
    with zipfile.ZipFile(shared / "data" / "nltk_data" / "corpora" / "wordnet.zip") as z:
        for info in z.infolist():
            name = info.filename.split("/")[-1]
            if name and name != "lexnames":
                (folder / name).write_bytes(z.read(info))
    home = tmp_path / "home"
    monkeypatch.setenv("SENSEKIT_HOME", str(home))
    before = sorted(p.name for p in folder.iterdir())
    import nltk.data

    monkeypatch.setattr(nltk.data, "path", [])  # as on a machine with only Debian's WordNet
    wn = open_wordnet(str(folder))
    assert len(wn.synsets("bank")) >= 10
    assert wn.synset("bank.n.01").lexname() == "noun.object"
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written next to the data
    copies = list((home / "wordnet").glob("dict-*/lexnames"))
    assert len(copies) == 1 and copies[0].read_text() == LEXNAMES
    assert len(open_wordnet(str(folder)).synsets("good")) > 20  # the cache copy is reused


def test_wordnet_not_found(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        open_wordnet(str(tmp_path / "nope"))
    with pytest.raises(InputError, match="no WordNet 3.0 found"):
        open_wordnet(str(tmp_path))
