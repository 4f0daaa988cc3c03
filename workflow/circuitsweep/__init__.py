"""circuitsweep: when do attention-head circuits form during pretraining?

The package in layers, from a config to a report (docs/methods.md):

- planning, no torch: :mod:`config` (schema validation, defaults),
  :mod:`revisions` (branch names, manifests, selections), :mod:`plan` (the
  resolved sweep the Snakemake rules read), :mod:`contracts` (every file name,
  tensor name and table column);
- checkpoints, :mod:`circuitsweep.checkpoints`: Hub downloads and verification
  (``hub``), local Hub-layout folders (``local_hub``), one revision's snapshot
  (``snapshots``) and safe loading (``loading``);
- the head engine and its analysis, :mod:`circuitsweep.heads`: how a head is
  measured (attention hook, observers, probes, MLP chunks), scored, classified
  and turned into emergence curves and milestones; ``heads.stage`` holds the
  functions the rules call;
- semantic primitives, :mod:`circuitsweep.primitives`, with its own ``stage``;
- one revision's measurement job, :mod:`revision_stage`: loads the weights
  once and writes the head cache and primitive shard; :mod:`warm_worker` forks
  such jobs from a process with torch imported on local CPU runs;
- the toy suite, :mod:`circuitsweep.toy`: tiny models trained here, published
  as revisions;
- files and outputs: :mod:`stats_io` (safetensors statistics), :mod:`table_io`
  (Parquet, CSV, Markdown), :mod:`plots`, :mod:`overhead`; :mod:`cli` is the
  command line the rules run, :mod:`retry` how a failed job's retry is sized.

For notebooks, ``import circuitsweep as cs`` gives :func:`cs.measure_heads`,
:func:`cs.classify_heads` (classes from selectivities alone), :func:`cs.spectral_ranking` (the
study's Phase 1 ranking from PR trajectories), :func:`cs.study_probes`, :func:`cs.study_thresholds`,
:func:`cs.read_results`, :func:`cs.findings` (the study's summaries per model and across models, as
``tables/findings.*``), :func:`cs.plot_emergence` and :func:`cs.plot_trajectories` (module :mod:`api`),
loaded on first use so that the import stays torch-free.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

#: The notebook API, imported from :mod:`circuitsweep.api` on first access (PEP 562).
__all__ = [
    "classify_heads",
    "findings",
    "measure_heads",
    "plot_emergence",
    "plot_trajectories",
    "read_results",
    "spectral_ranking",
    "study_probes",
    "study_thresholds",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from circuitsweep import api

        return getattr(api, name)
    raise AttributeError(f"module 'circuitsweep' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's names with the notebook API, for tab completion (``dir(cs)``)."""
    return sorted({*globals(), *__all__})
