"""Training: the face decoder first, then the voice encoder against it; and the attribute
classifier evaluation can label faces with (``s2f-train task=attributes``).

- :mod:`~speech2face.training.trainer`: the :class:`Trainer` (the loop: steps,
  accumulation, precision, checkpoints, resuming, validation schedule, logging) and
  :func:`train`;
- :mod:`~speech2face.training.tasks`: what is trained, one module per task
  (``decoder``, ``voice``, ``attributes``), the task interface and the registry
  :data:`TASKS`. Adding a task is one new module in ``tasks/`` and one registration line
  in :data:`TASKS`;
- :mod:`~speech2face.training.checkpoint`: training checkpoints (resumable) and the
  self-contained bundle that evaluation and inference load (:func:`load_bundle`);
- :mod:`~speech2face.training.schedule`: the settings a checkpoint records and a resume
  compares, and the learning rate of a run resumed with new ones;
- :mod:`~speech2face.training.instantiate`: building a run's parts from its Hydra config;
- :mod:`~speech2face.training.distributed`: DDP from ``torchrun``'s environment;
- :mod:`~speech2face.training.logging`: TensorBoard scalars and image grids, progress bar.
"""

from speech2face.training.checkpoint import (
    Bundle,
    TrainingCheckpointError,
    load_bundle,
    read_training_checkpoint,
)
from speech2face.training.tasks import TASKS
from speech2face.training.trainer import Trainer, TrainerConfig, train

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
