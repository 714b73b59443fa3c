"""The reliability page (docs/reliability.md) and the README's reliability line hold only numbers that this
run of the suite produced.

A claim is a row of the page's results table: `| claim | result | test |`. Its test cell names exactly one
test target in backticks: `tests/FILE.py` (every test of the file), `tests/FILE.py::test_name`, or
`tests/FILE.py::test_pattern_*` (test functions whose name matches, with all their cases). Every number of
the result cell must be a figure of that target in this run:
- "N of M": N the target's cases that passed, M those that ran (so "8 of 8" says every one passed);
- a number a test of the target asserted and recorded with the `figure` fixture (conftest.py).
The figures come from this session when it ran every case of the target (conftest.py puts this file last);
else the target is run now, in a child pytest, and its figures come from there: nothing is read from a
committed file. A target with a skipped case (no root for the tmpfs, no ../shared for an integration case) leaves
its claim unchecked, and the test says which. Outside the table, the page holds no number: a claim there would have no test. The README's line
repeats the table's "N of M" figures.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import RUN

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "reliability.md"
README = ROOT / "README.md"

TARGET = re.compile(r"`(tests/[\w/]+\.py)(?:::([\w*]+))?`")
NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?")
N_OF_M = re.compile(r"(\d[\d,]*) of (\d[\d,]*)")


def table_rows(text: str) -> list[list[str]]:
    """The cells of the results table's rows (header and rule aside)."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not re.fullmatch(r"\|[-| :]+\|", line.strip()):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cells[0] != "claim":
                rows.append(cells)
    return rows


def prose_numbers(text: str) -> list[str]:
    """Paragraphs (outside code blocks, headings and the table) that hold a number."""
    found, in_code = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and not line.startswith(("#", "|")):
            without_refs = re.sub(r"`[^`]*`", "", line)  # file and test names are not claims
            if NUMBER.search(without_refs):
                found.append(line)
    return found


def number(text: str) -> float:
    return float(text.replace(",", ""))


def in_target(nodeid: str, file: str, pattern: str | None) -> bool:
    path, _, rest = nodeid.partition("::")
    return path == file and (pattern is None or fnmatch.fnmatchcase(rest.split("[")[0], pattern))


_RERUN: dict[str, dict] = {}  # file -> {"outcomes": ..., "figures": ...} of a child run of the file


def figures_of(file: str, pattern: str | None, tmp_path_factory) -> tuple[dict[str, str], dict[str, dict]]:
    """(outcome by nodeid, recorded figures by nodeid) of the target's cases in this run: from this session
    when it ran all of them, else from running the target's file now (once)."""
    mine = {n for n in RUN["collected"] if in_target(n, file, pattern)}
    if mine and mine <= RUN["selected"] and all(n in RUN["outcomes"] for n in mine):
        doc = RUN
    else:
        if file not in _RERUN:
            out = tmp_path_factory.mktemp("claims") / "run.json"
            argv = [sys.executable, "-m", "pytest", file, "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]
            env = {**os.environ, "SENSEKIT_CLAIMS_OUT": str(out)}
            subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, timeout=3600)
            _RERUN[file] = json.loads(out.read_text())
        doc = _RERUN[file]
    outcomes = {n: o for n, o in doc["outcomes"].items() if in_target(n, file, pattern)}
    return outcomes, {n: f for n, f in doc["figures"].items() if n in outcomes}


@pytest.fixture(scope="module")
def rows() -> list[list[str]]:
    found = table_rows(PAGE.read_text(encoding="utf-8"))
    assert len(found) >= 8, "the reliability page lost its results table"
    return found


def test_every_claim_names_one_test_target(rows):
    for cells in rows:
        assert len(cells) == 3, cells  # claim | result | test
        targets = TARGET.findall(cells[2])
        assert len(targets) == 1, f"a claim names one test target, this one {len(targets)}: {cells}"
        file, pattern = targets[0]
        assert (ROOT / file).is_file(), file
        assert NUMBER.search(cells[1]), f"a result without a number: {cells}"


def test_the_page_holds_no_number_outside_its_table():
    lines = prose_numbers(PAGE.read_text(encoding="utf-8"))
    assert not lines, "numbers outside the results table (no test backs them):\n" + "\n".join(lines)


def test_each_claims_numbers_are_its_tests_figures_in_this_run(rows, tmp_path_factory):
    wrong, unchecked = [], []
    for claim, result, test in rows:
        file, pattern = TARGET.findall(test)[0]
        outcomes, recorded = figures_of(file, pattern or None, tmp_path_factory)
        if not outcomes:
            wrong.append(f"{test} has no test in this run (renamed?): {claim}")
            continue
        if "skipped" in outcomes.values():  # the counts of this machine are not the page's
            unchecked.append(f"{test}: {sum(o == 'skipped' for o in outcomes.values())} of its cases skipped")
            continue
        passed, ran = sum(o == "passed" for o in outcomes.values()), len(outcomes)
        figures = {float(v) for f in recorded.values() for v in f.values()}
        rest = result
        for n, m in N_OF_M.findall(result):
            if (number(n), number(m)) != (passed, ran):
                wrong.append(f"{test}: {passed} of {ran} passed in this run, the page says {n} of {m}")
            rest = rest.replace(f"{n} of {m}", "", 1)
        for n in NUMBER.findall(rest):
            if number(n) not in figures:
                wrong.append(f"{test} recorded {sorted(figures)} in this run, the page says {n}")
    assert not wrong, "docs/reliability.md is not this run:\n" + "\n".join(wrong)
    if unchecked:  # a tmpfs needs root, integration tests need ../shared: never a claim checked on half a run
        pytest.skip("claims not checked, their tests skipped here: " + "; ".join(unchecked))


def test_the_readme_line_repeats_the_pages_figures(rows):
    """The README's reliability line: each "N/M" is one of the table's "N of M" (checked above)."""
    line = next(p for p in README.read_text(encoding="utf-8").split("\n- ") if p.startswith("**Reliable**"))
    line = line.split("](")[0]
    table = {(number(n), number(m)) for _, result, _ in rows for n, m in N_OF_M.findall(result)}
    pairs = re.findall(r"(\d[\d,]*)/(\d[\d,]*)", line)
    assert pairs, "the README's reliability line lost its figures"
    for n, m in pairs:
        assert (number(n), number(m)) in table, f"README: {n}/{m} is no figure of docs/reliability.md's table"
    assert not NUMBER.findall(re.sub(r"\d[\d,]*/\d[\d,]*", "", line)), "README: a number the page does not hold"
