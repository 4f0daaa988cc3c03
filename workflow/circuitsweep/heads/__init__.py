"""How a head is measured, scored and classified (docs/methods.md).

- :mod:`.probes`, :mod:`.probe_settings`: the seeded probe batches and their settings;
- :mod:`.attention_hook`: the attention function registered with transformers'
  ``AttentionInterface`` that hands every layer's pattern to an observer;
- :mod:`.observers`: observers that reduce each pattern to per-head statistics;
- :mod:`.mlp_chunks`: decoder MLPs run over chunks of tokens while measuring;
- :mod:`.measure`: one pass per probe batch, collecting the statistics;
- :mod:`.scores`, :mod:`.classify`: per-head scores and classes from the statistics;
- :mod:`.emergence`: per-revision curves and per-model milestones;
- :mod:`.stage`: the entry points the Snakemake rules call.

Importing this package imports no torch; the engine modules do.
"""
