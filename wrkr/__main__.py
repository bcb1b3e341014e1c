"""`python -m wrkr`: the `wrkr` command, for when the console script is not on PATH."""

import sys

from wrkr.cli import main

sys.exit(main())
