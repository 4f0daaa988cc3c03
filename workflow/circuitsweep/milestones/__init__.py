"""Milestones: per-model aggregates across revisions (emergence, brackets, groups, refinement, findings).

Place in the data flow: after the measuring stages (heads, primitives), before
the figures and report. It reads their tables, never a model; it may import every
stage before it (:mod:`circuitsweep.heads`, :mod:`circuitsweep.plan`, ...), but not
:mod:`circuitsweep.outputs`.

- :mod:`.emergence`: per-revision curves and per-model milestones;
- :mod:`.ablation_tables`: the per-revision ablation table and the causal milestone;
- :mod:`.tables`: the run's heads, emergence and milestone tables (the ``head_tables`` job);
- :mod:`.brackets`, :mod:`.refine`: checkpoint brackets and adaptive refinement;
- :mod:`.bootstrap`: the bootstrap over probe sequences (from the head caches), and
  :mod:`.uncertainty`: each milestone's checkpoint bracket and bootstrap range;
- :mod:`.groups`: seed groups; :mod:`.text`: milestones in words (milestones.md, the end-of-run summary);
- :mod:`.findings`: the study's summaries per model and across models (tables/findings.*, ``cs.findings``).
"""
