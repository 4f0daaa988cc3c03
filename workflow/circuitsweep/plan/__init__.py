"""Plan: the resolved sweep (models, revisions, paths, device) and what running it costs.

Place in the data flow: after config, checkpoints and the toy suite (a toy is a
source the plan lists); before the measuring stages, which turn the plan into
their jobs. It may import :mod:`circuitsweep.config`, :mod:`circuitsweep.checkpoints`,
:mod:`circuitsweep.toy`, :mod:`circuitsweep.io` and :mod:`circuitsweep.errors`. Planning imports no torch.

- :mod:`.sweep`: :func:`~.sweep.plan_sweep`, the :class:`~.sweep.Plan` the Snakemake rules read;
- :mod:`.checks`: what the plan refuses before work (toy schedules, probes no job could hold);
- :mod:`.rounds`: the revisions earlier refinement rounds added;
- :mod:`.sizing`, :mod:`.resources`, :mod:`.costs`: memory, runtime and the sweep's cost (one cost model:
  :mod:`.passes` counts what each job runs through its model, :mod:`.costs` turns it into seconds);
- :mod:`.scheduling`: the disk-bound fetch order and cluster job blocks;
- :mod:`.retry`: how a failed job's retry is sized; :mod:`.prefetch`: downloads ahead of offline jobs.
"""
