"""SenseTargets: a sense store turned, once at start-up, into dense tensors on the training device.

A *unit* is whatever owns sense rows: a token (its k-means centroids) or a span (the cloud
of a multi-token related word). Built once:

- `emb` [R, d]: every sense row of the store, float32.
- `unit_rows` [U, K] long: each unit's rows, padded with -1 to K = the most senses of a unit.
- `token_unit` [V] long: the unit of a token id, -1 when the token has no senses.
- `syn_ptr`/`syn_unit`, `ant_ptr`/`ant_unit`: CSR pools over token ids. Row v lists the units
  of v's synonyms (antonyms) that have senses; self-links and duplicates are dropped.
- `has_rel` [V] bool: v has senses and at least one synonym or antonym with senses.

Each training step calls `gather()` once: it draws the relation and token groups for the
whole batch, samples up to `neighbors` synonyms/antonyms per position (random keys + top-k
inside the CSR rows), gathers every candidate row, and keeps the kappa nearest to g_t.
There is no Python loop over positions or candidates (only over memory-bounded chunks).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sensekit.errors import InputError, TeacherMismatch
from sensekit.view import LOSS

from .losses import top_kappa_from_distances

__all__ = ["SenseTargets", "SenseBatch", "group_size"]

# Elements of a gathered [chunk, C, d] candidate tensor per chunk (64 MiB in float32).
CHUNK_ELEMENTS = 1 << 24
# Use one [P, U] matmul against the U distinct candidate rows of a batch while U <= this x C.
UNIQUE_FACTOR = 64


@dataclass
class SenseBatch:
    """What one step needs for the sense loss. P items = relation group + token group."""

    b: torch.Tensor  # [P] long, batch row of the item
    t: torch.Tensor  # [P] long, position in the row
    is_rel: torch.Tensor  # [P] bool, relation group (True) or token group (False)
    active: torch.Tensor  # [P] bool, y_t has senses (inactive items contribute nothing)
    positives: torch.Tensor  # [P, Kp, d] kept positive vectors
    pos_mask: torch.Tensor  # [P, Kp] bool
    negatives: torch.Tensor  # [P, Kn, d] kept negative vectors
    neg_mask: torch.Tensor  # [P, Kn] bool
    pos_pool: torch.Tensor  # [P, Cp] long sense rows of the whole positive pool (-1 pad), before selection
    neg_pool: torch.Tensor  # [P, Cn] long, the same for negatives (both [P, 0] unless gather(keep_pools=True))

    @property
    def size(self) -> int:
        return int(self.b.numel())


def group_size(q: torch.Tensor, frac: float, floor: int) -> torch.Tensor:
    """n = floor(frac * |Q|) when that exceeds `floor`, else min(|Q|, floor). q [B] long -> [B] long."""
    scaled = torch.floor(q.double() * frac).long()
    return torch.where(scaled > floor, scaled, torch.clamp(q, max=floor))


def _draw(candidates: torch.Tensor, n: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Per row, n[b] distinct positions drawn uniformly among candidates[b] (bool [B, T]) -> mask [B, T]."""
    keys = torch.rand(candidates.shape, generator=generator, device=candidates.device)
    keys = keys.masked_fill(~candidates, -1.0)
    order = keys.argsort(dim=1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    n = torch.minimum(n, candidates.sum(1))
    return (rank < n.unsqueeze(1)) & candidates


def _sample_csr(
    ptr: torch.Tensor, values: torch.Tensor, rows: torch.Tensor, limit: int, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to `limit` entries sampled without replacement from CSR rows `rows` [P].

    -> (values [P, k] long, mask [P, k] bool), k = min(limit, longest row).
    """
    start = ptr[rows]
    length = ptr[rows + 1] - start
    longest = int(length.max()) if rows.numel() else 0
    if longest == 0:
        return rows.new_zeros((rows.numel(), 0)), torch.zeros((rows.numel(), 0), dtype=torch.bool, device=rows.device)
    span = torch.arange(longest, device=rows.device)
    inside = span.unsqueeze(0) < length.unsqueeze(1)  # [P, L]
    keys = torch.rand(inside.shape, generator=generator, device=rows.device).masked_fill(~inside, -1.0)
    k = min(limit, longest)
    top, j = torch.topk(keys, k, dim=1)  # [P, k]
    ok = top >= 0
    idx = (start.unsqueeze(1) + j).clamp(max=max(values.numel() - 1, 0))
    return values[idx].masked_fill(~ok, 0), ok


class SenseTargets:
    """Dense, device-resident sense rows and relation pools of a store (see the module docstring)."""

    def __init__(
        self,
        emb: torch.Tensor,
        unit_rows: torch.Tensor,
        token_unit: torch.Tensor,
        syn_ptr: torch.Tensor,
        syn_unit: torch.Tensor,
        ant_ptr: torch.Tensor,
        ant_unit: torch.Tensor,
        n_span_units: int = 0,
    ) -> None:
        self.emb = emb
        self.unit_rows = unit_rows
        self.token_unit = token_unit
        self.syn_ptr, self.syn_unit = syn_ptr, syn_unit
        self.ant_ptr, self.ant_unit = ant_ptr, ant_unit
        has_sense = token_unit >= 0
        n_rel = (syn_ptr[1:] - syn_ptr[:-1]) + (ant_ptr[1:] - ant_ptr[:-1])
        self.has_rel = has_sense & (n_rel > 0)
        self.n_span_units = n_span_units
        self.emb_sq = emb.float().pow(2).sum(-1)  # [R], for the L2 selection

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_store(
        cls, store, vocab_size: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> "SenseTargets":
        sm = store.view(LOSS.name).sense_matrix()  # distill reads the post-norm, next-token view
        tok, span, sidx, emb = sm["token_id"], sm["span_id"], sm["sense_index"], sm["embedding"]
        if len(tok) == 0:
            raise InputError(f"store {store.path} holds no senses; build it with `sensekit build` on a corpus")
        if tok.max(initial=-1) >= vocab_size:
            raise TeacherMismatch(
                f"store {store.path} has token id {int(tok.max())} but the teacher's vocabulary has "
                f"{vocab_size}; use the store built with this teacher"
            )
        # unit key: tokens first (0..V-1), spans after (V + span_id)
        key = np.where(tok >= 0, tok, vocab_size + span).astype(np.int64)
        units, unit_of_row = np.unique(key, return_inverse=True)
        order = np.lexsort((sidx, unit_of_row))
        u_sorted = unit_of_row[order]
        counts = np.bincount(u_sorted, minlength=len(units))
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        slot = np.arange(len(order)) - starts[u_sorted]
        K = int(counts.max())
        unit_rows = np.full((len(units), K), -1, np.int64)
        unit_rows[u_sorted, slot] = order
        token_unit = np.full(vocab_size, -1, np.int64)
        is_tok = units < vocab_size
        token_unit[units[is_tok]] = np.nonzero(is_tok)[0]
        span_unit = {int(units[i] - vocab_size): i for i in np.nonzero(~is_tok)[0]}

        # words -> units; relations -> CSR pools over head token ids
        words = {w: (list(t), s) for w, t, s in store.words_table()}

        def unit_of_word(word: str) -> int:
            ids, sp = words.get(word, (None, None))
            if sp is not None:
                return span_unit.get(int(sp), -1)
            if ids is None:
                try:
                    ids = store.token_ids(word)
                except Exception:  # noqa: BLE001  (a word the tokenizer cannot take has no unit)
                    return -1
            return int(token_unit[ids[0]]) if len(ids) == 1 and 0 <= ids[0] < vocab_size else -1

        def head_token(word: str) -> int:
            ids = words[word][0] if word in words else store.token_ids(word)
            return int(ids[0]) if len(ids) == 1 and 0 <= ids[0] < vocab_size else -1

        pairs = {"syn": set(), "ant": set()}
        unit_cache: dict[str, int] = {}
        head_cache: dict[str, int] = {}
        for head, related, kind, _source, _derived in store.relations_table():
            if head not in head_cache:
                head_cache[head] = head_token(head)
            if related not in unit_cache:
                unit_cache[related] = unit_of_word(related)
            h, u = head_cache[head], unit_cache[related]
            if h < 0 or u < 0 or token_unit[h] < 0 or u == token_unit[h]:
                continue
            pairs[kind].add((h, u))

        def csr(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
            arr = np.array(sorted(pairs[kind]), np.int64).reshape(-1, 2)
            ptr = np.zeros(vocab_size + 1, np.int64)
            np.add.at(ptr, arr[:, 0] + 1, 1)
            return torch.from_numpy(np.cumsum(ptr)).to(device), torch.from_numpy(arr[:, 1].copy()).to(device)

        syn_ptr, syn_unit = csr("syn")
        ant_ptr, ant_unit = csr("ant")
        return cls(
            torch.from_numpy(np.array(emb, np.float32)).to(device=device, dtype=dtype),
            torch.from_numpy(unit_rows).to(device),
            torch.from_numpy(token_unit).to(device),
            syn_ptr,
            syn_unit,
            ant_ptr,
            ant_unit,
            n_span_units=int((~is_tok).sum()),
        )

    # -- facts ---------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.emb.device

    @property
    def dim(self) -> int:
        return int(self.emb.shape[1])

    def summary(self) -> dict[str, int]:
        return {
            "sense_rows": int(self.emb.shape[0]),
            "units": int(self.unit_rows.shape[0]),
            "span_units": self.n_span_units,
            "max_senses": int(self.unit_rows.shape[1]),
            "tokens_with_senses": int((self.token_unit >= 0).sum()),
            "tokens_with_relations": int(self.has_rel.sum()),
            "syn_links": int(self.syn_unit.numel()),
            "ant_links": int(self.ant_unit.numel()),
        }

    def state_dict(self) -> dict[str, torch.Tensor]:
        names = ("emb", "unit_rows", "token_unit", "syn_ptr", "syn_unit", "ant_ptr", "ant_unit")
        return {k: getattr(self, k) for k in names}

    # -- per step ------------------------------------------------------------------------
    def sample_positions(
        self, labels: torch.Tensor, frac: float, floor: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """labels [B, T] long (-100 = no target) -> (b [P], t [P], is_rel [P]): relation group, then token group.

        Q_b = positions of row b whose y_t has senses and relations; n_b = group_size(|Q_b|);
        the relation group draws n_b of Q_b, the token group draws n_b of all target positions.
        """
        valid = labels >= 0
        y = labels.clamp(min=0)
        in_q = valid & self.has_rel[y]
        n = group_size(in_q.sum(1), frac, floor)
        rel = _draw(in_q, n, generator)
        tok = _draw(valid, n, generator)
        rb, rt = rel.nonzero(as_tuple=True)
        tb, tt = tok.nonzero(as_tuple=True)
        is_rel = torch.cat([torch.ones_like(rb, dtype=torch.bool), torch.zeros_like(tb, dtype=torch.bool)])
        return torch.cat([rb, tb]), torch.cat([rt, tt]), is_rel

    def pools(
        self,
        y: torch.Tensor,
        is_rel: torch.Tensor,
        neighbors: int,
        own_negative: bool = False,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Candidate sense rows per item. y [P] target tokens, is_rel [P] ->
        (pos_rows [P, Cp], neg_rows [P, Cn], active [P]); rows are -1 where padded.

        positives = D(y) (+ the senses/clouds of up to `neighbors` sampled synonyms for relation items);
        negatives = the senses/clouds of up to `neighbors` sampled antonyms (+ D(y) if `own_negative`).
        """
        P = y.numel()
        unit = self.token_unit[y]
        active = unit >= 0
        own = torch.where(active.unsqueeze(1), self.unit_rows[unit.clamp(min=0)], -1)  # [P, K]
        rel_idx = is_rel.nonzero(as_tuple=True)[0]
        y_rel = y[rel_idx]

        def related(ptr: torch.Tensor, vals: torch.Tensor) -> torch.Tensor:
            units, ok = _sample_csr(ptr, vals, y_rel, neighbors, generator)  # [Pr, k]
            rows = torch.where(ok.unsqueeze(-1), self.unit_rows[units], -1).flatten(1)  # [Pr, k*K]
            out = torch.full((P, rows.shape[1]), -1, dtype=torch.long, device=y.device)
            out[rel_idx] = rows
            return out

        pos = torch.cat([own, related(self.syn_ptr, self.syn_unit)], 1)
        neg = related(self.ant_ptr, self.ant_unit)
        if own_negative:
            neg = torch.cat([torch.where(is_rel.unsqueeze(1), own, -1), neg], 1)
        return pos, neg, active

    def select(self, anchor: torch.Tensor, rows: torch.Tensor, kappa: int) -> tuple[torch.Tensor, torch.Tensor]:
        """anchor [P, d], rows [P, C] (-1 pad) -> (vectors [P, K, d], keep [P, K]), K = min(kappa, C).

        ||c - a||^2 = ||c||^2 - 2 a.c + ||a||^2 with ||c||^2 precomputed. The dot products come from one
        matmul against the batch's distinct rows when there are few of them (pools of one batch share
        most units), else from a gathered [P, C, d] tensor in memory-bounded chunks.
        """
        P, C = rows.shape
        K = min(kappa, C)
        if P == 0 or C == 0:
            return (
                self.emb.new_zeros((P, K, self.dim), dtype=torch.float32),
                torch.zeros((P, K), dtype=torch.bool, device=rows.device),
            )
        mask = rows >= 0
        rc = rows.clamp(min=0)
        a = anchor.float()
        uniq, inv = torch.unique(rc, return_inverse=True)
        if uniq.numel() <= UNIQUE_FACTOR * C:
            dots = (a @ self.emb[uniq].float().T).gather(1, inv)  # [P, C]
        else:
            chunk = max(1, CHUNK_ELEMENTS // max(1, C * self.dim))
            dots = torch.cat(
                [
                    torch.bmm(self.emb[rc[s : s + chunk]].float(), a[s : s + chunk].unsqueeze(-1)).squeeze(-1)
                    for s in range(0, P, chunk)
                ]
            )  # memory-bounded chunks
        dist = self.emb_sq[rc] - 2.0 * dots + a.pow(2).sum(-1, keepdim=True)
        idx, keep = top_kappa_from_distances(dist, mask, K)
        kept_rows = rc.gather(1, idx)
        return self.emb[kept_rows].float() * keep.unsqueeze(-1), keep

    @torch.no_grad()
    def gather_for(self, cfg, labels: torch.Tensor, g: torch.Tensor, generator: torch.Generator | None) -> SenseBatch:
        """`gather` with the sampling and selection settings of a DistillConfig (kappa, neighbours, fraction, floor)."""
        return self.gather(
            labels,
            g,
            kappa=cfg.kappa,
            neighbors=cfg.neighbors,
            frac=cfg.sample_frac,
            floor=cfg.sample_floor,
            own_negative=cfg.own_senses_negative,
            generator=generator,
        )

    def gather(
        self,
        labels: torch.Tensor,
        g: torch.Tensor,
        *,
        kappa: int,
        neighbors: int,
        frac: float,
        floor: int,
        own_negative: bool = False,
        generator: torch.Generator | None = None,
        keep_pools: bool = False,
    ) -> SenseBatch:
        """Everything the sense loss of one micro-batch needs. labels [B, T] (-100 = none), g [B, T, d] teacher states.

        The pre-selection pools are kept in the result only with `keep_pools` (tests, inspection).
        """
        if g.shape[-1] != self.dim:
            raise TeacherMismatch(f"the teacher's hidden size is {g.shape[-1]} but the store's senses have {self.dim}")
        b, t, is_rel = self.sample_positions(labels, frac, floor, generator)
        y = labels[b, t]
        pos_pool, neg_pool, active = self.pools(y, is_rel, neighbors, own_negative, generator)
        anchor = g[b, t].float()
        positives, pos_mask = self.select(anchor, pos_pool, kappa)
        negatives, neg_mask = self.select(anchor, neg_pool, kappa)
        if not keep_pools:
            pos_pool, neg_pool = pos_pool[:, :0], neg_pool[:, :0]
        return SenseBatch(b, t, is_rel, active, positives, pos_mask, negatives, neg_mask, pos_pool, neg_pool)
