"""`StoreRun`: what the store metrics share, handed to each metric's `compute`.

The store, its sense table (`SenseTable`), the similarity transform, and the teacher, WordNet and
token tables loaded once on demand. Missing data raises `Skip` with the reason.
"""

from __future__ import annotations

import numpy as np

from ..errors import SensekitError
from .config import EvalConfig
from .registry import Skip
from .senses import SenseTable, Space

__all__ = ["StoreRun"]


class StoreRun:
    """What the metrics share: the store, its sense table, and the teacher and WordNet, loaded once on demand."""

    def __init__(self, cfg: EvalConfig, store, to_space: Space, teacher=None) -> None:
        self.cfg, self.store, self.to_space = cfg, store, to_space
        self.table = SenseTable.from_store(store)
        view = store.view()  # the view every metric reads (sensekit/view.py): where its states are filed, and how
        self.key_mode = view.key_mode
        self.layer = view.hidden_layer  # hidden_states index of the queried states; None: the post-norm final state
        # how a lexical view reads an occurrence (sensekit.model.occurrence); None: the store's key mode, as built
        self.representation = (
            str(getattr(view.record, "representation", None) or store.meta.get("lexical_representation") or "first")
            if view.key_mode == "input" and view.hidden_layer is not None
            else None
        )
        self.k = int(store.meta.get("k") or 10)
        self.min_context = int(store.meta.get("min_context") or 0)  # the build's rule for sources (0: none recorded)
        self._teacher, self._teacher_error = teacher, None
        self._wn, self._word_tokens, self._token_text, self._embeddings = None, None, None, None
        self._pairs = None
        self.view_name = view.name
        self._annotator = None
        self.heldout_share, self.warnings = _heldout_share(cfg, store.meta)

    def heldout_pairs(self):
        """The WiC-style pairs from WordNet's held-out example sentences (`wordnet_pairs.PairSet`), built once."""
        if self._pairs is None:
            from ..builder.wordnet_corpus import wordnet_synsets
            from .wordnet_pairs import wordnet_pairs

            wn = self.wordnet()
            self._pairs = wordnet_pairs(
                wordnet_synsets(self.cfg.wordnet), wn, self.heldout_share, self.cfg.seed, self.cfg.limit
            )
            if not len(self._pairs.items):
                raise Skip("this WordNet has no held-out example pairs")
        return self._pairs

    def teacher(self):
        if self._teacher is None and self._teacher_error is None:
            from ..model.store_check import load_store_teacher

            try:
                self._teacher = load_store_teacher(self.store, self.cfg.teacher, self.cfg.device, self.cfg.dtype)
            except SensekitError as exc:
                if self.cfg.teacher:  # the user named it: a wrong one is an error, not a skip
                    raise
                self._teacher_error = f"the teacher cannot be loaded: {exc}"
        if self._teacher is None:
            raise Skip(self._teacher_error)
        return self._teacher

    def states(self, sentences, starts, ends) -> tuple[np.ndarray, np.ndarray]:
        """The teacher's state for each word span, where the store's key mode files it: (states [N, d], ok [N]).

        The build's --min-context is not applied to these queries (it would drop most words near the start of
        short benchmark sentences); `in_store_context` tells which states meet it."""
        from ..builder.harvest import layer_forward
        from .states import teacher_prefix_and_pad, word_states

        t = self.teacher()
        if self.representation is not None:  # a lexical view: the representation its senses were built from
            from ..model.occurrence import occurrence_states

            return occurrence_states(
                t, sentences, starts, ends, self.layer, self.representation, tokens_per_batch=self.cfg.batch_tokens
            )
        prefix, pad = teacher_prefix_and_pad(t.tokenizer)
        return word_states(
            t.final_hidden if self.layer is None else layer_forward(t, self.layer),
            t.tokenizer,
            sentences,
            starts,
            ends,
            self.key_mode,
            prefix,
            t.hidden_size,
            device=t.device,
            pad_id=pad,
            tokens_per_batch=self.cfg.batch_tokens,
        )

    def occurrence_setting(self) -> tuple[int | None, str]:
        """(layer, representation) for metrics that read occurrences beyond the store's own queries (WSD): the
        lexical view's, else the teacher's `auto` lexical layer and the default representation."""
        from ..model.occurrence import DEFAULT_REPRESENTATION

        if self.representation is not None:
            return self.layer, self.representation
        from ..model.layers import layer_count
        from ..model.lexical import auto_layer

        return auto_layer(layer_count(self.teacher().model.config)), DEFAULT_REPRESENTATION

    def in_store_context(self, sentences, starts, ends) -> np.ndarray:
        """[N] bool: the state has read at least the build's min_context real tokens (tokenization only)."""
        from .states import locate, teacher_prefix_and_pad

        t = self.teacher()
        return locate(
            t.tokenizer,
            sentences,
            starts,
            ends,
            self.key_mode,
            teacher_prefix_and_pad(t.tokenizer)[0],
            self.min_context,
        )[2]

    def wordnet(self):
        if self._wn is None:
            from ..lexicon.wordnet import open_wordnet

            try:
                self._wn = open_wordnet(self.cfg.wordnet)
            except SensekitError as exc:
                raise Skip(f"WordNet is not available: {exc}") from None
        return self._wn

    def annotator(self):
        """`sensekit annotate` on this store (its lexical view; the prior: WordNet's SemCor counts), made once:
        the WSD and WiC metrics share the words it has named from WordNet."""
        if self._annotator is None:
            from ..annotate import Annotator

            try:
                self._annotator = Annotator(self.store, self.teacher(), prior="wordnet", wordnet=self.wordnet())
            except SensekitError as exc:
                raise Skip(f"annotate cannot read this store: {exc}") from None
        return self._annotator

    def single_tokens(self, words: list[str]) -> np.ndarray:
        """[n] the token of each word (leading space, no specials, as the store tokenizes), -1 unless exactly one."""
        enc = self.store.tokenizer.encode_batch([" " + w.strip() for w in words], add_special_tokens=False)
        return np.asarray([e.ids[0] if len(e.ids) == 1 else -1 for e in enc], np.int64)

    def token_text(self) -> dict[int, str]:
        if self._token_text is None:
            from .. import _sql

            self._token_text = dict(self.store.con.execute(_sql.TOKEN_TEXTS).fetchall())
        return self._token_text

    def input_embeddings(self) -> np.ndarray:
        """The teacher's input embedding matrix [V, d] (the word-similarity baseline)."""
        if self._embeddings is None:
            self._embeddings = self.teacher().model.get_input_embeddings().weight.detach().float().cpu().numpy()
        return self._embeddings

    def word_tokens(self) -> tuple[list[str], np.ndarray]:
        """Tokens with senses whose text is a lower-case word that tokenizes back to that token: (words, token ids)."""
        if self._word_tokens is None:
            from .items import clean_word

            text_of = self.token_text()
            words, ids = [], []
            for tid in self.table.token_ids.tolist():  # per token with senses: a one-off scan, not a hot path
                t = text_of.get(tid, "")
                w = clean_word(t)
                if w is not None and t == " " + w:
                    words.append(w)
                    ids.append(tid)
            back = self.single_tokens(words)
            keep = back == np.asarray(ids, np.int64)
            self._word_tokens = ([w for w, k in zip(words, keep) if k], np.asarray(ids, np.int64)[keep])
        return self._word_tokens


def _heldout_share(cfg: EvalConfig, meta: dict) -> tuple[float, list[str]]:
    """The held-out share eval uses (--heldout-share, else the store's, else the default), and the
    warnings when the store's corpus may contain the evaluation sentences."""
    from ..builder.wordnet_corpus import HELDOUT_SHARE, WORDNET_CORPUS

    recorded = meta.get("corpus_heldout")
    share = cfg.heldout_share or (recorded or {}).get("share") or HELDOUT_SHARE
    on_wordnet = any(str(c).split("+")[0] == WORDNET_CORPUS for c in meta.get("corpus") or [])
    warnings = []
    if on_wordnet and not recorded:
        warnings.append(
            "this store was built before the held-out rule: its corpus (WordNet's glosses and examples) may "
            "contain the evaluation sentences (WiC-style pairs, purity); rebuild it with this sensekit to hold "
            "them out"
        )
    elif on_wordnet and share > float(recorded.get("share", 0)):
        warnings.append(
            f"--heldout-share {share:g} is above the {recorded['share']:g} the store held out: some evaluation "
            "sentences are in its corpus; use at most the store's share"
        )
    return float(share), warnings
