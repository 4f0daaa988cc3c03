"""circuitsweep: when do attention-head circuits form during pretraining?

The package's folders are the pipeline's stages, in data-flow order (docs/development.md
has the map; each folder's docstring says what it may import):

- :mod:`circuitsweep.config`: the run config and the stimuli file, read and checked;
- :mod:`circuitsweep.checkpoints`: which revisions a source publishes; one revision fetched,
  verified and loaded safely;
- :mod:`circuitsweep.toy`: the toy suite, tiny models trained here and published as revisions;
- :mod:`circuitsweep.plan`: the resolved sweep, its costs, job sizes and schedule (no torch);
- :mod:`circuitsweep.heads`: how a head is measured, scored, classified and ablated;
- :mod:`circuitsweep.primitives`: the semantic primitive gaps;
- :mod:`circuitsweep.milestones`: curves, milestones, brackets and groups across revisions;
- :mod:`circuitsweep.outputs`: figures and the cost report;
- :mod:`circuitsweep.io`: beneath them all, file contracts, atomic writes, tables and cache checks.

At the top: :mod:`cli` (the command line the rules run), :mod:`revision_stage` (one
revision's measurement job: one weight load for heads and primitives), :mod:`warm_worker`
(such jobs forked from a process with torch imported, on local CPU runs), :mod:`api`
(the notebook API) and :mod:`errors`.

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
    """The notebook API and the module's dunder names (``__version__``...), for tab completion (``dir(cs)``)."""
    return sorted({*(name for name in globals() if name.startswith("__")), *__all__})
