"""The training tasks, one module each, and their registry :data:`TASKS` (``task=<name>``).

A task (a :class:`~speech2face.training.tasks.base.Task` subclass) is built by the
trainer with the run, ``Task(trainer)``, after the checks its class attributes ask for
(the shards, a ``decoder_checkpoint``, its own settings). Then:

- ``task.model``: the network the run trains and checkpoints (built by the task, with its
  losses and any frozen networks it needs);
- ``prepare(resuming)``: once, before the first step (statistics of the training split);
- ``step(model, batch)``: the batch's loss terms by name, ``total`` the one to minimise;
- ``validate(model, dataset)``: ``val/...`` figures on the val split, ``val/loss/total``
  choosing the best checkpoint;
- ``bundle()``: what each checkpoint holds beside the model, for evaluation and inference;
- ``picture(model, batch)``, optional: the columns of the image grid the run logs.

A new task is one module here and one line in :data:`TASKS`.
"""

from speech2face.training.tasks.attributes import AttributeLoss, AttributeTask
from speech2face.training.tasks.base import Run, Task
from speech2face.training.tasks.decoder import DecoderTask
from speech2face.training.tasks.voice import VoiceTask

TASKS: dict[str, type[Task]] = {
    "decoder": DecoderTask,
    "voice": VoiceTask,
    "attributes": AttributeTask,
}

__all__ = ["TASKS", "AttributeLoss", "AttributeTask", "DecoderTask", "Run", "Task", "VoiceTask"]
