"""DistillConfig: every knob of a `sensekit distill` run, validated at construction.

Defaults are the paper's (METHOD.md section 2-3) and sit here, in one visible place. Each
field carries its help text in `metadata["help"]`; the CLI flags are generated from it.
A config can also come from a TOML file (a flat table of the same field names, or the
same table under `[distill]`); the resolved config is written into the run's output dir.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from sensekit.errors import InputError

__all__ = ["DistillConfig", "TRUNCATED", "DATA_MODES", "config_fields"]

TRUNCATED = "truncated"
DATA_MODES = ("corpus", "prompts")
PRECISIONS = ("auto", "no", "bf16", "fp16")
SENSE_DTYPES = ("float32", "bfloat16", "float16")


def _f(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class DistillConfig:
    # -- models and inputs -------------------------------------------------------------
    store: str = _f("", "Sense store bundle built by `sensekit build` with the same teacher (required).")
    data: tuple[str, ...] = _f((), "Training data: text files, folders, globs, JSONL or MediaWiki XML(.bz2) in corpus mode; "
                                    "a JSONL prompt file in prompts mode (repeatable; required).")
    teacher: str = _f("smollm2-135m", "Teacher: 'smollm2-135m' (bundled, offline), a Hugging Face id or a local folder.")
    student: str = _f(TRUNCATED, "Student: 'truncated' (the teacher's first --student-layers layers) or any HF causal LM "
                                 "id/folder that shares the teacher's tokenizer.")
    student_layers: int = _f(15, "Truncated student: how many of the teacher's bottom layers it keeps.")
    train_top_layers: int = _f(2, "Truncated student: how many of its top layers train (the rest, embeddings, final norm "
                                  "and LM head stay frozen and shared with the teacher).")
    data_mode: str = _f("corpus", "'corpus': pack documents into windows; 'prompts': the teacher continues each JSONL "
                                  "prompt, the sequence is cut at a random point and every position is a target.")
    text_field: str = _f("text", "JSONL field holding the document text (corpus mode).")
    prompt_field: str = _f("prompt", "JSONL field holding the prompt (prompts mode).")
    chat_template: bool = _f(True, "Prompts mode: wrap each prompt in the tokenizer's chat template when it has one.")
    gen_max_new_tokens: int = _f(128, "Prompts mode: most tokens the teacher generates per prompt (greedy).")
    max_windows: int = _f(0, "Use at most this many training windows/sequences (0 = all of the data).")
    eval_data: tuple[str, ...] = _f((), "Held-out corpus for perplexity (corpus readers; repeatable). Empty: use --eval-holdout.")
    eval_holdout: int = _f(0, "Hold out this many windows from the end of --data for evaluation (when --eval-data is empty).")
    # -- optimisation --------------------------------------------------------------------
    seq_len: int = _f(256, "Tokens per training window.")
    batch_size: int = _f(8, "Windows per micro-batch per process.")
    grad_accum: int = _f(1, "Micro-batches accumulated per optimizer step.")
    lr: float = _f(5e-5, "Peak learning rate of AdamW (the paper: 5e-5 for Llama, 2e-5 for Mistral).")
    weight_decay: float = _f(1e-3, "AdamW weight decay (not applied to norms and biases).")
    warmup_frac: float = _f(0.1, "Fraction of the optimizer steps spent in linear warm-up before the cosine decay.")
    max_grad_norm: float = _f(1.0, "Gradient clipping norm (0 = no clipping).")
    epochs: float = _f(2.0, "Passes over the training windows (ignored when --max-steps > 0).")
    max_steps: int = _f(0, "Optimizer steps to run (0 = derive from --epochs).")
    mixed_precision: str = _f("auto", "auto (bf16 on GPU, none on CPU), no, bf16 or fp16.")
    # -- the DSKD objective (METHOD.md section 2) ----------------------------------------
    tau: float = _f(2.0, "KD temperature tau.")
    alpha: float = _f(0.7, "KD scale alpha: L_KD = alpha * tau^2 * KL(teacher || student).")
    lambda_sense: float = _f(1.0, "Weight lambda of the sense loss (0 = the plain KD baseline on the same code path).")
    kappa: int = _f(5, "Candidates kept per pool: the kappa nearest (L2) to the teacher state g_t.")
    beta_p: float = _f(0.0, "Positive margin beta_p: max(0, MSE_d(h, p) - beta_p).")
    beta_n: float = _f(1.0, "Negative margin beta_n: max(0, beta_n - MSE_d(h, q)).")
    neighbors: int = _f(25, "Synonyms and antonyms sampled per relation-group position (each).")
    sample_frac: float = _f(0.4, "Relation group size: floor(frac * |Q|) when that exceeds --sample-floor.")
    sample_floor: int = _f(25, "Relation group size: min(|Q|, floor) otherwise; the token group has the same size.")
    sense_dtype: str = _f("float32", "Precision of the sense vectors held on the device: float32, or bfloat16/float16 to "
                                     "halve the dictionary's memory (selection and loss still run in float32).")
    own_senses_negative: bool = _f(False, "Compatibility with the released code: also put D(y_t) into the negative pool "
                                          "(contradicts the paper's text; off by default).")
    # -- run -----------------------------------------------------------------------------
    seed: int = _f(0, "Seed for weights of new layers, data order and position/neighbour sampling.")
    output_dir: str = _f("distill-out", "Run folder: config, metrics.jsonl, checkpoints, the final student, the cache.")
    save_every: int = _f(500, "Save a checkpoint every N optimizer steps (0 = only at the end).")
    eval_every: int = _f(0, "Evaluate held-out perplexity every N optimizer steps (0 = only at the end, if eval data).")
    eval_batches: int = _f(0, "Evaluate on at most this many batches (0 = all eval windows).")
    keep_checkpoints: int = _f(2, "Checkpoints kept on disk (older ones are deleted).")
    cache: bool = _f(False, "Frozen-prefix cache (truncated student, corpus mode): the first epoch stores the frozen "
                            "layers' output and the teacher's final state per token in a memory-mapped file; later steps "
                            "run only the trainable layers and the two LM-head products.")
    device: str = _f("auto", "auto, cpu or cuda; under `accelerate launch` the launcher decides.")

    # ------------------------------------------------------------------------------------
    def __post_init__(self) -> None:
        for name in ("data", "eval_data"):
            value = getattr(self, name)
            if isinstance(value, (str, Path)):
                value = (str(value),)
            object.__setattr__(self, name, tuple(str(v) for v in value))
        for f in fields(self):
            v = getattr(self, f.name)
            want = {"int": int, "float": float, "bool": bool, "str": str}.get(str(f.type))
            if want is float and isinstance(v, int) and not isinstance(v, bool):
                object.__setattr__(self, f.name, float(v))
                continue
            if want is not None and (not isinstance(v, want) or (want is int and isinstance(v, bool))):
                raise InputError(f"--{_flag(f.name)} must be {want.__name__}, got {v!r}")
        self._check()

    def _check(self) -> None:
        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise InputError(f"--{_flag(name)} {what}, got {getattr(self, name)!r}")

        for name in ("lr", "tau", "alpha", "lambda_sense", "beta_p", "beta_n", "weight_decay", "warmup_frac",
                     "epochs", "sample_frac", "max_grad_norm"):
            need(math.isfinite(getattr(self, name)), name, "must be a finite number")
        need(self.lr > 0, "lr", "must be > 0")
        need(self.tau > 0, "tau", "must be > 0")
        need(self.alpha >= 0, "alpha", "must be >= 0")
        need(self.lambda_sense >= 0, "lambda_sense", "must be >= 0")
        need(self.beta_p >= 0, "beta_p", "must be >= 0")
        need(self.beta_n >= 0, "beta_n", "must be >= 0")
        need(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        need(0 <= self.warmup_frac < 1, "warmup_frac", "must be in [0, 1)")
        need(self.max_grad_norm >= 0, "max_grad_norm", "must be >= 0")
        need(self.epochs > 0, "epochs", "must be > 0")
        need(0 < self.sample_frac <= 1, "sample_frac", "must be in (0, 1]")
        for name in ("kappa", "neighbors", "sample_floor", "seq_len", "batch_size", "grad_accum", "student_layers",
                     "train_top_layers", "gen_max_new_tokens", "keep_checkpoints"):
            need(getattr(self, name) >= 1, name, "must be >= 1")
        for name in ("max_steps", "max_windows", "save_every", "eval_every", "eval_batches", "eval_holdout", "seed"):
            need(getattr(self, name) >= 0, name, "must be >= 0")
        need(self.seq_len >= 2, "seq_len", "must be >= 2")
        need(self.train_top_layers <= self.student_layers, "train_top_layers", f"must be <= --student-layers ({self.student_layers})")
        need(self.data_mode in DATA_MODES, "data_mode", f"must be one of {', '.join(DATA_MODES)}")
        need(self.mixed_precision in PRECISIONS, "mixed_precision", f"must be one of {', '.join(PRECISIONS)}")
        need(self.sense_dtype in SENSE_DTYPES, "sense_dtype", f"must be one of {', '.join(SENSE_DTYPES)}")
        need(bool(self.teacher.strip()), "teacher", "must name a model")
        need(bool(self.student.strip()), "student", "must be 'truncated' or a model")
        need(bool(self.output_dir.strip()), "output_dir", "must name a folder")
        if self.cache:
            need(self.student == TRUNCATED, "cache", "needs --student truncated (only its bottom layers are frozen)")

    # ------------------------------------------------------------------------------------
    def validate_for_run(self) -> None:
        """What only a run needs (a bare config for tests/TOML may leave these empty)."""
        if not self.store:
            raise InputError("no sense store given; pass --store PATH (a bundle made by `sensekit build`)")
        if not self.data:
            raise InputError("no training data given; pass --data FILE (repeatable)")

    @property
    def truncated(self) -> bool:
        return self.student == TRUNCATED

    def replace(self, **changes: Any) -> "DistillConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}

    def to_toml(self) -> str:
        lines = ["# sensekit distill: resolved configuration", "[distill]"]
        for k, v in self.to_dict().items():
            lines.append(f"{k} = {json.dumps(v)}")  # JSON scalars/arrays of strings are valid TOML
        return "\n".join(lines) + "\n"

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / "config.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_toml(), encoding="utf-8")
        return path

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> "DistillConfig":
        known = {f.name for f in fields(cls)}
        values = {k.replace("-", "_"): v for k, v in values.items()}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"{source}: unknown setting(s) {', '.join(unknown)}; see `sensekit distill --help`")
        return cls(**values)

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> "DistillConfig":
        path = Path(path)
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"config file {path} does not exist; check --config") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"config file {path} is not valid TOML: {exc}; fix the file") from None
        if "distill" in doc and isinstance(doc["distill"], dict):
            doc = doc["distill"]
        return cls.from_dict({**doc, **overrides}, source=str(path))


def config_fields() -> list[dataclasses.Field]:
    return list(fields(DistillConfig))


def _flag(name: str) -> str:
    return name.replace("_", "-")
