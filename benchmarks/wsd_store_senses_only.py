"""`sensekit eval store --metrics wsd` with annotate kept to the store's senses (`--store-senses-only`), to set
beside the default run, where annotate names the words the build did not link from WordNet:

    cd DIR_WITH_STORE && python benchmarks/wsd_store_senses_only.py --store senses.sensekit --limit 800 --json

Every argument after the script's name goes to `eval store --metrics wsd`.
"""

from __future__ import annotations

import sys

import sensekit.annotate as annotate
from sensekit.cli import main

_init = annotate.Annotator.__init__


def _store_senses_only(self, *args, **kwargs) -> None:
    kwargs["name_from_wordnet"] = False
    _init(self, *args, **kwargs)


if __name__ == "__main__":
    annotate.Annotator.__init__ = _store_senses_only
    main(["eval", "store", "--metrics", "wsd", *sys.argv[1:]])
