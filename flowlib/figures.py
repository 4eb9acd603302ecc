"""`python -m flowlib.figures`: draw sample grids and learning curves from checkpoints.

The command lives in :mod:`flowlib.apps.figures`; `--help` lists its options.
"""

import sys

from .apps.figures import main

if __name__ == "__main__":
    sys.exit(main())
