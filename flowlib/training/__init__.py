"""Training and evaluation: the one training loop, checkpoints, the command lines' shared parts, the training and
evaluation commands, benchmarks and distributed training (notebook 06).
"""

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .evaluate import evaluate_bpd
from .loop import History, NonFiniteLossError, fit
from .summary import config_summary, run_summary
from .train import TrainConfig, fit_or_load, train_model

__all__ = [
    "History", "NonFiniteLossError", "fit", "CheckpointError", "load_checkpoint", "save_checkpoint", "TrainConfig",
    "fit_or_load", "train_model", "evaluate_bpd", "config_summary", "run_summary",
]
