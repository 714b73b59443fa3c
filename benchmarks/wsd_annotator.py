"""`sensekit eval store --metrics wsd` with `annotate`'s options changed, to set beside the default run:

    cd DIR_WITH_STORE && python benchmarks/wsd_annotator.py --set name_from_wordnet=false -- --store senses.sensekit --limit 800 --json
    cd DIR_WITH_STORE && python benchmarks/wsd_annotator.py --set wordnet_prototypes=gloss -- --store senses.sensekit --limit 800 --json

Each `--set NAME=VALUE` is an `Annotator` keyword (true/false read as booleans); every argument after
`--` goes to `eval store --metrics wsd`.
"""

from __future__ import annotations

import argparse
import sys

import sensekit.annotate as annotate
from sensekit.cli import main


def _value(text: str):
    return {"true": True, "false": False}.get(text.lower(), text)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="an Annotator keyword")
    ap.add_argument("rest", nargs=argparse.REMAINDER, help="-- then eval store's arguments")
    args = ap.parse_args()
    options = dict((k, _value(v)) for k, v in (s.split("=", 1) for s in args.set))
    init = annotate.Annotator.__init__

    def with_options(self, *a, **kw) -> None:
        init(self, *a, **{**kw, **options})

    annotate.Annotator.__init__ = with_options
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    sys.exit(main(["eval", "store", "--metrics", "wsd", *rest]))
