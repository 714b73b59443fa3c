"""Lexical relations for the sense store (docs/method.md section 1, steps 4 and 5).

- `kaikki`: kaikki.org / wiktextract JSONL (the main Wiktionary path), and the one language rule;
- `wiktextract_schema`: the entry schema every JSONL line is checked against;
- `wiktionary_dump`: raw MediaWiki dumps through wiktextract (`dump_entries`, `extract`);
- `wordnet`: WordNet 3.0 through NLTK;
- `pairs`: pair-list files and normalisation (symmetric, self-pairs dropped, polarity);
- `polarity`: negating-affix normalisation;
- `tokens`: words to the teacher's tokens, and span clouds for multi-token words;
- `config`: `RelationsConfig`, the options of attaching relations and their defaults;
- `sources`: the registry of relation sources (each reader module registers one; `parse_source`);
- `attach`: all of it into a store, atomically (`attach_relations`).

The commands (`sensekit relations add`, `sensekit lexicon extract`) live in sensekit/cli/.

Nothing heavy is imported here; import the submodules you need.
"""

__all__ = ["attach_relations", "open_wordnet"]


def __getattr__(name: str):
    if name == "attach_relations":
        from .attach import attach_relations

        return attach_relations
    if name == "open_wordnet":
        from .wordnet import open_wordnet

        return open_wordnet
    raise AttributeError(name)
