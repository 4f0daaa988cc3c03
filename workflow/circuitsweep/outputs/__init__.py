"""Outputs: what a person looks at last, the figures and the run's cost report.

Place in the data flow: last, after milestones. It reads finished tables and may
import every stage before it; nothing in the package imports it but the entry
points (:mod:`circuitsweep.cli`, :mod:`circuitsweep.api`).

- :mod:`.plots`: every figure of the report;
- :mod:`.overhead`: measured seconds per job kind beside the estimate.
"""
