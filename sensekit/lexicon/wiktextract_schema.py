"""The wiktextract entry schema (`schemas/wiktextract-entry.schema.json`): the fields sensekit reads.

Every kaikki line is checked against it. The schema is compiled twice: once into straight-line
Python (`compile_fast_check`, a fast yes/no answer), and once into nested closures
(`compile_validator`) that name the offending field; only a failing entry pays for the second.
"""

from __future__ import annotations

import json
from typing import Any, Callable

__all__ = ["SCHEMA_NAME", "load_schema", "compile_validator", "compile_fast_check", "validate_entry"]

SCHEMA_NAME = "wiktextract-entry.schema.json"


def load_schema() -> dict[str, Any]:
    from ..paths import schema_text

    return json.loads(schema_text(SCHEMA_NAME))


_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _type_name(v: Any) -> str:
    return {
        str: "string",
        list: "array",
        dict: "object",
        bool: "boolean",
        int: "integer",
        float: "number",
        type(None): "null",
    }.get(type(v), type(v).__name__)


def compile_validator(schema: dict[str, Any]) -> Callable[[Any], str | None]:
    """Compile the JSON-Schema subset the entry schema uses (type, required, properties, items,
    minLength, local $ref) into nested closures. The validator returns None for a valid
    value, else a one-line message naming the offending path."""
    defs = schema.get("$defs", {})
    compiled: dict[str, Callable[[Any, str], str | None]] = {}

    def build(node: dict[str, Any]) -> Callable[[Any, str], str | None]:
        if "$ref" in node:
            ref = node["$ref"]
            if not ref.startswith("#/$defs/"):
                raise ValueError(f"unsupported $ref {ref}")
            name = ref[len("#/$defs/") :]
            if name not in compiled:
                compiled[name] = lambda v, p: None  # placeholder for recursion
                compiled[name] = build(defs[name])
            return lambda v, p: compiled[name](v, p)
        checks: list[Callable[[Any, str], str | None]] = []
        typ = node.get("type")
        if typ is not None:
            names = typ if isinstance(typ, list) else [typ]
            fns = [_TYPES[t] for t in names]
            want = " or ".join(names)
            ok = fns[0] if len(fns) == 1 else (lambda v: any(f(v) for f in fns))
            checks.append(lambda v, p: None if ok(v) else f"{p or 'entry'}: expected {want}, got {_type_name(v)}")
        if "minLength" in node:
            n = node["minLength"]
            checks.append(
                lambda v, p: f"{p}: shorter than {n} character(s)" if isinstance(v, str) and len(v) < n else None
            )
        required = tuple(node.get("required", ()))
        if required:

            def req(v, p, required=required):
                if isinstance(v, dict):
                    for r in required:
                        if r not in v:
                            return f"{p + '.' if p else ''}{r}: required field missing"
                return None

            checks.append(req)
        props = {k: build(s) for k, s in node.get("properties", {}).items()}
        if props:
            items_ = tuple(props.items())

            def properties(v, p, items_=items_):
                if isinstance(v, dict):
                    for key, fn in items_:
                        if key in v:
                            err = fn(v[key], f"{p}.{key}" if p else key)
                            if err:
                                return err
                return None

            checks.append(properties)
        if "items" in node:
            item_fn = build(node["items"])

            def items(v, p, item_fn=item_fn):
                if isinstance(v, list):
                    for i, x in enumerate(v):
                        err = item_fn(x, f"{p}[{i}]")
                        if err:
                            return err
                return None

            checks.append(items)
        checks_t = tuple(checks)
        if len(checks_t) == 1:
            return checks_t[0]

        def all_checks(v, p, checks_t=checks_t):
            for c in checks_t:
                err = c(v, p)
                if err:
                    return err
            return None

        return all_checks

    root = build(schema)
    return lambda value: root(value, "")


_PY_TYPES = {"string": "str", "array": "list", "object": "dict", "boolean": "bool", "null": "type(None)"}


def compile_fast_check(schema: dict[str, Any]) -> Callable[[Any], bool]:
    """The same schema subset compiled to straight-line Python source (exec'd once): True
    when a value is valid. It only answers yes/no, fast; `compile_validator` says why not."""
    defs = schema.get("$defs", {})
    lines = ["def check(v0):"]
    counter = [0]

    def emit(node: dict[str, Any], var: str, indent: int, depth: int) -> None:
        if depth > 12:
            raise ValueError("schema nests too deeply for the fast checker")
        if "$ref" in node:
            node = defs[node["$ref"][len("#/$defs/") :]]
        pad = "    " * indent
        typ = node.get("type")
        if typ is not None:
            names = typ if isinstance(typ, list) else [typ]
            conds = []
            for t in names:
                if t == "integer":
                    conds.append(f"(type({var}) is int)")
                elif t == "number":
                    conds.append(f"(type({var}) in (int, float))")
                else:
                    conds.append(f"(type({var}) is {_PY_TYPES[t]})")
            lines.append(f"{pad}if not ({' or '.join(conds)}): return False")
        if "minLength" in node:
            lines.append(f"{pad}if type({var}) is str and len({var}) < {int(node['minLength'])}: return False")
        if node.get("required"):
            lines.append(f"{pad}if type({var}) is dict:")
            for r in node["required"]:
                lines.append(f"{pad}    if {r!r} not in {var}: return False")
        props = node.get("properties", {})
        if props:
            lines.append(f"{pad}if type({var}) is dict:")
            for key, sub in props.items():
                counter[0] += 1
                child = f"v{counter[0]}"
                lines.append(f"{pad}    {child} = {var}.get({key!r}, _MISSING)")
                lines.append(f"{pad}    if {child} is not _MISSING:")
                before = len(lines)
                emit(sub, child, indent + 2, depth + 1)
                if len(lines) == before:
                    lines.append(f"{pad}        pass")
        if "items" in node:
            counter[0] += 1
            child = f"v{counter[0]}"
            lines.append(f"{pad}if type({var}) is list:")
            lines.append(f"{pad}    for {child} in {var}:")
            before = len(lines)
            emit(node["items"], child, indent + 2, depth + 1)
            if len(lines) == before:
                lines.append(f"{pad}        pass")

    emit(schema, "v0", 1, 0)
    lines.append("    return True")
    namespace: dict[str, Any] = {"_MISSING": object()}
    exec(compile("\n".join(lines), f"<{SCHEMA_NAME} fast check>", "exec"), namespace)
    return namespace["check"]


_VALIDATOR: Callable[[Any], str | None] | None = None
_FAST: Callable[[Any], bool] | None = None


def validate_entry(entry: Any) -> str | None:
    """None when `entry` satisfies the entry schema, else the first problem (one line)."""
    global _VALIDATOR, _FAST
    if _FAST is None:
        schema = load_schema()
        _VALIDATOR = compile_validator(schema)
        _FAST = compile_fast_check(schema)
    if _FAST(entry):
        return None
    return _VALIDATOR(entry) or "does not match the schema"
