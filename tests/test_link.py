"""Sense linking (sensekit/builder/link.py): assignment to synset prototypes, linked + induced senses, labels."""

from __future__ import annotations

import numpy as np
import pytest

from sensekit.builder.link import Prototypes, assign, distinctive_words, link_senses, sense_labels
from sensekit.builder.prototypes import word_of_token
from sensekit.builder.wordnet_corpus import find_occurrence


def _two_words(rng, d=16):
    """Key 5: 6 samples near direction e0, 6 near e1; key 9: 5 samples near e2. Prototypes: key 5 has
    synsets at e0 ('a.n.01') and e3 ('c.n.01'); key 9 has none."""
    e = np.eye(d, dtype=np.float32)
    noise = lambda n: rng.normal(0, 0.05, (n, d)).astype(np.float32)  # noqa: E731
    vectors = np.concatenate([e[0] + noise(6), e[1] + noise(6), e[2] + noise(5)])
    keys = np.array([5, 9])
    indptr = np.array([0, 12, 17])
    protos = Prototypes(
        np.array([5, 5]), np.stack([e[3], e[0]]), ["c.n.01", "a.n.01"], ["gloss c", "gloss a"], ["w", "w"], [0, 2]
    )
    return keys, indptr, vectors, protos


def _centroid_cluster(keys, indptr, vectors):
    """A stand-in for cluster_adaptive: one sense per key, its centroid; its first member as context."""
    from sensekit.builder.cluster import ClusterResult

    n = np.diff(indptr)
    cent = np.add.reduceat(vectors, indptr[:-1], axis=0) / n[:, None]
    return ClusterResult(
        np.asarray(keys), np.zeros(len(keys), np.int64), n, cent.astype(np.float32),
        np.arange(len(keys)), np.zeros(len(keys), np.int64), indptr[:-1].copy(), np.zeros(len(keys), np.float32), 0.0,
    )  # fmt: skip


def test_assign_picks_the_nearest_prototype_of_the_samples_own_key():
    rng = np.random.default_rng(0)
    keys, indptr, vectors, protos = _two_words(rng)
    mean, std = np.zeros(16, np.float32), np.ones(16, np.float32)
    proto, sim = assign(keys, indptr, vectors, protos, 0.5, mean, std, chunk=5)  # chunks cut across keys
    # prototypes are sorted by key then kept in order: index 0 = c.n.01 (e3), 1 = a.n.01 (e0)
    assert protos.synset[1] == "a.n.01"
    assert (proto[:6] == 1).all()  # near e0: joins a.n.01
    assert (proto[6:12] == -1).all()  # near e1: below the threshold, unassigned
    assert (proto[12:] == -1).all() and np.isneginf(sim[12:]).all()  # key 9 has no prototypes
    assert sim[:6].min() > 0.9 and sim[6:12].max() < 0.5


def test_link_senses_links_then_clusters_the_rest():
    rng = np.random.default_rng(1)
    keys, indptr, vectors, protos = _two_words(rng)
    mean, std = np.zeros(16, np.float32), np.ones(16, np.float32)
    res = link_senses(
        keys,
        indptr,
        vectors,
        protos,
        threshold=0.5,
        contexts_per_sense=2,
        cluster=_centroid_cluster,
        mean=mean,
        std=std,
    )
    c = res.clusters
    assert c.sense_key.tolist() == [5, 5, 5, 9]
    assert c.sense_index.tolist() == [0, 1, 2, 0]
    assert c.sense_count.tolist() == [6, 6, 0, 5]
    # equal counts: the linked sense first; c.n.01, which no sample joined, is a sense of count 0
    assert res.proto.tolist() == [1, -1, 0, -1]
    assert res.assigned == 6 and res.samples == 17
    # the linked centroid leans on its prototype: mean of 6 members and the prototype itself
    expect = (vectors[:6].sum(0) + protos.vectors[1]) / 7
    assert np.allclose(c.centroids[0], expect, atol=1e-5)
    assert np.allclose(c.centroids[1], vectors[6:12].mean(0), atol=1e-5)
    assert np.allclose(c.centroids[2], protos.vectors[0])  # no member: the prototype itself
    # contexts: the linked sense's 2 most central members, then the induced senses' (mapped back to sample rows)
    assert c.ctx_sense.tolist() == [0, 0, 1, 3]
    assert set(c.ctx_sample[:2].tolist()) <= set(range(6))
    assert c.ctx_sample[2:].tolist() == [6, 12]
    d = np.linalg.norm(vectors[:6] - expect, axis=1)
    assert c.ctx_sample[:2].tolist() == np.argsort(d)[:2].tolist()


def test_link_senses_can_leave_out_the_synsets_no_sample_joined():
    rng = np.random.default_rng(1)
    keys, indptr, vectors, protos = _two_words(rng)
    res = link_senses(
        keys, indptr, vectors, protos, threshold=0.5, contexts_per_sense=2, cluster=_centroid_cluster,
        mean=np.zeros(16, np.float32), std=np.ones(16, np.float32), keep_unjoined=False,
    )  # fmt: skip
    assert res.proto.tolist() == [1, -1, -1] and res.clusters.sense_count.tolist() == [6, 6, 5]
    assert res.clusters.ctx_sense.tolist() == [0, 0, 1, 2]


def test_link_senses_without_prototypes_is_the_clustering():
    rng = np.random.default_rng(2)
    keys, indptr, vectors, _ = _two_words(rng)
    res = link_senses(
        keys, indptr, vectors, Prototypes.empty(16), threshold=0.0, contexts_per_sense=1, cluster=_centroid_cluster
    )
    assert res.assigned == 0 and (res.proto == -1).all()
    assert res.clusters.sense_count.tolist() == [12, 5]


def test_labels_linked_and_induced():
    protos = Prototypes(np.array([5]), np.zeros((1, 4)), ["bank.n.01"], ["sloping land"], ["bank"], [1])
    words = [[], ["river", "water"], []]
    synset, gloss, lemma, label = sense_labels(np.array([0, -1, -1]), protos, words)
    assert synset == ["bank.n.01", None, None] and gloss == ["sloping land", None, None]
    assert lemma == ["bank", None, None]
    assert label == ["bank.n.01: sloping land", "~ river, water", None]


def test_distinctive_words_against_the_keys_other_senses():
    snippets = [
        "the bank of the river bank was muddy",
        "a river bank with water",
        "the bank lends money",
        "money in the bank account",
    ]
    marks = np.array([[4, 8], [8, 12], [4, 8], [13, 17]])
    words = distinctive_words(np.array([1, 1]), np.array([0, 0, 1, 1]), snippets, marks, n_words=2)
    assert words[0][0] == "river" and "bank" not in words[0]
    assert words[1][0] == "money"


def test_word_of_token_and_find_occurrence():
    assert word_of_token(" bank") == "bank"
    assert word_of_token(" Bank") == "bank"
    assert word_of_token("bank") is None  # a word piece
    assert word_of_token(" 42") is None and word_of_token(" a") is None

    class FakeWN:
        @staticmethod
        def morphy(w, pos):
            return {"banks": "bank", "banked": "bank"}.get(w)

    assert find_occurrence("They banked the fire.", "bank", "v", FakeWN) == (5, 11)
    assert find_occurrence("Two banks.", "bank", "n", FakeWN) == (4, 9)
    assert find_occurrence("Nothing here.", "bank", "n", FakeWN) is None


@pytest.mark.parametrize("threshold", [-1.0, 1.01])
def test_threshold_extremes(threshold):
    rng = np.random.default_rng(3)
    keys, indptr, vectors, protos = _two_words(rng)
    proto, _ = assign(keys, indptr, vectors, protos, threshold, np.zeros(16), np.ones(16))
    linked = (proto[:12] >= 0).sum()
    assert linked == (12 if threshold < 0 else 0)


def test_real_teacher_and_wordnet_link_bank_in_context(shared):
    """The bundled teacher and WordNet: prototypes of `bank`, and two sentences nearest their synsets."""
    pytest.importorskip("torch")
    from sensekit.builder.link import _unit
    from sensekit.builder.prototypes import build_prototypes
    from sensekit.model.occurrence import occurrence_states
    from sensekit.model.teacher import load_teacher

    teacher = load_teacher()
    (bank,) = teacher.tokenizer.encode(" bank", add_special_tokens=False)
    protos, report = build_prototypes(
        teacher, np.array([bank]), [" bank"], [0], layer=9, representation="first", budget=10**6, heldout_share=0.2
    )
    assert report.words_linked == 1 and "bank.n.01" in protos.synset and report.prototypes == len(protos) >= 10
    sentences = ["We sat on the grassy bank of the stream.", "She opened an account at the bank downtown."]
    starts = [s.index(" bank") + 1 for s in sentences]
    q, ok = occurrence_states(teacher, sentences, starts, [a + 4 for a in starts], 9, "first")
    pool = np.concatenate([q, protos.vectors])
    mean, std = pool.mean(0), pool.std(0) + 1e-6
    cos = _unit((q - mean) / std) @ _unit((protos.vectors - mean) / std).T  # [2, P]
    nearest = [protos.synset[j] for j in cos.argmax(1)]
    assert nearest == ["bank.n.01", "depository_financial_institution.n.01"]
