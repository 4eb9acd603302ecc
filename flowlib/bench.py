"""`python -m flowlib.bench`: measure training throughput and learning curves.

The command lives in :mod:`flowlib.training.bench`; `--help` lists its options.
"""

import sys

from .training.bench import main

if __name__ == "__main__":
    sys.exit(main())
