"""The import graph: no circle anywhere in sensekit or distill, and the eval contract in pyproject.toml
covers every registered metric (import-linter checks the contracts themselves in `make test`)."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

grimp = pytest.importorskip("grimp")  # ships with import-linter (the test extra)

ROOT = Path(__file__).resolve().parent.parent


def import_circles(graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan): each is an import circle.
    Imports inside functions and under TYPE_CHECKING count, as import-linter counts them."""
    modules = sorted(graph.modules)
    known = set(modules)
    edges = {m: sorted(set(graph.find_modules_directly_imported_by(m)) & known) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(modules)))
    try:
        for m in modules:
            if m not in index:
                visit(m)
    finally:
        sys.setrecursionlimit(limit)
    return circles


def test_there_is_no_import_circle():
    graph = grimp.build_graph("sensekit", include_external_packages=False)
    circles = import_circles(graph)
    assert not circles, "import circles (move the shared piece into a module below both): " + "; ".join(
        " <-> ".join(c) for c in circles
    )


def test_the_circle_finder_finds_a_circle():
    graph = grimp.ImportGraph()
    for m in ("p", "p.a", "p.b", "p.c"):
        graph.add_module(m)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.a")
    graph.add_import(importer="p.c", imported="p.a")
    assert import_circles(graph) == [["p.a", "p.b"]]


def test_the_eval_contract_lists_every_registered_metric():
    """A metric missing from the contract's metrics layer could import another metric unchecked."""
    from sensekit.eval.registry import MODULES

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    (contract,) = [c for c in contracts["contracts"] if c.get("containers") == ["sensekit.eval"]]
    layers = [[m.strip() for m in layer.split("|")] for layer in contract["layers"]]
    listed = next(layer for layer in layers if "wic" in layer)
    assert sorted(listed) == sorted(MODULES), (
        f"pyproject.toml's eval contract lists the metrics {listed}, sensekit/eval/registry.py MODULES is "
        f"{list(MODULES)}: add each metric module to the contract's metrics layer"
    )


def test_distill_is_imported_only_as_sensekit_distill():
    """The repository's distill/ ships as sensekit.distill: a plain `import distill` (which works from the
    checkout's root) would load every module a second time, with classes unequal to the installed ones."""
    import re

    graph = grimp.build_graph("sensekit", include_external_packages=True)
    assert "distill" not in graph.modules, "a module imports `distill`: import `sensekit.distill` instead"
    plain = re.compile(r"^\s*(from|import) distill\b", re.M)
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("tests", "benchmarks", "docs")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if plain.search(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, f"these import `distill`; import `sensekit.distill` instead: {offenders}"
