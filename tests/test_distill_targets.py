"""distill.targets: the store as dense tensors, position sampling, pools, and the vectorised gather
checked against slow Python loops over the store's own tables."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import HIDDEN

torch = pytest.importorskip("torch")

from sensekit.distill.losses import sense_loss  # noqa: E402
from sensekit.distill.targets import SenseTargets, group_size  # noqa: E402
from sensekit.store import open_store  # noqa: E402

VOCAB = 400


@pytest.fixture(scope="module")
def tables(store_dir):  # noqa: F811
    """(targets, senses_of_unit: {('tok', id)|('span', id): [row, ...]}, syn: {token: {unit}}, ant: {...},
    unit_key_of_word)."""
    with open_store(store_dir) as s:
        sm = s.sense_matrix()
        words = {w: (t, sp) for w, t, sp in s.words_table()}
        rels = s.relations_table()
        targets = SenseTargets.from_store(s, VOCAB)
    rows: dict[tuple, list[int]] = {}
    for r in np.lexsort((sm["sense_index"], sm["span_id"], sm["token_id"])):
        key = ("tok", int(sm["token_id"][r])) if sm["token_id"][r] >= 0 else ("span", int(sm["span_id"][r]))
        rows.setdefault(key, []).append(int(r))

    def unit(word):
        if word not in words:  # e.g. ' little' is two tokens and has no cloud: no unit
            return None
        t, sp = words[word]
        key = ("span", sp) if sp is not None else ("tok", t[0]) if len(t) == 1 else None
        return key if key in rows else None

    syn, ant = {}, {}
    for head, related, kind, _, _ in rels:
        u = unit(related)
        if u is not None and unit(head) is not None:
            (syn if kind == "syn" else ant).setdefault(words[head][0][0], set()).add(u)
    return targets, rows, syn, ant


def _unit_key(targets, rows, u):
    """The ('tok'|'span', id) key of unit index u, found by its rows."""
    r = sorted(int(x) for x in targets.unit_rows[u].tolist() if x >= 0)
    return next(k for k, v in rows.items() if sorted(v) == r)


def test_dense_rows_and_csr_pools_match_the_store(tables):
    targets, rows, syn, ant = tables
    for key, want in rows.items():
        if key[0] == "tok":
            u = int(targets.token_unit[key[1]])
            got = [x for x in targets.unit_rows[u].tolist() if x >= 0]
            assert got == want  # sense_index order
    assert targets.n_span_units == 1
    for ptr, vals, ref in ((targets.syn_ptr, targets.syn_unit, syn), (targets.ant_ptr, targets.ant_unit, ant)):
        for tok in range(VOCAB):
            units = vals[ptr[tok] : ptr[tok + 1]].tolist()
            got = {_unit_key(targets, rows, u) for u in units}
            assert got == ref.get(tok, set()), tok
            assert len(units) == len(got)  # no duplicates
    assert int(targets.has_rel.sum()) == len(set(syn) | set(ant))


@pytest.mark.parametrize("q,want", [(0, 0), (3, 3), (25, 25), (62, 25), (63, 25), (64, 25), (65, 26), (100, 40)])
def test_group_size_rule(q, want):
    # n = floor(0.4 |Q|) when that exceeds 25, else min(|Q|, 25)
    assert group_size(torch.tensor([q]), 0.4, 25).item() == want


def _labels(targets, B=5, T=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    rel_tokens = targets.has_rel.nonzero().squeeze(1)
    labels = torch.randint(0, VOCAB, (B, T), generator=g)
    pick = torch.rand(B, T, generator=g) < 0.5
    labels[pick] = rel_tokens[torch.randint(0, len(rel_tokens), (int(pick.sum()),), generator=g)]
    labels[torch.rand(B, T, generator=g) < 0.1] = -100
    labels[4] = -100  # a row without targets
    return labels


def test_position_sampling_follows_the_rule(tables):
    targets = tables[0]
    labels = _labels(targets)
    b, t, is_rel = targets.sample_positions(labels, 0.4, 3, torch.Generator().manual_seed(3))
    valid = labels >= 0
    in_q = valid & targets.has_rel[labels.clamp(min=0)]
    for row in range(labels.shape[0]):
        n = int(group_size(in_q[row].sum()[None], 0.4, 3))
        rel_t = t[(b == row) & is_rel].tolist()
        tok_t = t[(b == row) & ~is_rel].tolist()
        assert len(rel_t) == n and len(set(rel_t)) == n and all(in_q[row, x] for x in rel_t)
        assert len(tok_t) == min(n, int(valid[row].sum())) and len(set(tok_t)) == len(tok_t)
        assert all(valid[row, x] for x in tok_t)


@pytest.mark.parametrize("own_negative", [False, True])
def test_pools_hold_the_right_units(tables, own_negative):
    targets, rows, syn, ant = tables
    labels = _labels(targets, seed=1)
    gen = torch.Generator().manual_seed(5)
    b, t, is_rel = targets.sample_positions(labels, 0.4, 25, gen)
    y = labels[b, t]
    neighbors = 2
    pos, neg, active = targets.pools(y, is_rel, neighbors, own_negative, gen)
    all_units = {k: set(v) for k, v in rows.items()}
    for i in range(len(y)):
        tok = int(y[i])
        own = rows.get(("tok", tok), [])
        assert bool(active[i]) == bool(own)
        p = [x for x in pos[i].tolist() if x >= 0]
        n = [x for x in neg[i].tolist() if x >= 0]
        assert p[: len(own)] == own
        extra_p, extra_n = set(p[len(own) :]), set(n)
        if own_negative and is_rel[i]:
            assert set(own) <= extra_n
            extra_n -= set(own)
        if not is_rel[i]:
            assert not extra_p and not extra_n
            continue
        for extra, ref in ((extra_p, syn.get(tok, set())), (extra_n, ant.get(tok, set()))):
            units = {k for k, v in all_units.items() if v & extra}
            assert units <= ref and len(units) == min(neighbors, len(ref))
            assert set().union(*(all_units[k] for k in units)) == extra  # whole senses/clouds of each sampled unit


def test_gather_equals_a_slow_loop_over_positions(tables):
    targets, rows, syn, ant = tables
    labels = _labels(targets, seed=2)
    B, T = labels.shape
    g = torch.randn(B, T, HIDDEN, generator=torch.Generator().manual_seed(0))
    batch = targets.gather(
        labels,
        g,
        kappa=3,
        neighbors=25,
        frac=0.4,
        floor=25,
        generator=torch.Generator().manual_seed(9),
        keep_pools=True,
    )
    emb = targets.emb
    h = torch.randn(batch.size, HIDDEN, generator=torch.Generator().manual_seed(1)) * 0.5
    lp, ln = sense_loss(h, batch.positives, batch.pos_mask, batch.negatives, batch.neg_mask, batch.active, 0.0, 1.0)
    tp, tn, count = 0.0, 0.0, 0
    for i in range(batch.size):  # the slow reference: one position at a time, pools as Python lists
        if not batch.active[i]:
            continue
        anchor = g[batch.b[i], batch.t[i]]

        def top(pool, anchor=anchor):
            return sorted((int(r) for r in pool if r >= 0), key=lambda r: float(((emb[r] - anchor) ** 2).sum()))[:3]

        P, N = top(batch.pos_pool[i]), top(batch.neg_pool[i])
        tp += sum(max(0.0, float(((h[i] - emb[r]) ** 2).mean())) for r in P) / len(P)
        tn += sum(max(0.0, 1.0 - float(((h[i] - emb[r]) ** 2).mean())) for r in N) / len(N) if N else 0.0
        count += 1
    assert count > 0 and int(batch.is_rel.sum()) > 0
    assert lp.item() == pytest.approx(tp / count, rel=1e-5)
    assert ln.item() == pytest.approx(tn / count, rel=1e-5, abs=1e-7)


def test_a_store_from_another_vocabulary_is_refused(store_dir):  # noqa: F811
    from sensekit.errors import TeacherMismatch

    with open_store(store_dir) as s, pytest.raises(TeacherMismatch, match="vocabulary"):
        SenseTargets.from_store(s, 10)


def test_half_precision_dictionary_selects_like_float32(store_dir):  # noqa: F811
    with open_store(store_dir) as s:
        full = SenseTargets.from_store(s, VOCAB)
        half = SenseTargets.from_store(s, VOCAB, dtype=torch.bfloat16)
    assert half.emb.dtype == torch.bfloat16 and half.emb.element_size() == 2
    labels = _labels(full, seed=3)
    g = torch.randn(*labels.shape, HIDDEN, generator=torch.Generator().manual_seed(4))
    kw = dict(kappa=3, neighbors=25, frac=0.4, floor=25)
    a = full.gather(labels, g, generator=torch.Generator().manual_seed(1), **kw)
    b = half.gather(labels, g, generator=torch.Generator().manual_seed(1), **kw)
    assert torch.equal(a.b, b.b) and torch.equal(a.pos_mask, b.pos_mask) and b.positives.dtype == torch.float32
    torch.testing.assert_close(b.positives, a.positives, rtol=1e-2, atol=2e-2)
