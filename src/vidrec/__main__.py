"""``python -m vidrec``: the command line, as ``vidrec``."""

import sys

from vidrec.cli import main

sys.exit(main())
