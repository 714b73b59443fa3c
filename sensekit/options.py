"""One config idiom for every command: a frozen dataclass whose fields carry their help text.

- `option(default, help, min=, max=, choices=, short=, panel=)` declares a field.
- `check_fields(cfg)` validates types, ranges and choices at construction (call it from
  `__post_init__`); the error names the CLI flag.
- `cli_parameters(cls)` turns the fields into typer keyword parameters (every default `None`,
  so a command can tell "not given" from "given"), and `given(values)` keeps the given ones.

Each default therefore lives in exactly one place: the dataclass. No torch here; typer is
imported only when flags are generated.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
from dataclasses import MISSING, field, fields
from pathlib import Path
from typing import Any, Iterable

from .errors import InputError

__all__ = [
    "option",
    "check_fields",
    "cli_parameters",
    "given",
    "flag",
    "config_dict",
    "read_toml",
    "parse_layer_list",
]

_PY_TYPES = {"int": int, "float": float, "bool": bool, "str": str}


def option(default: Any, help: str, **meta: Any) -> Any:
    """A dataclass field with CLI metadata: help, and optionally min, max, choices, short, panel."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **meta})
    return field(default=default, metadata={"help": help, **meta})


def flag(name: str) -> str:
    """The CLI flag of a field: `seq_len` -> `--seq-len`."""
    return "--" + name.replace("_", "-")


def _base_type(annotation: str) -> str:
    """'Optional[int]' / 'int | None' -> 'int'; 'tuple[str, ...]' stays."""
    text = str(annotation).replace(" ", "")
    if text.startswith("Optional[") and text.endswith("]"):
        return text[len("Optional[") : -1]
    if text.endswith("|None"):
        return text[: -len("|None")]
    return text


def check_fields(cfg: Any) -> None:
    """Coerce tuples and int->float, then check each field's type, finiteness, range and choices."""
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        type_name = _base_type(f.type)
        if value is None:
            if type_name != str(f.type).replace(" ", ""):  # Optional: None is allowed
                continue
            raise InputError(f"{flag(f.name)} is required")
        if type_name.startswith("tuple"):
            if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
                value = (value,)
            object.__setattr__(cfg, f.name, tuple(str(v) for v in value))
            continue
        want = _PY_TYPES.get(type_name)
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
            object.__setattr__(cfg, f.name, value)
        if want is not None and (not isinstance(value, want) or (want is not bool and isinstance(value, bool))):
            raise InputError(f"{flag(f.name)} must be {want.__name__}, got {value!r}")
        if want is float and not math.isfinite(value):
            raise InputError(f"{flag(f.name)} must be a finite number, got {value!r}")
        lo, hi, choices = f.metadata.get("min"), f.metadata.get("max"), f.metadata.get("choices")
        if lo is not None and value < lo:
            raise InputError(f"{flag(f.name)} must be >= {lo}, got {value!r}")
        if hi is not None and value > hi:
            raise InputError(f"{flag(f.name)} must be <= {hi}, got {value!r}")
        if choices is not None and value not in choices:
            raise InputError(f"{flag(f.name)} must be one of {', '.join(map(str, choices))}, got {value!r}")


def config_dict(cfg: Any) -> dict[str, Any]:
    """The config as JSON-ready data (tuples become lists)."""
    return {f.name: (list(v) if isinstance(v := getattr(cfg, f.name), tuple) else v) for f in fields(cfg)}


def _default_text(f: dataclasses.Field) -> str:
    value = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
    if isinstance(value, bool):
        return flag(f.name) if value else "--no-" + f.name.replace("_", "-")
    if isinstance(value, tuple):
        return " ".join(value) if value else "none"
    return "none" if value in ("", None) else str(value)


def cli_parameters(cls: type, skip: Iterable[str] = (), arguments: Iterable[str] = ()) -> list[inspect.Parameter]:
    """Keyword parameters for a typer command, one per field of `cls` (not in `skip`).

    Fields named in `arguments` become positional arguments (tuples: variadic). Every default is
    None, so `given(...)` keeps only what the user typed and the dataclass supplies the rest.
    """
    from typing import Annotated, List, Optional

    import typer
    from rich.markup import escape

    skip, arguments = set(skip), set(arguments)
    params = []
    for f in fields(cls):
        if f.name in skip:
            continue
        type_name = _base_type(f.type)
        py = List[str] if type_name.startswith("tuple") else _PY_TYPES[type_name]
        text = f"{escape(f.metadata['help'])} \\[default: {escape(_default_text(f))}]"
        if f.name in arguments:
            info = typer.Argument(help=text, show_default=False)
        else:
            names = [f"{flag(f.name)}/--no-{f.name.replace('_', '-')}"] if py is bool else [flag(f.name)]
            if f.metadata.get("short"):
                names.append(f.metadata["short"])
            info = typer.Option(*names, help=text, show_default=False, rich_help_panel=f.metadata.get("panel"))
        params.append(
            inspect.Parameter(
                f.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[Optional[py], info]
            )
        )
    return params


def given(values: dict[str, Any]) -> dict[str, Any]:
    """The flags the user gave (typer passes None, or [] for an empty variadic argument, otherwise)."""
    return {k: v for k, v in values.items() if v is not None and v != []}


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    """A --config TOML file as a dict; a missing, unreadable or malformed file is one InputError line."""
    import tomllib

    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"config file {path} does not exist; check --config") from None
    except IsADirectoryError:
        raise InputError(f"config file {path} is a directory; give a TOML file to --config") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"config file {path} is not valid TOML: {exc}; fix the file") from None


def parse_layer_list(text: str, name: str) -> list[int]:
    """'0-6,22-29' -> [0, 1, ..., 6, 22, ..., 29]: comma-separated indices and inclusive ranges, sorted and unique.

    `name` is the config field the text came from; errors name its flag.
    """
    out: list[int] = []
    for part in text.replace(" ", "").split(","):
        lo, dash, hi = part.partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise InputError(f"{flag(name)} {text!r}: write layer indices and ranges such as 0-6,22-29")
        first, last = int(lo), int(hi) if dash else int(lo)
        if last < first:
            raise InputError(f"{flag(name)} {text!r}: the range {part} runs backwards; write {last}-{first}")
        out.extend(range(first, last + 1))
    if out != sorted(set(out)):
        raise InputError(f"{flag(name)} {text!r}: layers must be sorted and unique")
    return out
