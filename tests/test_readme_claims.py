"""Every number-bearing claim of the reliability documentation (docs/reliability.md; the README links to it
and repeats its headline) names the test or benchmark figure that backs it, and its numbers are that
figure's.

A claim is a table row or a paragraph of the page holding a digit (code blocks and headings aside). It must
cite at least one backing, in backticks:
- `tests/FILE.py` or `tests/FILE.py::test_name`: the file exists and defines the test;
- `summary.KEY` or `details.KEY.KEY`: a figure of benchmarks/results/reliability.json (written by
  `python benchmarks/reliability.py --quick`).
In the results table, every number of the result column must be one of the figures its row cites (so the
page cannot drift from the last run). A claim with no backing fails this file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "reliability.md"
RESULTS = ROOT / "benchmarks" / "results" / "reliability.json"
README = ROOT / "README.md"

TEST_REF = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+))?(?:\[[^\]`]*\])?`")
FIGURE_REF = re.compile(r"`((?:summary|details)(?:\.\w+)+)`")
NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?")


def claims(text: str) -> list[str]:
    """Table rows and paragraphs that hold a digit, outside code blocks and headings."""
    blocks, para, in_code = [], [], False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        if in_code or line.startswith("#"):
            continue
        if line.startswith("|"):
            blocks.append(" ".join(para)) if para else None
            para = []
            if not re.fullmatch(r"\|[-| :]+\|", line.strip()):
                blocks.append(line)
        elif line.strip():
            para.append(line.strip())
        else:
            blocks.append(" ".join(para)) if para else None
            para = []
    if para:
        blocks.append(" ".join(para))
    return [b for b in blocks if re.search(r"\d", b)]


def figure(doc: dict, ref: str):
    node = doc
    for part in ref.split("."):
        node = node[part]
    return node


def as_number(text: str) -> float:
    return float(text.replace(",", ""))


@pytest.fixture(scope="module")
def results() -> dict:
    return json.loads(RESULTS.read_text())


@pytest.fixture(scope="module")
def page_claims() -> list[str]:
    found = claims(PAGE.read_text(encoding="utf-8"))
    assert len(found) >= 10, "the reliability page lost its claims"
    return found


def test_every_claim_names_its_backing(page_claims, results):
    unbacked = [c for c in page_claims if not TEST_REF.search(c) and not FIGURE_REF.search(c)]
    assert not unbacked, "claims without a test or benchmark figure:\n" + "\n".join(unbacked)
    for claim in page_claims:
        for file, name in TEST_REF.findall(claim):
            path = ROOT / file
            assert path.is_file(), (file, claim)
            if name:
                assert re.search(rf"^def {name}\(", path.read_text(encoding="utf-8"), re.M), (file, name)
        for ref in FIGURE_REF.findall(claim):
            try:
                figure(results, ref)
            except (KeyError, TypeError):
                pytest.fail(f"{ref} is not in {RESULTS.name} (cited by: {claim})")


def test_result_numbers_are_the_benchmarks_figures(page_claims, results):
    rows = [c for c in page_claims if c.startswith("|") and FIGURE_REF.search(c)]
    assert len(rows) >= 8
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 3, row  # claim | result | backed by
        cited = {float(figure(results, ref)) for ref in FIGURE_REF.findall(cells[2]) if _is_number(results, ref)}
        for n in NUMBER.findall(cells[1]):
            assert as_number(n) in cited, f"{n} in {cells[1]!r} is none of the cited figures {sorted(cited)}"


def _is_number(results: dict, ref: str) -> bool:
    value = figure(results, ref)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def test_the_run_behind_the_page_crossed_replacements_and_lost_nothing(results):
    s = results["summary"]
    assert s["queries_crossed_replacement"] > 0 and s["store_replacements_during_queries"] > 0
    assert s["data_lost"] == 0 and s["tests_failed"] == 0
    assert s["kills_survived"] == s["kills_tried"] > 0


def test_the_readme_headline_repeats_the_pages_figures(results):
    """The README's one reliability line: each number in it is a figure of the same run."""
    line = next(p for p in README.read_text(encoding="utf-8").split("\n- ") if p.startswith("**Reliable**"))
    figures = {float(v) for v in results["summary"].values() if isinstance(v, (int, float))}
    for n in NUMBER.findall(line.split("](")[0]):
        assert as_number(n) in figures, f"README: {n} is not a figure of {RESULTS.name}"
