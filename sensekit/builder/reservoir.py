"""Per-key-token reservoir sampling (Algorithm R), vectorised over whole batches.

Every key token v keeps at most G vectors: the first G it sees, then the n-th occurrence
replaces a uniformly drawn slot with probability G/n. A batch of P key positions is admitted
with numpy array ops only: a stable sort by key gives each position its running occurrence
number n, one uniform draw per position decides acceptance and slot, and when several
positions of one batch hit the same (key, slot) the last one in stream order wins, exactly
as the sequential algorithm would have it.

Storage is a pool of float16 vectors in blocks of `BLOCK` slots, allocated when a key first
fills them, so a capped run never pays G slots for a key seen once. Each kept vector also
keeps (doc ordinal, char_start, char_end) of its key token and, with `lexical_dim`, the sample's
second view (the lexical vector of the same position, fp16): both views are one sample, kept or
replaced together, so memory stays bounded at G samples per key.

`SampleSet` is the exported, key-sorted CSR form that clustering reads; `merge_samples` is
the weighted reservoir merge of two SampleSets (multi-process builds): it draws how many
of the merged G come from each side from the hypergeometric law over the two *counts*, so
the merged sample is uniform over the union of both streams.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Reservoir", "SampleSet", "merge_samples", "reservoir_bytes", "BLOCK"]

BLOCK = 8  # slots per allocation block
_META = 3  # doc ordinal, char_start, char_end


def reservoir_bytes(n_keys: int, cap: int, dim: int, max_positions: int | None, lexical_dim: int = 0) -> int:
    """Worst-case bytes of a Reservoir with `n_keys` possible keys: vectors of both views (fp16) + metadata."""
    block = min(BLOCK, cap)
    slots = n_keys * cap
    if max_positions is not None:  # each position fills at most one slot; blocks round up per key
        slots = min(slots, max_positions + min(n_keys, max_positions) * (block - 1))
    per_slot = 2 * (dim + lexical_dim) + 8 * _META
    return int(slots * per_slot + n_keys * 8 * 3)


def _shared_exactly(vectors: np.ndarray, key_of: np.ndarray) -> np.ndarray:
    """[S] bool: rows whose exact bytes also occur under another key (any group size)."""
    S, d = vectors.shape
    rows = np.ascontiguousarray(vectors).view(np.dtype((np.void, d * vectors.itemsize))).ravel()
    _, group = np.unique(rows, return_inverse=True)  # [S] identical rows share a group
    group = group.ravel()
    pairs = np.unique(np.stack([group, key_of], 1), axis=0)  # distinct (group, key)
    keys_per_group = np.bincount(pairs[:, 0], minlength=int(group.max()) + 1)
    return keys_per_group[group] >= 2


def _shared_nearly(
    vectors: np.ndarray, key_of: np.ndarray, cos: float, window: int, seed: int, chunk: int = 65536
) -> np.ndarray:
    """[S] bool: rows with cosine > `cos` to a row of another key among their `window` neighbours along
    two random projections (near-identical vectors project next to each other). O(S * window * d)."""
    S, d = vectors.shape
    rng = np.random.default_rng(seed)
    unit = vectors.astype(np.float32)
    unit /= np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)  # [S, d]
    shared = np.zeros(S, bool)
    for _ in range(2):
        order = np.argsort(unit @ rng.standard_normal(d).astype(np.float32), kind="stable")  # [S]
        for off in range(1, min(window, S - 1) + 1):
            for lo in range(0, S - off, chunk):
                a = order[lo : min(lo + chunk, S - off)]
                b = order[lo + off : min(lo + chunk, S - off) + off]
                hit = ((unit[a] * unit[b]).sum(1) > cos) & (key_of[a] != key_of[b])  # [n]
                shared[a[hit]] = True
                shared[b[hit]] = True
    return shared


@dataclass
class SampleSet:
    """Sampled vectors grouped by key (CSR). keys/counts/lengths [R]; indptr [R+1]; vectors [S, d] fp16;
    meta [S, 3] int64 = (doc ordinal, char_start, char_end). counts = occurrences as a key (>= lengths).
    lexical [S, d'] fp16: the same samples' lexical vectors, or None (no lexical view)."""

    keys: np.ndarray
    counts: np.ndarray
    indptr: np.ndarray
    vectors: np.ndarray
    meta: np.ndarray
    lexical: np.ndarray | None = None

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def without_shared_states(self, cos: float = 0.9999, window: int = 8, seed: int = 0) -> tuple["SampleSet", int]:
        """Drop every sample whose vector was also filed, identically or nearly (cosine > `cos`), under
        another key. Returns (set, dropped).

        A causal LM's state depends only on the prefix, so one state under two keys means one context
        followed by different tokens: it cannot tell the keys apart (e.g. the state after a repeated
        gloss opening such as "a person who"). The same prefix in two batches differs by rounding
        only, hence "nearly". Keys left with no sample disappear.
        """
        S = len(self.vectors)
        if S == 0:
            return self, 0
        key_of = np.repeat(self.keys, self.lengths)  # [S]
        shared = _shared_exactly(self.vectors, key_of) | _shared_nearly(self.vectors, key_of, cos, window, seed)
        dropped = int(shared.sum())
        if not dropped:
            return self, 0
        keep = ~shared
        lengths = np.bincount(np.repeat(np.arange(len(self.keys)), self.lengths)[keep], minlength=len(self.keys))
        alive = lengths > 0
        indptr = np.r_[0, np.cumsum(lengths[alive])].astype(np.int64)
        lexical = None if self.lexical is None else self.lexical[keep]
        return (
            SampleSet(self.keys[alive], self.counts[alive], indptr, self.vectors[keep], self.meta[keep], lexical),
            dropped,
        )


class Reservoir:
    """Reservoirs for keys 0..vocab_size-1, cap G each."""

    def __init__(self, vocab_size: int, dim: int, cap: int, seed: int, stream: int = 0, lexical_dim: int = 0) -> None:
        self.V, self.dim, self.G = int(vocab_size), int(dim), int(cap)
        self.lexical_dim = int(lexical_dim)  # 0: no lexical view
        self.lexical = np.zeros((0, self.lexical_dim), np.float16)  # [cap_slots, d'] the samples' lexical vectors
        self.block = min(BLOCK, self.G)
        self.nblk = -(-self.G // self.block)  # blocks per key
        self.counts = np.zeros(self.V, np.int64)  # [V] occurrences as a key so far
        self.table = np.full((0, self.nblk), -1, np.int64)  # [R, nblk] pool block of each key's blocks
        self.row_of = np.full(self.V, -1, np.int64)  # [V] key -> row of `table`
        self.vectors = np.zeros((0, self.dim), np.float16)  # [cap_slots, d]
        self.meta = np.zeros((0, _META), np.int64)  # [cap_slots, 3]
        self.used_blocks = 0
        self.rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(stream)])))

    # -- the hot path ---------------------------------------------------------------------
    def admit(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Count a batch of key positions (stream order) and decide which to keep.

        keys [P] int64. Returns (sel [m]: positions to store, dest [m]: pool slot of each),
        with no two equal dests. Call `write(dest, vectors[sel], meta[sel])` next.
        """
        keys = np.asarray(keys, np.int64)
        P = len(keys)
        if P == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        order = np.argsort(keys, kind="stable")  # [P] grouped by key, stream order inside
        sk = keys[order]
        starts = np.r_[True, sk[1:] != sk[:-1]]  # [P] first of each key group
        group_start = np.maximum.accumulate(np.where(starts, np.arange(P), 0))
        n = np.empty(P, np.int64)
        n[order] = self.counts[sk] + (np.arange(P) - group_start) + 1  # 1-based occurrence number
        uniq, per_key = sk[starts], np.diff(np.r_[np.flatnonzero(starts), P])
        self.counts[uniq] += per_key
        u = self.rng.random(P)  # one draw per position, always
        j = np.minimum((u * n).astype(np.int64), n - 1)  # uniform in [0, n)
        slot = np.where(n <= self.G, n - 1, j)
        acc = slot < self.G
        sel = np.flatnonzero(acc)
        if len(sel) == 0:
            return sel, sel
        flat = keys[sel] * self.G + slot[sel]
        # several hits on one (key, slot): the last in stream order wins
        _, last_rev = np.unique(flat[::-1], return_index=True)
        keep = np.sort(len(flat) - 1 - last_rev)
        sel, k, s = sel[keep], keys[sel[keep]], slot[sel[keep]]
        return sel, self._slots(k, s)

    def _slots(self, k: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Pool slot of (key, slot) pairs, allocating rows and blocks that are new."""
        new_keys = np.unique(k[self.row_of[k] < 0])
        if len(new_keys):
            self.row_of[new_keys] = len(self.table) + np.arange(len(new_keys))
            self.table = np.concatenate([self.table, np.full((len(new_keys), self.nblk), -1, np.int64)])
        rows, blk = self.row_of[k], s // self.block
        need = self.table[rows, blk] < 0
        if need.any():
            pairs = np.unique(rows[need] * self.nblk + blk[need])
            self.table.reshape(-1)[pairs] = self.used_blocks + np.arange(len(pairs))
            self.used_blocks += len(pairs)
            self._grow(self.used_blocks * self.block)
        return self.table[rows, blk] * self.block + s % self.block

    def _grow(self, slots: int) -> None:
        if slots <= len(self.vectors):
            return
        new = max(slots, 2 * len(self.vectors), 1024)
        vec = np.zeros((new, self.dim), np.float16)
        meta = np.zeros((new, _META), np.int64)
        vec[: len(self.vectors)] = self.vectors
        meta[: len(self.meta)] = self.meta
        self.vectors, self.meta = vec, meta
        if self.lexical_dim:
            lex = np.zeros((new, self.lexical_dim), np.float16)
            lex[: len(self.lexical)] = self.lexical
            self.lexical = lex

    def write(self, dest: np.ndarray, vectors: np.ndarray, meta: np.ndarray, lexical: np.ndarray | None = None) -> None:
        """vectors [m, d] (any float dtype), meta [m, 3] and, with a lexical view, lexical [m, d'] into
        pool slots dest [m] (distinct)."""
        if len(dest):
            self.vectors[dest] = vectors
            self.meta[dest] = meta
            if self.lexical_dim:
                self.lexical[dest] = lexical

    # -- export -----------------------------------------------------------------------------
    def export(self) -> SampleSet:
        """The kept samples, grouped by key in ascending key order (slot order within a key)."""
        keys = np.flatnonzero(self.counts)
        lengths = np.minimum(self.counts[keys], self.G)
        indptr = np.r_[0, np.cumsum(lengths)].astype(np.int64)
        rows = np.repeat(self.row_of[keys], lengths)  # [S]
        slot = np.arange(indptr[-1]) - np.repeat(indptr[:-1], lengths)  # [S] 0..len-1 per key
        pool = self.table[rows, slot // self.block] * self.block + slot % self.block
        lexical = self.lexical[pool] if self.lexical_dim else None
        return SampleSet(
            keys.astype(np.int64), self.counts[keys].copy(), indptr, self.vectors[pool], self.meta[pool], lexical
        )

    # -- checkpoints ----------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        used = self.used_blocks * self.block
        np.save(folder / "counts.npy", self.counts)
        np.save(folder / "table.npy", self.table)
        np.save(folder / "row_of.npy", self.row_of)
        np.save(folder / "vectors.npy", self.vectors[:used])
        np.save(folder / "meta.npy", self.meta[:used])
        if self.lexical_dim:
            np.save(folder / "lexical.npy", self.lexical[:used])
        (folder / "reservoir.json").write_text(
            json.dumps(
                {
                    "V": self.V,
                    "dim": self.dim,
                    "G": self.G,
                    "used_blocks": self.used_blocks,
                    "lexical_dim": self.lexical_dim,
                    "rng": self.rng.bit_generator.state,
                }
            )
        )

    @classmethod
    def load(cls, folder: Path) -> "Reservoir":
        info = json.loads((folder / "reservoir.json").read_text())
        r = cls(info["V"], info["dim"], info["G"], seed=0, lexical_dim=info.get("lexical_dim", 0))
        r.counts = np.load(folder / "counts.npy")
        r.table = np.load(folder / "table.npy")
        r.row_of = np.load(folder / "row_of.npy")
        r.used_blocks = int(info["used_blocks"])
        vec, meta = np.load(folder / "vectors.npy"), np.load(folder / "meta.npy")
        r._grow(len(vec))
        r.vectors[: len(vec)], r.meta[: len(meta)] = vec, meta
        if r.lexical_dim:
            r.lexical[: len(vec)] = np.load(folder / "lexical.npy")
        r.rng.bit_generator.state = info["rng"]
        return r


def _lookup(s: SampleSet, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(index into s.keys, present [R] bool, count [R] int64, 0 where absent) of sorted `keys` [R]."""
    idx = np.searchsorted(s.keys, keys)
    if len(s.keys) == 0:
        return idx, np.zeros(len(keys), bool), np.zeros(len(keys), np.int64)
    at = np.minimum(idx, len(s.keys) - 1)
    present = (idx < len(s.keys)) & (s.keys[at] == keys)
    return idx, present, np.where(present, s.counts[at], 0)


def merge_samples(a: SampleSet, b: SampleSet, cap: int, rng: np.random.Generator) -> SampleSet:
    """Weighted reservoir merge: a uniform sample of size min(G, n_a + n_b) of the union of both streams.

    For a key seen n_a times on one side and n_b on the other, a uniform G-subset of the union
    holds c_a ~ Hypergeometric(n_a, n_b, m) items from side a, and given c_a those are a uniform
    c_a-subset of a's items, hence a uniform c_a-subset of a's uniform sample.
    """
    keys = np.union1d(a.keys, b.keys)  # [R]
    R = len(keys)
    ia, in_a, na = _lookup(a, keys)
    ib, in_b, nb = _lookup(b, keys)
    m = np.minimum(cap, na + nb)
    ca = rng.hypergeometric(na, nb, m)  # [R] vectorised over keys
    cb = m - ca

    def pick(s: SampleSet, idx: np.ndarray, present: np.ndarray, c: np.ndarray) -> np.ndarray:
        """Sample positions (into s.vectors) of a uniform c-subset of each key's samples, key-major."""
        start = np.where(present, s.indptr[np.minimum(idx, len(s.keys) - 1)] if len(s.keys) else 0, 0)
        ln = np.where(present, np.diff(s.indptr)[np.minimum(idx, len(s.keys) - 1)] if len(s.keys) else 0, 0)
        width = int(ln.max()) if len(ln) else 0
        if width == 0:
            return np.zeros((R, 0), np.int64)
        score = rng.random((R, width))
        score[np.arange(width)[None, :] >= ln[:, None]] = np.inf  # empty slots last
        first = np.argsort(score, axis=1, kind="stable")  # [R, width] random order
        take = np.arange(width)[None, :] < c[:, None]
        pos = start[:, None] + first
        return np.where(take, pos, -1)

    pa_ = pick(a, ia, in_a, ca)
    pb_ = pick(b, ib, in_b, cb)
    # key-major concatenation: a's picks then b's picks for each key
    both_src = np.concatenate([np.zeros_like(pa_), np.ones_like(pb_)], axis=1)
    both_pos = np.concatenate([pa_, pb_], axis=1)
    valid = both_pos >= 0
    src, pos = both_src[valid], both_pos[valid]  # row-major order = key-major
    vectors = np.empty((len(pos), a.vectors.shape[1] if len(a.vectors) else b.vectors.shape[1]), np.float16)
    meta = np.empty((len(pos), _META), np.int64)
    with_lexical = a.lexical is not None and b.lexical is not None
    lexical = np.empty((len(pos), a.lexical.shape[1]), np.float16) if with_lexical else None
    for side, s in ((0, a), (1, b)):
        w = src == side
        vectors[w] = s.vectors[pos[w]]
        meta[w] = s.meta[pos[w]]
        if with_lexical:
            lexical[w] = s.lexical[pos[w]]
    indptr = np.r_[0, np.cumsum(m)].astype(np.int64)
    return SampleSet(keys.astype(np.int64), (na + nb).astype(np.int64), indptr, vectors, meta, lexical)
