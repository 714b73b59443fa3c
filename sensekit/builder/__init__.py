"""`sensekit build`: corpus -> frozen teacher (post-norm states) -> per-token reservoirs -> batched k-means -> store.

Modules, in data-flow order:
- `teacher`   load_teacher(): any HF causal LM, or the bundled offline SmolLM2-135M (GGUF -> safetensors once)
- `corpus`    iter_documents() / iter_wordnet(): streaming readers; pack_windows(): tokens + char spans
- `harvest`   BatchStream (deterministic, resumable, sharded batches); key_positions() (next gold/pred, input)
- `reservoir` Reservoir (vectorised Algorithm R, fp16, bounded); merge_samples() (weighted merge across ranks)
- `cluster`   kmeans_batched() / cluster_samples(): k-means++ + Lloyd for all tokens at once
- `pipeline`  BuildConfig, build(): the whole run, returning a BuildResult and printing nothing
- `cli`       register(app): the typer `build` command with rich progress

Importing this package is light: torch and transformers load inside the functions that need them.
"""

__all__ = ["teacher", "corpus", "harvest", "reservoir", "cluster", "pipeline", "cli"]
