"""`python -m flowlib.evaluate`: score a checkpoint (test bits/dim, Bayes-classifier accuracy).

The command lives in :mod:`flowlib.training.evaluate`; `--help` lists its options.
"""

import sys

from .training.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
