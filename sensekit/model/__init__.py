"""Everything sensekit knows about a Hugging Face causal LM, in one place.

- `teacher`     load_teacher(): any HF causal LM by id or folder, or the bundled offline SmolLM2-135M
                (GGUF -> safetensors once); Teacher.final_hidden() is g_t, the post-norm state
- `families`    the per-family logits path (soft-caps, scales) and the exact split forward
                (run_to_layer / resume_at_layer); the one tolerance rule for "the same values"
- `layers`      finding, parsing, selecting and slicing decoder layers; build_truncated()
- `store_check` does a store come from this teacher (name, width, tokenizer, key mode)

Adding a model family: if its decoder layers sit under base_model.layers / .h / .blocks and its
base model returns the post-norm state, nothing is needed. A new logits step (a scale or a cap read
from the config) goes in `families.logits_transform`; a new layer attribute in `layers.LAYER_ATTRS`.
Then add the family to tests/test_families.py, which checks the logits path and the split forward
against the model's own forward.

This package imports torch: the query path (`import sensekit`, SenseStore) never imports it.
"""
