"""`python -m flowlib.train`: train a multi-scale flow.

The command lives in :mod:`flowlib.training.train`; `--help` lists its options.
"""

import sys

from .training.train import main

if __name__ == "__main__":
    sys.exit(main())
