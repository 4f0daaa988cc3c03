"""The ``circuitsweep`` command line: one subcommand per workflow stage.

Snakemake rules call these subcommands; each takes its scientific settings
as one JSON argument (the rule's ``params``), so a change of settings reruns
exactly the jobs it affects. ``@PATH`` in place of the JSON reads it from that
file: the rules pass long settings (every revision's expected cache settings)
that way, so a failed job's command line stays short. Heavy libraries are imported inside the
subcommands, so a command that loads no model starts fast.

- :mod:`.arguments`: what each argument is (input file, count, name...), checked before a command runs;
- :mod:`.json_arguments`: the rules' JSON settings (``@PATH`` files) and the config schema's checks of them;
- :mod:`.parser`: every subcommand and its arguments;
- :mod:`.commands`: what each subcommand does (thin: it calls the package);
- :mod:`.plan_summary`: what ``check-config`` prints about a planned sweep;
- :mod:`.entry`: :func:`main`, which turns every failure into one line and an exit code.
"""

from circuitsweep.cli.entry import main

__all__ = ["main"]
