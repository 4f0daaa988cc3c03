"""The study's findings per model and across models (docs/methods.md, "Findings"), from a run's tables alone.

Per model, at the final revision of its spectral ranking:

- precision at K: of the top K heads by participation-ratio integral, the share
  with a class (any class: best selectivity >= the class threshold), at
  ``PRECISION_K`` and all heads (K capped at the head count); non-BOS precision as
  the study's tier-1 script: drop the heads of class first from the ranking, then
  the share classified among the top K of the rest;
- K selection: the elbow (:func:`heads.spectral.elbow_k`) beside the 17-19%
  heuristic and the run's own K (``ablation.spectral_top_k``);
- the class breakdown of each top K and of all heads;
- the induction-selectivity distribution (heads at ``SELECTIVITY_LEVELS``) and,
  per K, which screen heads the top K holds and which it misses;
- the five ablation claims, measured from the final-revision ablation table
  (:func:`.claims.ablation_claims`); a claim the run cannot test says why.

Across models (more than one model): whole-model BOS fraction on the synthetic and
natural-text probes, BOS heads per layer and the first layer holding one, the layers
without a BOS head at any revision (the study's layer-0/1 floor), the screen's size,
the induction onset, BOS t50 and their ratio.

Pure functions of Polars frames (no torch, no model): ``tables/findings.{csv,md,html}``
and ``cs.findings`` compute the same :class:`Findings`.

- :mod:`.rows`: what a finding is (:class:`Findings`, one row of findings.csv) and the phrases sections share;
- :mod:`.ranking`: precision at K, K selection, classes, selectivity levels and screen heads per K;
- :mod:`.claims`: the five ablation claims; :mod:`.across`: the cross-model rows;
- :mod:`.assemble`: :func:`findings`, every section and paragraph of a run; :mod:`.files`: its csv, md and html.
"""

from circuitsweep.milestones.findings.across import across_models
from circuitsweep.milestones.findings.assemble import findings
from circuitsweep.milestones.findings.files import findings_html, findings_markdown, read_findings, write_findings
from circuitsweep.milestones.findings.rows import Findings

__all__ = [
    "Findings",
    "across_models",
    "findings",
    "findings_html",
    "findings_markdown",
    "read_findings",
    "write_findings",
]
