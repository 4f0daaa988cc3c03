"""Heads: how a head is measured, scored and classified (docs/methods.md).

Place in the data flow: after the plan; beside primitives. It may import
:mod:`circuitsweep.plan`, :mod:`circuitsweep.checkpoints`, :mod:`circuitsweep.config`
and :mod:`circuitsweep.io`; the milestones and outputs read its tables.

- :mod:`.probes`: the seeded probe batches (their settings: :mod:`circuitsweep.config.probes`);
- :mod:`.attention_hook`: the attention function registered with transformers'
  ``AttentionInterface`` that hands every layer's pattern to an observer;
- :mod:`.observers`: observers that reduce each pattern to per-head statistics;
- :mod:`.mlp_chunks`: decoder MLPs run over chunks of tokens while measuring;
- :mod:`.measure`: one pass per probe batch, collecting the statistics;
- :mod:`.scores`, :mod:`.classify`: per-head scores and classes from the statistics;
- :mod:`.sequence_stats`: selectivities from per-sequence statistics under any weighting (the bootstrap's);
- :mod:`.participation`, :mod:`.spectral`: the study's spectral phase (participation ratios, ranking);
- :mod:`.ablation`, :mod:`.final_ablation`: causal ablation per revision and at the final revision;
- :mod:`.natural_text`: the natural-text probe;
- :mod:`.stage`: the entry points the Snakemake rules call.

Importing this package imports no torch; the engine modules do.
"""
