"""``python -m circuitsweep``: the command line, as the workflow's rules call it."""

import sys

from circuitsweep.cli import main

sys.exit(main())
