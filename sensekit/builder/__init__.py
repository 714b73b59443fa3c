"""`sensekit build`: corpus -> frozen teacher (sensekit.model) (post-norm states) -> per-token reservoirs -> batched k-means -> store.

Modules, in data-flow order:
- `config`         BuildConfig: every setting, validated; the CLI flags are generated from its fields
- `corpus`         iter_documents(): streaming text/JSONL/MediaWiki/HF readers; pack_windows(): tokens + char spans
- `wordnet_corpus` iter_wordnet(): WordNet's glosses and examples, the offline default corpus
- `harvest`        BatchStream (deterministic, resumable, sharded batches); key_positions() (next gold/pred, input)
- `reservoir`      Reservoir (vectorised Algorithm R, fp16, bounded); merge_samples() (weighted merge across ranks)
- `distributed`    Ranks (rank, world, gloo group), one GPU per rank; merge_tree(): the reservoirs to rank 0
- `checkpoint`     Checkpoint: per-rank save / resume of reservoirs and corpus position, fingerprinted
- `cluster`        kmeans_batched() / cluster_samples(): k-means++ + Lloyd for all tokens at once
- `contexts`       the chosen samples' documents (cached or re-read) cut into marked snippets
- `pipeline`       build(): the whole run as a recipe, returning a BuildResult and printing nothing (the command: sensekit/cli/build.py)

Importing this package is light: torch and transformers load inside the functions that need them.
"""

__all__ = [
    "config",
    "corpus",
    "wordnet_corpus",
    "harvest",
    "reservoir",
    "distributed",
    "checkpoint",
    "cluster",
    "contexts",
    "pipeline",
]
