"""Measure a sense store on real benchmarks (a student: `distill.student_eval`, which uses `states`,
`wic` and `wordnet_pairs` from here).

- `wic`: word in context, nearest-sense agreement vs a cosine threshold on raw states, on the
  WordNet held-out pairs (`wordnet_pairs`) and a WiC file beside them;
- `similarity`: SimLex-999 / WordSim-353 (shipped in `data/`) Spearman with MaxSim, AvgSim and
  centroid cosine;
- `purity`: sense assignments of WordNet's held-out example sentences against their synsets (ARI, purity);
- `neighbours`: share of a word's nearest senses that are WordNet relatives of it;
- `health`: duplicated senses, raw-sample tokens, anisotropy;
- `senses`: the store's token senses as one dense table, and the similarity space;
- `states`: a language model's state for a word in a sentence, batched;
- `registry`: the metrics above register themselves there (name, compute, table rows, headline);
  adding a metric is one module plus its name in `registry.MODULES` and in the eval import contract;
- `run`: `StoreRun`, what the metrics share (store, sense table, teacher, WordNet);
- `items`: the pieces below every metric (word cleaning, occurrences, WiC items and files);
- `store_eval`: the driver (`evaluate_store`), `config`: the settings (the command: sensekit/cli/eval.py).

Importing this package imports neither torch nor transformers; the commands load them.
"""
