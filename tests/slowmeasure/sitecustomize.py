"""Test hook, imported at start-up by every Python whose PYTHONPATH holds this folder.

When CIRCUITSWEEP_TEST_MEASURE is set (JSON {"sleep": seconds, "fail": revision}),
`circuitsweep measure-revision` is replaced by a stand-in that sleeps, then fails for the
named revision (a DataError, as bad data would) or writes placeholder caches. Used by
tests/test_disk_bound.py to make measurement slow (snapshots pile up if the bound is
not real) without loading a model.
"""

import json
import os

_SPEC = os.environ.get("CIRCUITSWEEP_TEST_MEASURE")
if _SPEC:
    import time
    from pathlib import Path

    from circuitsweep.cli import commands as _commands
    from circuitsweep.errors import DataError

    _settings = json.loads(_SPEC)

    def _slow_measure(args):
        time.sleep(float(_settings.get("sleep", 0)))
        if args.settings["revision"] == _settings.get("fail"):
            raise DataError(f"test: measuring {args.settings['revision']} fails")
        for path in (args.stats, args.scores):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(f"placeholder for {args.settings['revision']}\n")

    _commands.cmd_measure_revision = _slow_measure
