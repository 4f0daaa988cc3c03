"""A readable console for a Snakemake run: the project's own lines, errors and a progress line per tenth.

Snakemake prints a block of about ten lines for every job it starts (rule,
input, output, log, reason, resources: a thousand-character line for the
``all`` rule alone) and three more when it finishes; a toy run of 200 jobs
filled 3,000 lines. :class:`ConsoleFilter` keeps, on the console only, what a
person reads: everything Snakemake says that is not a routine job event (its
header, the job counts, warnings, every error with the failed job's log), one
progress line per tenth of the jobs, and the lines the jobs themselves print
(a measured revision's line, training progress). The log file Snakemake writes
(``.snakemake/log/<time>.snakemake.log``) keeps every job's full block, and
``--verbose`` (or ``CIRCUITSWEEP_CONSOLE=full``) keeps them on the console too.

Snakemake's own ``quiet`` setting would not do: it applies to the log file as
well, hides the job counts of a dry run with the progress lines, and hides a
failed job's error with the job blocks.
"""

from __future__ import annotations

import logging
import os
import re

#: Snakemake log events (``snakemake_interface_logger_plugins.common.LogEvent`` values) of routine job steps.
ROUTINE_EVENTS = frozenset({"job_info", "job_started", "job_finished", "shellcmd", "resources_info", "group_info"})
#: Plain Snakemake messages repeated at every scheduling round or job (their beginnings).
ROUTINE_MESSAGES = ("Select jobs to execute...", "Removing temporary output ")
#: Snakemake's warning, while it builds a report, for an output without metadata: for an output not made
#: (a run that failed or has not finished) that says nothing, and a report of such a run would print dozens.
NO_METADATA = re.compile(r"Missing metadata for file (.+?)\. Maybe metadata")
#: The environment variable that keeps Snakemake's full output on the console.
FULL_ENV = "CIRCUITSWEEP_CONSOLE"


class ConsoleFilter(logging.Filter):
    """Drop Snakemake's routine job events from a handler; keep one progress line per ``1 / steps`` of the jobs."""

    def __init__(self, steps: int = 10) -> None:
        super().__init__("circuitsweep-console")
        self.steps = steps
        self.shown = -1

    def filter(self, record: logging.LogRecord) -> bool:
        event = str(getattr(record, "event", None) or "")
        if event in ROUTINE_EVENTS:
            return False
        if event == "progress":
            done, total = int(getattr(record, "done", 0)), int(getattr(record, "total", 0) or 1)
            step = done * self.steps // total
            if step <= self.shown and done < total:
                return False
            self.shown = step
            return True
        if event or not isinstance(record.msg, str):
            return True
        unmade = NO_METADATA.match(record.msg)
        if unmade and not os.path.lexists(unmade.group(1)):
            return False
        return not record.msg.startswith(ROUTINE_MESSAGES)


def quiet_console(logger: logging.Logger | None = None, verbose: bool = False) -> bool:
    """Put a :class:`ConsoleFilter` on Snakemake's console handler (not on its log file); whether it did.

    ``logger``: Snakemake's logger (default ``snakemake.logging``'s); nothing is filtered with ``verbose``
    or ``CIRCUITSWEEP_CONSOLE=full``.
    """
    if verbose or os.environ.get(FULL_ENV) == "full":
        return False
    logger = logger or logging.getLogger("snakemake.logging")
    done = False
    for handler in logger.handlers:
        console = isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
        if console and not any(isinstance(f, ConsoleFilter) for f in handler.filters):
            handler.addFilter(ConsoleFilter())
            done = True
    return done
