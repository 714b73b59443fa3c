"""The state of a word occurrence (a character span in a sentence) at one teacher layer.

One function for every caller that turns "this word in this sentence" into a vector: the lexical
view's queries in `sensekit eval`, `sensekit eval layers`, sense linking and `annotate`. Three
*representations* (docs/lexical.md compares them on held-out WordNet pairs):

- `first`: the state at the word's first token (what the build filed before the repeated sentence);
- `mean`: the mean of the states over the word's tokens;
- `repeat`: the sentence is fed twice, `[prefix] S S` as the text `S + " " + S` tokenizes, and the
  mean over the word's tokens *in the second copy* is taken: there the word's state has read the
  whole sentence, its right context included (Liu et al. 2024, "echo" embeddings for decoders).
  The ids are the sentence's own, twice, except that the second copy opens with its first token
  re-read after a space (`second_copy_heads`): the boundary a reader sees. Without that space the
  held-out dev AUC at layer 9 falls from 0.746 to 0.674 (docs/lexical.md).

Layer convention (`sensekit.model.lexical`): N = `hidden_states[N]` of a Hugging Face forward with
`output_hidden_states=True` (0 = input embeddings, N in 1..L-1 = decoder layer N-1's output, L or
None = the post-norm final state). States come from forward hooks, and a forward whose deepest
wanted layer is below L stops right after that layer (a layer-9 query of a 30-layer teacher costs
about a third of a full forward).

Sentences are framed as the build frames its windows: the tokenizer's own special prefix (a BOS or
nothing), then the text without special tokens. A causal LM's state does not depend on later tokens,
so each row is cut right after the last position it needs. Rows run longest first, packed up to
`tokens_per_batch` padded tokens per forward; gathering and averaging are tensor ops (no loop per token).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..errors import InputError
from .families import _first_output
from .layers import layers_of

__all__ = [
    "REPRESENTATIONS",
    "DEFAULT_REPRESENTATION",
    "Located",
    "check_representation",
    "locate_occurrences",
    "occurrence_states",
    "occurrence_states_at",
    "tokenizer_prefix_and_pad",
    "forward_layers",
    "repeated_row_states",
    "second_copy_heads",
    "GLOSS_TEMPLATES",
    "DEFAULT_GLOSS_TEMPLATE",
    "gloss_text",
    "gloss_states",
]

REPRESENTATIONS = ("first", "mean", "repeat")
# the lexical view's representation: best ROC AUC on the dev half of the held-out WordNet pairs (docs/lexical.md)
DEFAULT_REPRESENTATION = "repeat"
TOKENS_PER_BATCH = 4096  # padded tokens per forward


def check_representation(name: str, flag: str = "--representation") -> str:
    """The representation's canonical name, or a one-line InputError naming the choices."""
    text = str(name).strip().lower()
    if text not in REPRESENTATIONS:
        raise InputError(f"{flag} {name!r}: use one of {', '.join(REPRESENTATIONS)}")
    return text


def tokenizer_prefix_and_pad(tokenizer) -> tuple[list[int], int]:
    """The ids the tokenizer puts before a text by default (a BOS, or nothing), and a padding id."""
    with_sp = tokenizer("a", add_special_tokens=True)["input_ids"]
    without = tokenizer("a", add_special_tokens=False)["input_ids"]
    prefix: list[int] = []
    for i in range(len(with_sp)):
        if with_sp[i : i + len(without)] == without:
            prefix = list(with_sp[:i])
            break
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return prefix, int(pad if pad is not None else 0)


@dataclass
class Located:
    """Where each occurrence's tokens sit in the row the teacher reads."""

    rows: list[np.ndarray]  # one int64 id array per occurrence, cut after `last`
    first: np.ndarray  # [N] int64 first position averaged over
    last: np.ndarray  # [N] int64 last position averaged over (== first for `first`)
    ok: np.ndarray  # [N] bool: some token overlaps the span


def locate_occurrences(
    tokenizer,
    sentences: Sequence[str],
    starts: Sequence[int],
    ends: Sequence[int],
    representation: str,
    prefix: Sequence[int],
) -> Located:
    """Tokenize the sentences in one call and find each span's tokens in the row of `representation`."""
    representation = check_representation(representation)
    n = len(sentences)
    first, last, ok = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, bool)
    rows: list[np.ndarray] = []
    if n == 0:  # the tokenizer refuses an empty batch
        return Located(rows, first, last, ok)
    enc = tokenizer(list(sentences), add_special_tokens=False, return_offsets_mapping=True, return_attention_mask=False)
    pre = np.asarray(list(prefix), np.int64)
    heads = (
        second_copy_heads(tokenizer, [ids[0] if ids else 0 for ids in enc["input_ids"]])
        if representation == "repeat"
        else []
    )
    for i, (ids, offs) in enumerate(zip(enc["input_ids"], enc["offset_mapping"])):  # per sentence, not per token
        body = np.asarray(ids, np.int64)
        offs = np.asarray(offs, np.int64).reshape(-1, 2)
        inside = np.nonzero((offs[:, 1] > starts[i]) & (offs[:, 0] < ends[i]))[0]  # tokens touching the word
        if len(inside) == 0:
            rows.append(np.concatenate([pre, body[:1]]))
            continue
        a, b = int(inside[0]), int(inside[-1])
        if representation == "first":
            b = a
        if representation == "repeat":  # [prefix] body head body[1:]: body index j >= 1 sits at base + m - 1 + j
            head = heads[i]
            base, m = len(pre) + len(body), len(head)
            row = np.concatenate([pre, body, head, body[1:]])
            first[i], last[i] = (base if a == 0 else base + m - 1 + a), base + m - 1 + b
        else:
            row = np.concatenate([pre, body])
            first[i], last[i] = a + len(pre), b + len(pre)
        ok[i] = True
        rows.append(row[: last[i] + 1])
    return Located(rows, first, last, ok)


def second_copy_heads(tokenizer, first_ids: Sequence[int]) -> list[np.ndarray]:
    """The ids that open each second copy: the copy's first token re-read after a space, as `S + " " + S`
    tokenizes (one or more ids); a token that already starts with a space, or does not decode to text
    on its own, stays as it is."""
    texts = [tokenizer.decode([int(t)]) for t in first_ids]  # per row, not per token
    spaced = [not t or t[0].isspace() or "\ufffd" in t for t in texts]
    todo = [i for i, keep in enumerate(spaced) if not keep]
    out = [np.asarray([int(t)], np.int64) for t in first_ids]
    if todo:
        enc = tokenizer([" " + texts[i] for i in todo], add_special_tokens=False)["input_ids"]
        for i, ids in zip(todo, enc):
            out[i] = np.asarray(ids, np.int64)
    return out


class _Stop(Exception):
    """Raised by the deepest hook: the layers above it are not needed."""


def forward_layers(model, ids: torch.Tensor, mask: torch.Tensor, layers: Sequence[int | None]) -> list[torch.Tensor]:
    """One forward of an HF causal LM's base model -> [hidden_states[N] [B, T, d] for N in `layers`].

    N = None or N >= the decoder's layer count: the post-norm final state. Below that, each state comes
    from a forward hook, and the forward stops after the deepest wanted layer when no final state is wanted.
    """
    _, _, decoder = layers_of(model)
    n_dec = len(decoder)
    final = any(n is None or n >= n_dec for n in layers)
    hooked = sorted({int(n) for n in layers if n is not None and n < n_dec})
    captured: dict[int, torch.Tensor] = {}
    deepest = None if final or not hooked else hooked[-1]
    handles = []

    def hook_for(n: int):
        def hook(module, args, output):
            captured[n] = _first_output(output)
            if n == deepest:
                raise _Stop

        return hook

    for n in hooked:
        module = model.get_input_embeddings() if n == 0 else decoder[n - 1]
        handles.append(module.register_forward_hook(hook_for(n)))
    out = None
    try:
        with torch.inference_mode():
            out = model.base_model(input_ids=ids, attention_mask=mask, use_cache=False)
    except _Stop:
        pass
    finally:
        for h in handles:
            h.remove()
    return [out.last_hidden_state if (n is None or n >= n_dec) else captured[int(n)] for n in layers]


def occurrence_states_at(
    model,
    tokenizer,
    sentences: Sequence[str],
    starts: Sequence[int],
    ends: Sequence[int],
    layers: Sequence[int | None],
    representation: str = DEFAULT_REPRESENTATION,
    *,
    prefix: Sequence[int] | None = None,
    pad_id: int | None = None,
    device=None,
    tokens_per_batch: int = TOKENS_PER_BATCH,
) -> tuple[np.ndarray, np.ndarray]:
    """-> (states [N, len(layers), d] float32, ok [N] bool): each occurrence at each layer. Rows not ok are zeros.

    `model` is an HF causal LM, `tokenizer` its fast tokenizer; prefix and pad_id default to the
    tokenizer's own (`tokenizer_prefix_and_pad`).
    """
    if prefix is None or pad_id is None:
        p, q = tokenizer_prefix_and_pad(tokenizer)
        prefix = p if prefix is None else prefix
        pad_id = q if pad_id is None else pad_id
    device = device if device is not None else next(model.parameters()).device
    loc = locate_occurrences(tokenizer, sentences, starts, ends, representation, prefix)
    todo = np.flatnonzero(loc.ok)
    todo = todo[np.argsort([-len(loc.rows[i]) for i in todo], kind="stable")]  # longest first: little padding
    out: np.ndarray | None = None
    start = 0
    while start < len(todo):
        width = len(loc.rows[todo[start]])
        stop = min(len(todo), start + max(1, tokens_per_batch // width))
        chunk = todo[start:stop]
        ids = np.full((len(chunk), width), pad_id, np.int64)  # [B, T] right-padded
        mask = np.zeros((len(chunk), width), np.int64)
        for r, i in enumerate(chunk):  # per sentence
            ids[r, : len(loc.rows[i])], mask[r, : len(loc.rows[i])] = loc.rows[i], 1
        hs = forward_layers(model, torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device), layers)
        dev = hs[0].device
        t = torch.arange(width, device=dev)[None, :]  # [1, T]
        a = torch.from_numpy(loc.first[chunk]).to(dev)[:, None]  # [B, 1]
        b = torch.from_numpy(loc.last[chunk]).to(dev)[:, None]
        w = ((t >= a) & (t <= b)).float()  # [B, T] the word's tokens in the copy used
        w = w / w.sum(1, keepdim=True)
        picked = torch.stack([torch.einsum("bt,btd->bd", w, h.float()) for h in hs], 1)  # [B, K, d]
        if out is None:
            out = np.zeros((len(sentences), len(layers), picked.shape[-1]), np.float32)
        out[chunk] = picked.cpu().numpy()
        start = stop
    if out is None:
        d = int(getattr(model.config, "hidden_size", 1) or 1)
        out = np.zeros((len(sentences), len(layers), d), np.float32)
    return out, loc.ok


def occurrence_states(
    teacher,
    sentences: Sequence[str],
    starts: Sequence[int],
    ends: Sequence[int],
    layer: int | None,
    representation: str = DEFAULT_REPRESENTATION,
    *,
    tokens_per_batch: int = TOKENS_PER_BATCH,
) -> tuple[np.ndarray, np.ndarray]:
    """-> (states [N, d] float32, ok [N] bool): each occurrence's state at `layer` (None: the post-norm
    final state) in `representation`. `teacher` is a `sensekit.model.teacher.Teacher`."""
    states, ok = occurrence_states_at(
        teacher.model,
        teacher.tokenizer,
        sentences,
        starts,
        ends,
        [layer],
        representation,
        device=teacher.device,
        tokens_per_batch=tokens_per_batch,
    )
    return states[:, 0], ok


def repeated_row_states(
    model,
    ids: torch.Tensor,
    mask: torch.Tensor,
    n_prefix: torch.Tensor,
    layer: int | None,
    heads: Sequence[Sequence[int]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """hidden_states[layer] of each right-padded row read in the second copy of `[prefix] body head body[1:]`,
    and in the first.

    ids, mask [B, T] (mask: real tokens, right padding); n_prefix [B] the special tokens that open each row
    (not repeated); heads: per row, the ids that open the second copy in place of the body's first token
    (`second_copy_heads`; default: that token itself). -> (second [B, T, d], first [B, T, d]):
    - second: at each body position t, the state of the same token in the second copy (it has read the
      whole row; the first body token's is the head's last id); at prefix and padding positions, whatever
      sits there (callers ignore them). The build's `repeat` lexical view;
    - first: the row's own states at its real positions (a causal LM's first copy has read only the row),
      the second copy's at its padding: what `families.final_from_layer` finishes into the loss view.
    """
    dev = ids.device
    B, T = ids.shape
    ids_np = ids.cpu().numpy()
    n = mask.long().sum(1).cpu().numpy()  # [B] real tokens
    p = n_prefix.cpu().numpy().astype(np.int64)  # [B]
    rows, m = [], np.zeros(B, np.int64)
    for r in range(B):  # per row, not per token
        body = ids_np[r, p[r] : n[r]]
        head = np.asarray(heads[r] if heads is not None and len(body) else body[:1], np.int64)
        rows.append(np.concatenate([ids_np[r, : n[r]], head, body[1:]]))
        m[r] = len(head)
    T2 = max(len(x) for x in rows)
    ids2 = np.zeros((B, T2), np.int64)  # [B, T2] the doubled rows, right-padded
    mask2 = np.zeros((B, T2), np.int64)
    for r, x in enumerate(rows):
        ids2[r, : len(x)], mask2[r, : len(x)] = x, 1
    h = forward_layers(model, torch.from_numpy(ids2).to(dev), torch.from_numpy(mask2).to(dev), [layer])[0]
    t = torch.arange(T, device=h.device)[None, :]  # [1, T]
    shift = torch.from_numpy(n - p + m - 1).to(h.device)[:, None]  # [B, 1] copy-2 column = t + shift for t >= p
    back = torch.where(t >= torch.from_numpy(p).to(h.device)[:, None], t + shift, t).clamp(0, T2 - 1)  # [B, T]
    return h.gather(1, back[..., None].expand(-1, -1, h.shape[-1])), h[:, :T]  # [B, T, d] each


# -- gloss prototypes -------------------------------------------------------------------------
# where a sense has no tagged sentence, its gloss stands in for one: the template puts the lemma in a
# sentence built from the definition, and the lemma's state there is the sense's prototype
GLOSS_TEMPLATES = {
    "in-short": "{definition}. In short: {lemma}",
    "lemma-colon": "{lemma}: {definition}",
    "means": "{lemma} means {definition}",
    "parenthesis": "{definition} ({lemma})",
}
DEFAULT_GLOSS_TEMPLATE = "in-short"


def gloss_text(definition: str, lemma: str, template: str = DEFAULT_GLOSS_TEMPLATE) -> tuple[str, int, int]:
    """(sentence, char_start, char_end) of `lemma` in the gloss sentence of `template` (a GLOSS_TEMPLATES name)."""
    if template not in GLOSS_TEMPLATES:
        raise InputError(f"gloss template {template!r}: use one of {', '.join(GLOSS_TEMPLATES)}")
    form = GLOSS_TEMPLATES[template]
    lemma = lemma.replace("_", " ")
    head, _, _ = form.partition("{lemma}")
    start = len(head.format(definition=definition.strip()))
    return form.format(definition=definition.strip(), lemma=lemma), start, start + len(lemma)


def gloss_states(
    teacher,
    definitions: Sequence[str],
    lemmas: Sequence[str],
    layer: int | None,
    representation: str = DEFAULT_REPRESENTATION,
    template: str = DEFAULT_GLOSS_TEMPLATE,
    *,
    tokens_per_batch: int = TOKENS_PER_BATCH,
) -> tuple[np.ndarray, np.ndarray]:
    """-> (states [N, d] float32, ok [N] bool): the state of each lemma in its gloss sentence (`gloss_text`)."""
    texts = [gloss_text(d, w, template) for d, w in zip(definitions, lemmas)]
    return occurrence_states(
        teacher,
        [t[0] for t in texts],
        [t[1] for t in texts],
        [t[2] for t in texts],
        layer,
        representation,
        tokens_per_batch=tokens_per_batch,
    )
