"""The documentation lives in the project: the CLI reference matches the live CLI, the README stays
short and its relative links resolve, and nothing points users at files outside the repository."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_LIMIT = 12_000
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def test_cli_reference_is_current():
    """docs/cli.md is generated from the typer app; a new command or flag must be regenerated."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "gen_cli.py"), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr.strip() or proc.stdout.strip() or "docs/gen_cli.py --check failed"


def test_readme_is_short():
    size = len(README.read_text(encoding="utf-8"))
    assert size <= README_LIMIT, (
        f"README.md is {size:,} characters (limit {README_LIMIT:,}): move detail into the docs/ page for its area"
    )


def test_readme_starts_with_the_two_setup_commands():
    head = README.read_text(encoding="utf-8").splitlines()[:6]
    assert any(line.startswith("make demo") for line in head)
    assert any(line.startswith("make test") for line in head)


def _relative_links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)  # not inside code
    links = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL (https:, mailto:) or an anchor on the same page
        links.append(target.split("#")[0])
    return links


def test_readme_relative_links_exist():
    missing = [t for t in _relative_links(README) if not (ROOT / t).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


@pytest.mark.parametrize("page", sorted((ROOT / "docs").glob("*.md")), ids=lambda p: p.name)
def test_docs_relative_links_exist(page: Path):
    """The same check for the docs pages (mkdocs --strict checks them too, with anchors, in make test)."""
    missing = [t for t in _relative_links(page) if not (page.parent / t).exists()]
    assert not missing, f"docs/{page.name} links to files that do not exist: {missing}"


def test_no_reference_to_files_outside_the_project():
    """A user's clone has no ../shared: the method is docs/method.md."""
    offenders = []
    for folder in ("sensekit", "distill", "tests", "benchmarks", "schemas", "docs"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix not in {".py", ".md", ".sql", ".json", ".toml"} or not path.is_file():
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            if "METHOD.md" in text or "shared/docs" in text:
                offenders.append(str(path.relative_to(ROOT)))
    for name in ("README.md", "Makefile", "pyproject.toml", "mkdocs.yml"):
        text = (ROOT / name).read_text(encoding="utf-8")
        if "METHOD.md" in text or "shared/docs" in text:
            offenders.append(name)
    offenders = [o for o in offenders if o != "tests/test_docs.py"]
    assert not offenders, f"these cite METHOD.md or ../shared/docs; cite docs/method.md instead: {offenders}"
