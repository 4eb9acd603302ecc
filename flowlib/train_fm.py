"""`python -m flowlib.train_fm`: train a flow-matching U-Net on MNIST or FashionMNIST (notebook 11).

The command lives in :mod:`flowlib.training.train_fm`; `--help` lists its options.
"""

import sys

from .training.train_fm import main

if __name__ == "__main__":
    sys.exit(main())
