"""``snakemake --report`` of a run that failed or has not finished: the report bundles the outputs that exist.

Snakemake refuses to build a report when an output flagged ``report(...)`` is missing, which every run
that stopped early leaves. While Snakemake builds a report, the workflow therefore flags only outputs that
exist (``report_output`` in workflow/rules/common.smk), and the report opens with the run folder's
unfinished note (:func:`circuitsweep.io.run_folder.unfinished_note`), passed to its template in the config
under :data:`UNFINISHED_NOTE_KEY`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

#: The config key under which a report's template finds the run folder's unfinished note (set only while
#: Snakemake builds a report, after the config was validated and planned).
UNFINISHED_NOTE_KEY = "_report_unfinished_note"


def building_report(argv: Sequence[str]) -> bool:
    """Whether Snakemake's command line ``argv`` (without the program) builds a report now.

    Snakemake reads the Snakefile before it acts and tells the workflow nothing of a report, so its
    command line is what says so: ``--report`` builds one from the outputs as they are, while
    ``--report-after-run`` makes the outputs first (they keep their flags).
    """
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--report", nargs="?", const="report.html")
    parser.add_argument("--report-after-run", action="store_true")
    known, _unknown = parser.parse_known_args(list(argv))
    return known.report is not None and not known.report_after_run


def outputs_exist(pattern: str | os.PathLike[str], models: Iterable[str]) -> bool:
    """Whether every file an output ``pattern`` names exists, its ``{model}`` taken over ``models``.

    A rule's report flag holds for all its jobs, so a per-model figure missing for one model unflags
    that figure for every model.
    """
    pattern = str(pattern)
    names = [pattern.replace("{model}", model) for model in models] if "{model}" in pattern else [pattern]
    return all(Path(name).is_file() for name in names)
