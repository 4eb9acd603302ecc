"""`python -m flowlib.ood`: train the small background flows of notebook 09's likelihood-ratio score.

The command lives in :mod:`flowlib.apps.ood`; `--help` lists its options.
"""

import sys

from .apps.ood import main

if __name__ == "__main__":
    sys.exit(main())
