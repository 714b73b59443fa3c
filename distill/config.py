"""DistillConfig: every knob of a `sensekit distill` run, validated at construction.

Defaults are the paper's (docs/method.md section 2-3) and sit here, in one visible place. Each
field is a `sensekit.options.option`: its help text, range, choices, short flag and help
panel, from which the CLI flags are generated (`cli_parameters`) and which `check_fields`
enforces. The checks between fields sit in `_check`.

A config can also come from a TOML file (a flat table of the same field names, or the
same table under `[distill]`); the resolved config is written into the run's output dir.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from sensekit.errors import InputError
from sensekit.fs import write_atomic
from sensekit.options import check_fields, config_dict, flag, option, parse_layer_list, read_toml

__all__ = [
    "DistillConfig",
    "parse_layer_list",
    "TRUNCATED",
    "DATA_MODES",
    "PRECISIONS",
    "SENSE_DTYPES",
    "HIDDEN_POSITIONS",
    "AUTO",
    "CONFIG_FILE",
]

TRUNCATED = "truncated"
DATA_MODES = ("corpus", "prompts")
PRECISIONS = ("auto", "no", "bf16", "fp16")
SENSE_DTYPES = ("float32", "bfloat16", "float16")
HIDDEN_POSITIONS = ("all", "sensed")
AUTO = "auto"
CONFIG_FILE = "config.toml"


# help panels of `sensekit distill --help`
INPUTS, TRAINING, OBJECTIVE = "Inputs", "Training", "DSKD objective"


@dataclass(frozen=True)
class DistillConfig:
    # -- models and inputs -------------------------------------------------------------
    store: str = option(
        "", "Sense store bundle built by `sensekit build` with the same teacher (required).", short="-s", panel=INPUTS
    )
    data: tuple[str, ...] = option(
        (),
        "Training data: text files, folders, globs, JSONL or MediaWiki XML(.bz2) in "
        "corpus mode; a JSONL prompt file in prompts mode (repeatable; required).",
        short="-d",
        panel=INPUTS,
    )
    teacher: str = option(
        "smollm2-135m",
        "Teacher: 'smollm2-135m' (bundled, offline), a Hugging Face id or a local folder.",
        short="-t",
        panel=INPUTS,
    )
    student: str = option(
        TRUNCATED,
        "Student: 'truncated' (the teacher's first --student-layers layers) or any HF "
        "causal LM id/folder that shares the teacher's tokenizer.",
        panel=INPUTS,
    )
    student_layers: str = option(
        "15",
        "Truncated student: which teacher layers it keeps. A count N keeps the first N "
        "(the paper: half); a list of teacher layer indices and ranges keeps those, "
        "e.g. 0-6,22-29 (sorted, unique).",
        panel=TRAINING,
    )
    train_layers: str = option(
        "top2",
        "Truncated student: which of its layers train. topN: its top N (the paper: "
        "top2); or student layer indices and ranges, e.g. 13,14. The rest, embeddings, "
        "final norm and LM head stay frozen and shared with the teacher.",
        panel=TRAINING,
    )
    data_mode: str = option(
        "corpus",
        "'corpus': pack documents into windows; 'prompts': the teacher continues each "
        "JSONL prompt, the sequence is cut at a random point and every position is a "
        "target.",
        choices=DATA_MODES,
        panel=TRAINING,
    )
    text_field: str = option("text", "JSONL field holding the document text (corpus mode).", panel=TRAINING)
    prompt_field: str = option("prompt", "JSONL field holding the prompt (prompts mode).", panel=TRAINING)
    chat_template: bool = option(
        True, "Prompts mode: wrap each prompt in the tokenizer's chat template when it has one.", panel=TRAINING
    )
    gen_max_new_tokens: int = option(
        128, "Prompts mode: most tokens the teacher generates per prompt (greedy).", min=1, panel=TRAINING
    )
    max_windows: int = option(
        0, "Use at most this many training windows/sequences (0 = all of the data).", min=0, panel=TRAINING
    )
    eval_data: tuple[str, ...] = option(
        (), "Held-out corpus for perplexity (corpus readers; repeatable). Empty: use --eval-holdout.", panel=INPUTS
    )
    eval_holdout: int = option(
        0,
        "Hold out this many windows from the end of --data for evaluation (when --eval-data is empty).",
        min=0,
        panel=TRAINING,
    )
    # -- optimisation --------------------------------------------------------------------
    seq_len: int = option(256, "Tokens per training window.", min=2, panel=TRAINING)
    batch_size: int = option(8, "Windows per micro-batch per process.", min=1, panel=TRAINING)
    grad_accum: int = option(1, "Micro-batches accumulated per optimizer step.", min=1, panel=TRAINING)
    lr: float = option(
        5e-5,
        "Peak learning rate of AdamW (the paper: 5e-5 for Llama, 2e-5 for Mistral), per process; see --scale-lr.",
        panel=TRAINING,
    )  # > 0: checked in _check
    scale_lr: bool = option(
        True,
        "Multiply --lr by the number of processes, as the paper scales it by the number of "
        "GPUs (run.json records the effective rate); --no-scale-lr uses --lr as given.",
        panel=TRAINING,
    )
    weight_decay: float = option(1e-3, "AdamW weight decay (not applied to norms and biases).", min=0, panel=TRAINING)
    warmup_frac: float = option(
        0.1, "Fraction of the optimizer steps spent in linear warm-up before the cosine decay.", panel=TRAINING
    )  # in [0, 1): checked in _check
    max_grad_norm: float = option(1.0, "Gradient clipping norm (0 = no clipping).", min=0, panel=TRAINING)
    epochs: float = option(
        2.0, "Passes over the training windows (ignored when --max-steps > 0).", panel=TRAINING
    )  # > 0: checked in _check
    max_steps: int = option(0, "Optimizer steps to run (0 = derive from --epochs).", min=0, panel=TRAINING)
    mixed_precision: str = option(
        "auto", "auto (bf16 on GPU, none on CPU), no, bf16 or fp16.", choices=PRECISIONS, panel=TRAINING
    )
    # -- the DSKD objective (docs/method.md section 2) ----------------------------------------
    tau: float = option(2.0, "KD temperature tau.", panel=OBJECTIVE)  # > 0: checked in _check
    alpha: float = option(0.7, "KD scale alpha: L_KD = alpha * tau^2 * KL(teacher || student).", min=0, panel=OBJECTIVE)
    lambda_sense: float = option(
        1.0,
        "Weight lambda of the sense loss (0 = the plain KD baseline on the same code path).",
        min=0,
        panel=OBJECTIVE,
    )
    lambda_hidden: float = option(
        0.0,
        "Weight lambda_h of hidden-state distillation, lambda_h * MSE_d(h_t, g_t) over "
        "the target positions: the control arm that needs no dictionary (0 = off).",
        min=0,
        panel=OBJECTIVE,
    )
    kappa: int = option(
        5, "Candidates kept per pool: the kappa nearest (L2) to the teacher state g_t.", min=1, panel=OBJECTIVE
    )
    beta_p: str = option(
        "0.0",
        "Positive margin beta_p: max(0, MSE_d(h, p) - beta_p). A number (the paper: 0), or 'auto': the "
        "--beta-p-quantile of MSE_d(g_t, kept synonym candidate) over the first --margin-batches batches.",
        panel=OBJECTIVE,
    )
    beta_n: str = option(
        "1.0",
        "Negative margin beta_n: max(0, beta_n - MSE_d(h, q)). A number (the paper: 1), or 'auto': per "
        "antonym candidate q, the teacher's own MSE_d(g_t, q), so the push acts only on antonym senses "
        "nearer the student than the teacher sits.",
        panel=OBJECTIVE,
    )
    beta_p_quantile: float = option(
        0.1, "With --beta-p auto: the quantile of the observed synonym distances.", min=0, max=1, panel=OBJECTIVE
    )
    margin_batches: int = option(
        4,
        "With an 'auto' margin: micro-batches at start-up whose teacher states and candidates set beta_p "
        "and whose distances run.json records (their own sampling stream; training is unchanged).",
        min=1,
        panel=OBJECTIVE,
    )
    hidden_positions: str = option(
        "all",
        "Positions of the hidden-state term: 'all' target positions, or 'sensed': exactly the active "
        "positions the sense term samples (the position-matched control; sampled even at --lambda-sense 0).",
        choices=HIDDEN_POSITIONS,
        panel=OBJECTIVE,
    )
    neighbors: int = option(
        25, "Synonyms and antonyms sampled per relation-group position (each).", min=1, panel=OBJECTIVE
    )
    sample_frac: float = option(
        0.4, "Relation group size: floor(frac * |Q|) when that exceeds --sample-floor.", panel=OBJECTIVE
    )  # in (0, 1]: checked in _check
    sample_floor: int = option(
        25, "Relation group size: min(|Q|, floor) otherwise; the token group has the same size.", min=1, panel=OBJECTIVE
    )
    sense_dtype: str = option(
        "float32",
        "Precision of the sense vectors held on the device: float32, or "
        "bfloat16/float16 to halve the dictionary's memory (selection and loss still "
        "run in float32).",
        choices=SENSE_DTYPES,
        panel=TRAINING,
    )
    own_senses_negative: bool = option(
        False,
        "Compatibility with the released code: also put D(y_t) into the "
        "negative pool (contradicts the paper's text; off by default).",
        panel=OBJECTIVE,
    )
    grad_norm_every: int = option(
        10,
        "Every N optimizer steps, log each loss term's gradient norm on the trained parameters "
        "(metrics.jsonl 'grad_norms'; summary.json 'grad_share'). Costs one extra backward per term "
        "on those steps only (0 = never).",
        min=0,
        panel=TRAINING,
    )
    # -- run -----------------------------------------------------------------------------
    seed: int = option(
        0, "Seed for weights of new layers, data order and position/neighbour sampling.", min=0, panel=TRAINING
    )
    output_dir: str = option(
        "distill-out",
        "Run folder: config, metrics.jsonl, checkpoints, the final student, the cache.",
        short="-o",
        panel=TRAINING,
    )
    save_every: int = option(
        500, "Save a checkpoint every N optimizer steps (0 = only at the end).", min=0, panel=TRAINING
    )
    eval_every: int = option(
        0,
        "Evaluate held-out perplexity every N optimizer steps (0 = only at the end, if eval data).",
        min=0,
        panel=TRAINING,
    )
    eval_batches: int = option(
        0, "Evaluate on at most this many batches (0 = all eval windows).", min=0, panel=TRAINING
    )
    keep_checkpoints: int = option(2, "Checkpoints kept on disk (older ones are deleted).", min=1, panel=TRAINING)
    cache: bool = option(
        False,
        "Frozen-prefix cache (truncated student, corpus mode): the first epoch stores the "
        "frozen layers' output and the teacher's final state per token in a memory-mapped "
        "file; later steps run only the trainable layers and the two LM-head products.",
        panel=TRAINING,
    )
    device: str = option("auto", "auto, cpu or cuda; under `accelerate launch` the launcher decides.", panel=TRAINING)

    # ------------------------------------------------------------------------------------
    def __post_init__(self) -> None:
        if isinstance(self.student_layers, int) and not isinstance(self.student_layers, bool):
            object.__setattr__(self, "student_layers", str(self.student_layers))  # a count, from Python or TOML
        for name in ("student_layers", "train_layers"):  # a TOML list of indices
            value = getattr(self, name)
            if isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                object.__setattr__(self, name, ",".join(map(str, value)))
        for name in ("beta_p", "beta_n"):  # a number (Python, TOML or the CLI's text) or 'auto'
            object.__setattr__(self, name, _margin_text(name, getattr(self, name)))
        check_fields(self)  # types, finiteness, min/max, choices (tuples coerced)
        self._check()

    def _check(self) -> None:
        """Open and half-open ranges, and the rules between fields (check_fields knows closed ranges of one field)."""

        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise InputError(f"{flag(name)} {what}, got {getattr(self, name)!r}")

        need(self.lr > 0, "lr", "must be > 0")
        need(self.tau > 0, "tau", "must be > 0")
        need(0 <= self.warmup_frac < 1, "warmup_frac", "must be in [0, 1)")
        need(self.epochs > 0, "epochs", "must be > 0")
        need(0 < self.sample_frac <= 1, "sample_frac", "must be in (0, 1]")
        n_student = self._check_layers()
        need(bool(self.teacher.strip()), "teacher", "must name a model")
        need(bool(self.student.strip()), "student", "must be 'truncated' or a model")
        need(bool(self.output_dir.strip()), "output_dir", "must name a folder")
        if self.cache:
            need(self.student == TRUNCATED, "cache", "needs --student truncated (only its bottom layers are frozen)")
            trained = self.train_selection
            lowest = trained[0] if isinstance(trained, list) else n_student - trained
            if lowest == 0:
                raise InputError(
                    f"--cache needs a frozen layer below the lowest trained one, but --train-layers "
                    f"{self.train_layers} trains student layer 0; train higher layers or drop --cache"
                )

    def _check_layers(self) -> int:
        """--student-layers and --train-layers parse, and agree with each other; -> the student's layer count."""
        kept = self.student_selection
        n_student = kept if isinstance(kept, int) else len(kept)
        trained = self.train_selection
        if isinstance(trained, int) and trained > n_student:
            raise InputError(
                f"--train-layers {self.train_layers} trains more layers than the student has "
                f"({n_student}, from --student-layers {self.student_layers})"
            )
        if isinstance(trained, list) and trained[-1] >= n_student:
            raise InputError(
                f"--train-layers {self.train_layers}: student layer {trained[-1]} does not exist (the "
                f"student has layers 0..{n_student - 1}, from --student-layers {self.student_layers})"
            )
        return n_student

    @property
    def student_selection(self) -> int | list[int]:
        """--student-layers as a count (the first N teacher layers) or sorted teacher layer indices."""
        text = self.student_layers.strip()
        if text.isdigit():
            if int(text) < 1:
                raise InputError(f"--student-layers must keep at least 1 layer, got {self.student_layers!r}")
            return int(text)
        return parse_layer_list(text, "student_layers")

    @property
    def train_selection(self) -> int | list[int]:
        """--train-layers as a count (the student's top N layers) or sorted student layer indices."""
        text = self.train_layers.strip().lower()
        if text.startswith("top"):
            if not text[3:].isdigit() or int(text[3:]) < 1:
                raise InputError(
                    f"--train-layers {self.train_layers!r}: write topN with N >= 1 (e.g. top2), "
                    "or student layer indices (e.g. 13,14)"
                )
            return int(text[3:])
        return parse_layer_list(text, "train_layers")

    # ------------------------------------------------------------------------------------
    def validate_for_run(self) -> None:
        """What only a run needs (a bare config for tests/TOML may leave these empty)."""
        if not self.store:
            raise InputError("no sense store given; pass --store PATH (a bundle made by `sensekit build`)")
        if not self.data:
            raise InputError("no training data given; pass --data FILE (repeatable)")

    def margin(self, name: str) -> float | None:
        """beta_p / beta_n as a number, or None when it is 'auto' (set by the run at start-up)."""
        text = getattr(self, name)
        return None if text == AUTO else float(text)

    @property
    def auto_margins(self) -> tuple[str, ...]:
        return tuple(n for n in ("beta_p", "beta_n") if getattr(self, n) == AUTO)

    @property
    def needs_senses(self) -> bool:
        """Whether a step samples sense positions: the sense term, or the hidden term on the sensed positions."""
        return self.lambda_sense > 0 or (self.lambda_hidden > 0 and self.hidden_positions == "sensed")

    @property
    def truncated(self) -> bool:
        return self.student == TRUNCATED

    def replace(self, **changes: Any) -> "DistillConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return config_dict(self)

    def to_toml(self) -> str:
        lines = ["# sensekit distill: resolved configuration", "[distill]"]
        for k, v in self.to_dict().items():
            lines.append(f"{k} = {json.dumps(v)}")  # JSON scalars/arrays of strings are valid TOML
        return "\n".join(lines) + "\n"

    def save(self, folder: str | Path) -> Path:
        """Write the resolved config as FOLDER/config.toml."""
        path = Path(folder) / CONFIG_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_atomic(path, self.to_toml())

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
        doc = read_toml(path)
        if "distill" in doc and isinstance(doc["distill"], dict):
            doc = doc["distill"]
        return cls.from_dict({**doc, **overrides}, source=str(path))


def _margin_text(name: str, value: Any) -> str:
    """A margin as config text: 'auto', or a number >= 0 written as Python writes a float ('1' -> '1.0')."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    if isinstance(value, bool):
        value = "bad"
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{flag(name)} must be a number >= 0 or 'auto', got {value!r}") from None
    if not (number >= 0 and number != float("inf")):
        raise InputError(f"{flag(name)} must be a number >= 0 or 'auto', got {value!r}")
    return repr(number)
