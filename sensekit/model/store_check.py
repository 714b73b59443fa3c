"""Does a store come from this teacher? One check for every command that pairs a store with a model.

A store records its teacher's name, hidden size, tokenizer (the bundle's tokenizer.json and its
sha256) and key mode. `check_store_matches` refuses a pairing that differs, naming both sides and
the fix; `load_store_teacher` loads the store's own teacher (or another one with the same
vocabulary and width) and checks it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import InputError, TeacherMismatch
from ..fs import TOKENIZER_FILE

__all__ = ["store_teacher_name", "check_store_matches", "load_store_teacher"]


def store_teacher_name(store) -> str:
    """The teacher a store was built with, as its provenance records it."""
    name = _recorded_teacher(store)
    if not name:
        raise InputError(f"store {store.path} does not record its teacher; pass --teacher")
    return name


def _recorded_teacher(store) -> str | None:
    name = store.meta.get("teacher")
    if isinstance(name, dict):
        name = name.get("name") or name.get("id")
    return str(name) if name else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_store_matches(store, teacher, *, key_mode: str | None = None, same_name: bool = True) -> None:
    """Refuse a store built with another key mode (when `key_mode` is given), teacher id (when `same_name`),
    hidden size or tokenizer, naming both sides."""
    meta = store.meta
    built_key_mode = meta.get("key_mode") or (meta.get("build_config") or {}).get("key")
    if key_mode and built_key_mode and built_key_mode != key_mode:
        raise TeacherMismatch(
            f"store {store.path} was built with --key {built_key_mode} (senses filed under the input token "
            f"x_t) but distill's sense loss needs --key {key_mode} (senses of the predicted token y_t); "
            f"rebuild the store with --key {key_mode}"
        )
    built = _recorded_teacher(store)
    if same_name and built and built != str(teacher.name):
        raise TeacherMismatch(
            f"store {store.path} was built with teacher {built!r} but this run's teacher is "
            f"{teacher.name!r}; pass --teacher {built} or rebuild the store with this teacher"
        )
    hidden = int(meta.get("hidden_size", meta.get("dim", store.dim)))
    if hidden != int(teacher.hidden_size) or int(store.dim) != int(teacher.hidden_size):
        raise TeacherMismatch(
            f"store {store.path} holds {hidden}-dim senses but teacher {teacher.name!r} has hidden "
            f"size {teacher.hidden_size}; use the store built with this teacher"
        )
    store_tok = store.path / TOKENIZER_FILE
    want = meta.get("tokenizer_sha256") or (_sha256(store_tok) if store_tok.is_file() else None)
    have = _sha256(Path(teacher.tokenizer_json)) if teacher.tokenizer_json else None
    if want and have and want == have:
        return
    # different bytes can still be the same vocabulary (a re-saved tokenizer.json): compare ids
    if store_tok.is_file():
        from tokenizers import Tokenizer

        if Tokenizer.from_file(str(store_tok)).get_vocab(with_added_tokens=True) == teacher.tokenizer.get_vocab():
            return
    raise TeacherMismatch(
        f"store {store.path} was built with another tokenizer (sha256 {str(want)[:12]}) than teacher "
        f"{teacher.name!r} (sha256 {str(have)[:12]}); use the store built with this teacher"
    )


def load_store_teacher(store, name: str | None = None, device: str | None = None, dtype: str | None = None):
    """The store's teacher (or `name`, which must share its width and vocabulary), checked against the store."""
    from .teacher import load_teacher

    teacher = load_teacher(name or store_teacher_name(store), device, dtype)
    check_store_matches(store, teacher, same_name=False)
    return teacher
