"""The "where to add" recipes of docs/development.md, followed as written: a relation source is one
module and one entry in `sensekit/lexicon/sources.py` MODULES; a store metric is one module and one
entry in `sensekit/eval/registry.py` MODULES. Each test adds its piece as a module of its own (found
by an import hook, as if it were a file in the package, and registered when the registry imports
it), names it in MODULES, and uses it end to end."""

from __future__ import annotations

import importlib.abc
import importlib.util
import re
import sys

import numpy as np
import pytest
from helpers import make_store


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports module `name` by running `body(module)`: as if it were a file in the package."""

    def __init__(self, name: str, body) -> None:
        self.name, self.body = name, body

    def find_spec(self, fullname, path, target=None):
        return importlib.util.spec_from_loader(fullname, self) if fullname == self.name else None

    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        self.body(module)


def _module(monkeypatch, name: str, body) -> None:
    """A module `name` that the registry's import of MODULES finds; gone again after the test."""
    monkeypatch.setattr(sys, "meta_path", [_Finder(name, body), *sys.meta_path])
    monkeypatch.setitem(sys.modules, name, None)  # undone after the test: the module is forgotten
    del sys.modules[name]


# -- a relation source ------------------------------------------------------------------------------
def test_a_relation_source_is_one_module_and_one_entry(monkeypatch, tmp_path, teacher_dir):
    from sensekit.lexicon import sources as registry
    from sensekit.lexicon.attach import attach_relations, parse_source
    from sensekit.store import open_store

    registry.sources()  # the shipped sources, registered before the test's
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # restored after the test

    def tiny_source(module) -> None:
        def read(path, cfg, report, vocabulary):
            """`word1 word2 syn|ant` per line: the reader yields pairs one way round and counts lines."""
            pairs = []
            for line in open(path, encoding="utf-8"):
                a, b, kind = line.split()
                report.read += 1
                pairs.append((a, b, kind, {"line": report.read}))
            report.used = report.pairs = len(pairs)
            return pairs

        read.__module__ = module.__name__
        module.read = read
        registry.register(
            registry.RelationSource("tiny", "tiny", re.compile(r"\.tiny$"), read, lambda path: "tiny", "FILE.tiny")
        )

    _module(monkeypatch, "sensekit.lexicon.tiny_source", tiny_source)
    monkeypatch.setattr(registry, "MODULES", (*registry.MODULES, "tiny_source"))

    words = tmp_path / "words.tiny"
    words.write_text("happy glad syn\ngood bad ant\n", encoding="utf-8")
    assert parse_source(str(words)).source_type == "tiny"  # a bare file name its suffix claims
    assert parse_source(f"tiny:{words}").name == "tiny" and parse_source(f"mine=tiny:{words}").name == "mine"
    assert registry.source_help().split(" | ")[-1].startswith("FILE.tiny")  # the help follows MODULES' order
    store = make_store(tmp_path / "s.sensekit", teacher_dir)
    result = attach_relations(store, [f"tiny:{words}"])
    assert result["sources"]["tiny"]["read"] == 2 and result["sources"]["tiny"]["rows"] == 4  # made symmetric
    with open_store(store) as s:
        rows = {(h, r, k) for h, r, k, src, _ in s.relations_table() if src == "tiny"}
    assert rows == {("happy", "glad", "syn"), ("glad", "happy", "syn"), ("good", "bad", "ant"), ("bad", "good", "ant")}


# -- a store metric ---------------------------------------------------------------------------------
def test_a_store_metric_is_one_module_and_one_entry(monkeypatch, tmp_path, teacher_dir):
    from sensekit.eval import config as eval_config
    from sensekit.eval import registry
    from sensekit.eval.store_eval import evaluate_store

    registry.metrics()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    def sense_count(module) -> None:
        def compute(run) -> dict:
            """Senses per token of the view (no teacher, no data: reads the run's sense table)."""
            per_token = np.bincount(np.searchsorted(run.table.token_ids, run.table.owner))
            return {"status": "ok", "mean": registry.num(per_token.mean()), "coverage": registry.coverage(1, 1)}

        def rows(entry) -> list:
            return [("senses per token", registry.fmt(entry["mean"]), "-", "-")]

        def headline(entry) -> list:
            return [registry.Headline("senses per token", entry["mean"], None, "-", "the store")]

        compute.__module__ = module.__name__
        registry.register(registry.StoreMetric("sense_count", "senses per token", compute, rows, headline))

    _module(monkeypatch, "sensekit.eval.sense_count", sense_count)
    monkeypatch.setattr(registry, "MODULES", (*registry.MODULES, "sense_count"))
    monkeypatch.setattr(eval_config, "STORE_METRICS", registry.metric_names())  # read from MODULES at import

    assert list(registry.metrics())[-1] == "sense_count"  # MODULES' order: the table's and the JSON's
    store = make_store(tmp_path / "s.sensekit", teacher_dir)
    result = evaluate_store(eval_config.EvalConfig(store=str(store), metrics=("sense_count",)))
    entry = result["metrics"]["sense_count"]
    assert entry["status"] == "ok" and 1.0 <= entry["mean"] <= 4.0  # make_store: 1-4 senses per word
    assert registry.store_rows(result) == [("senses per token", registry.fmt(entry["mean"]), "-", "-")]
    assert [h["metric"] for h in result["headlines"]] == ["sense_count"]


def test_an_unknown_metric_is_refused_with_the_known_ones():
    from sensekit.errors import InputError
    from sensekit.eval.config import EvalConfig

    with pytest.raises(InputError, match="wic"):
        EvalConfig(metrics=("no_such_metric",))
