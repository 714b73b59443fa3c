"""Generate docs/cli.md, the CLI reference, from the live typer app.

    python docs/gen_cli.py           # rewrite docs/cli.md  (`make docs-cli`)
    python docs/gen_cli.py --check   # exit 1 when docs/cli.md differs from what the app says

Every command and subcommand of `sensekit.cli:app` (the one app the `sensekit` command runs) is
walked through click, the way `--help` sees it: its usage line, its help text and one table row per
argument and option (the flags that come from the config dataclasses included). The output is plain
Markdown built from the parameters themselves, so it does not depend on the terminal width or on
rich's version.
"""

from __future__ import annotations

import argparse
import enum
import importlib
import os
import re
import sys
import typing
from pathlib import Path

import typer
from rich.text import Text

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "docs" / "cli.md"
REGENERATE = "make docs-cli"  # what the stale-page message tells people to run

DEFAULT_IN_HELP = re.compile(r"\s*\[default: (.*)\]$", re.DOTALL)

HEADER = f"""# CLI reference

<!-- Generated from the live typer app by docs/gen_cli.py; do not edit by hand.
     Regenerate with `{REGENERATE}`; tests/test_docs.py fails when this page is stale. -->

This page is generated from the commands themselves (`sensekit.cli:app`), so it lists exactly
the flags `sensekit COMMAND --help` shows; many of them come from the validated config
dataclasses (`BuildConfig`, `RelationsConfig`, `DistillConfig`, ...). For what the commands do,
with real output, see [Commands](commands.md).

Every command prints one line and exits 1 (bad input, unknown word) or 2 (missing or corrupt
store) on a user error, never a traceback.
"""


def root_command():
    """The `sensekit` click command: the app `sensekit.cli.main` runs."""
    return typer.main.get_command(importlib.import_module("sensekit.cli").app)


def _plain(text: str | None) -> str:
    """Help text as plain Markdown-safe text: rich markup removed, click's \\b and \\f honoured."""
    if not text:
        return ""
    text = text.split("\f")[0].replace("\b\n", "").replace("\b", "")
    try:
        text = Text.from_markup(text).plain
    except Exception:  # not valid rich markup: keep it as written
        pass
    return text.strip()


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _is_flag(param) -> bool:
    return bool(getattr(param, "is_flag", False))


def _type(param) -> str:
    """The value a parameter takes: `flag`, a type name, choices, and a range when one is set."""
    if _is_flag(param):
        return "flag"
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)  # typer's own click
    if annotation is not None:
        kind = _annotation_name(annotation)
    else:  # plain click
        choices = getattr(param.type, "choices", None)
        kind = " or ".join(f"`{c}`" for c in choices) if choices else param.type.name
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if low is not None and high is not None:
        kind += f", {low} to {high}"
    elif low is not None:
        kind += f", >= {low}"
    elif high is not None:
        kind += f", <= {high}"
    return kind


def _annotation_name(annotation) -> str:
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin is typing.Literal:
        return " or ".join(f"`{a}`" for a in args)
    if origin in (list, tuple, set) and args:
        return f"{_annotation_name(args[0])} (repeatable)"
    if origin is not None and args:  # Optional[X], Annotated[X, ...], X | None
        return _annotation_name(args[0])
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " or ".join(f"`{m.value}`" for m in annotation)
    return {"str": "text", "Path": "path", "int": "integer", "float": "number", "bool": "flag"}.get(
        getattr(annotation, "__name__", str(annotation)), getattr(annotation, "__name__", str(annotation))
    )


def _default(param) -> str:
    if param.required:
        return "required"
    value = param.default
    if callable(value) or value is None or value == () or value == []:
        return ""
    if isinstance(value, enum.Enum):
        value = value.value
    if _is_flag(param):
        if param.secondary_opts:
            return f"`{(param.opts if value else param.secondary_opts)[0]}`"
        return "on" if value else ""
    if isinstance(value, (list, tuple)):
        return ", ".join(f"`{v}`" for v in value)
    return f"`{value}`"


def _name(param) -> str:
    if param.param_type_name == "argument":
        name = (param.metavar or param.name).upper().removesuffix("...")
        return f"`{name}...`" if param.nargs == -1 else f"`{name}`"
    names = ", ".join(f"`{o}`" for o in param.opts)
    if param.secondary_opts:
        names += " / " + ", ".join(f"`{o}`" for o in param.secondary_opts)
    return names


def _params_table(cmd, ctx) -> list[str]:
    help_names = set(ctx.help_option_names)
    rows = []
    for param in _visible_params(cmd, ctx):
        if help_names.intersection(param.opts):
            continue
        text, default = _plain(getattr(param, "help", "")), _default(param)
        shown = DEFAULT_IN_HELP.search(text)  # config-made flags carry their default in the help text
        if shown:
            text = text[: shown.start()].rstrip()
            default = default or f"`{shown.group(1)}`"
        rows.append(f"| {_name(param)} | {_type(param)} | {default} | {_cell(text)} |")
    if not rows:
        return []
    return ["| argument / option | type | default | description |", "|---|---|---|---|", *rows, ""]


def _visible_params(cmd, ctx) -> list:
    return [p for p in cmd.get_params(ctx) if not getattr(p, "hidden", False)]


def _usage(cmd, ctx) -> str:
    """`PATH [OPTIONS] ARGS`, written the way click's help writes it."""
    pieces = []
    params = _visible_params(cmd, ctx)
    if any(p.param_type_name == "option" for p in params):
        pieces.append("[OPTIONS]")
    for p in params:
        if p.param_type_name == "argument":
            name = (p.metavar or p.name).upper().removesuffix("...")
            name += "..." if p.nargs == -1 else ""
            pieces.append(name if p.required else f"[{name}]")
    if _is_group(cmd):
        pieces.append(cmd.subcommand_metavar)
    return " ".join([ctx.command_path, *pieces])


def _section(cmd, ctx) -> list[str]:
    path = ctx.command_path
    lines = [f"## `{path}`", ""]
    lines += ["```text", _usage(cmd, ctx), "```", ""]
    text = _plain(cmd.help)
    if text:
        lines += [text, ""]
    if _is_group(cmd):
        names = [n for n in cmd.list_commands(ctx) if not getattr(cmd.get_command(ctx, n), "hidden", False)]
        lines += ["| command | what it does |", "|---|---|"]
        for name in names:
            sub = cmd.get_command(ctx, name)
            anchor = f"{path} {name}"
            lines.append(f"| [`{name}`](#{_anchor(anchor)}) | {_cell(_plain(sub.get_short_help_str(limit=200)))} |")
        lines.append("")
    lines += _params_table(cmd, ctx)
    return lines


def _is_group(cmd) -> bool:
    return hasattr(cmd, "list_commands")


def _anchor(title: str) -> str:
    """The id Python-Markdown's toc extension gives a heading `title` (in backticks)."""
    slug = re.sub(r"[^\w\s-]", "", title.lower()).strip()
    return re.sub(r"[-\s]+", "-", slug)


def _walk(cmd, ctx) -> list[str]:
    lines = _section(cmd, ctx)
    if _is_group(cmd):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is None or getattr(sub, "hidden", False):
                continue
            lines += _walk(sub, sub.context_class(sub, info_name=name, parent=ctx))
    return lines


def render() -> str:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    root = root_command()
    ctx = root.context_class(root, info_name="sensekit")
    return "\n".join([HEADER, *_walk(root, ctx)]).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="Exit 1 when docs/cli.md is stale; write nothing.")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"docs/cli.md is stale (the CLI changed): regenerate it with `{REGENERATE}`", file=sys.stderr)
            return 1
        print("docs/cli.md is up to date")
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing: `python docs/gen_cli.py`
    raise SystemExit(main())
