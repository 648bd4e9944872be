"""Training: the face decoder first, then the voice encoder against it; and the attribute
classifier evaluation can label faces with (``s2f-train task=attributes``).

- :mod:`~speech2face.training.loop`: the :class:`Trainer` and its tasks;
- :mod:`~speech2face.training.checkpoint`: training checkpoints (resumable) and the
  self-contained bundle that evaluation and inference load (:func:`load_bundle`);
- :mod:`~speech2face.training.distributed`: DDP from ``torchrun``'s environment;
- :mod:`~speech2face.training.logging`: TensorBoard scalars and image grids, progress bar.
"""

from speech2face.training.checkpoint import (
    Bundle,
    TrainingCheckpointError,
    load_bundle,
    read_training_checkpoint,
)
from speech2face.training.loop import TASKS, Trainer, TrainerConfig, train

__all__ = [
    "TASKS",
    "Bundle",
    "Trainer",
    "TrainerConfig",
    "TrainingCheckpointError",
    "load_bundle",
    "read_training_checkpoint",
    "train",
]
