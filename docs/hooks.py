"""mkdocs hook: serve the benchmark figures from benchmarks/results/ without copying them into docs/.

The pages link them as `../benchmarks/results/NAME.png`, which works when the Markdown is read on
a code host; the built site gets the files under `assets/results/` and the links are rewritten to
point there, so `mkdocs build --strict` checks them like any other link.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
LINK = re.compile(r"\((?:\.\./)+benchmarks/results/([\w.\-]+\.(?:png|svg|jpg))\)")


def on_files(files, config):
    for path in sorted(RESULTS.glob("*.png")):
        files.append(File.generated(config, f"assets/results/{path.name}", abs_src_path=str(path)))
    return files


def on_page_markdown(markdown, page, config, files):
    depth = page.file.src_uri.count("/")
    prefix = "../" * depth
    return LINK.sub(lambda m: f"({prefix}assets/results/{m.group(1)})", markdown)
