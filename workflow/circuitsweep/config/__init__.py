"""Config: what a user writes, read and checked before any work starts.

Place in the data flow: first (config -> checkpoints -> plan -> heads / primitives
-> milestones -> outputs). It may import :mod:`circuitsweep.io` and
:mod:`circuitsweep.errors` only; every later stage imports it.

- :mod:`.load`: the run config, validated against ``workflow/schemas/config.schema.yaml`` and resolved per model;
- :mod:`.probes`, :mod:`.thresholds`: the typed probe, ablation and threshold settings a config resolves to;
- :mod:`.patterns`: checkpoint-name patterns (run_dir ``pattern``, Hub ``branch_pattern``);
- :mod:`.architectures`, :mod:`.model_config`: which transformers classes a config may name, and their
  ``config.json`` fields under standard names;
- :mod:`.stimuli`: the semantic-primitive stimuli file;
- :mod:`.overrides`: ``--config KEY=VALUE`` items, read and merged as Snakemake's ``--config``;
- :mod:`.strict_schema`, :mod:`.schema_errors`, :mod:`.yaml_load`: one-line errors for bad YAML and schema misses.
"""
