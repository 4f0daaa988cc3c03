"""``python -m circuitsweep.cli``: the same command line as ``python -m circuitsweep``."""

import sys

from circuitsweep.cli import main

sys.exit(main())
