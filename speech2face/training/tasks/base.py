"""The task interface every training task implements (:class:`Task`), what a task may read
of its run (:class:`Run`), and the helpers the tasks share: face crops at a model's size,
loss terms as numbers, validation on the shards' features and the feature tasks' bundle."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speech2face.audio import HOP_LENGTH, N_FFT, POWER_LAW, SAMPLE_RATE, WIN_LENGTH
from speech2face.training.distributed import DistInfo
from speech2face.training.instantiate import build


class Run(Protocol):
    """What a task reads of the run that trains it (the trainer)."""

    cfg: Any  # the whole ``configs/train.yaml`` config
    tcfg: Any  # its ``trainer`` node, built (a TrainerConfig)
    dist: DistInfo
    device: torch.device
    log: Any  # ``log.message(text)``: a line for the run's log (rank 0)
    encoder_name: str  # the face_encoder=<name> choice
    feature_dim: int  # the width of its features
    decoder_entry: dict[str, Any] | None  # decoder_checkpoint's model, when the task reads one

    def autocast(self) -> AbstractContextManager: ...


class Task:
    """One kind of model a run trains; a subclass sets the class attributes and implements
    :meth:`prepare`, :meth:`step`, :meth:`validate` and :meth:`bundle`.

    The trainer builds it (``Task(run)``, which builds :attr:`model`) after the checks the
    class attributes ask for, calls :meth:`prepare` once before the first step, :meth:`step`
    on every training batch, :meth:`validate` on the val split, :meth:`picture` (optional)
    for the image grid, and writes :meth:`bundle` into every checkpoint.
    """

    name: ClassVar[str]  # the ``task=<name>`` it is registered as
    kind: ClassVar[str]  # the checkpoint's model kind (speech2face.models.checkpoint)
    with_image: ClassVar[bool] = False  # the shard fields a training sample carries
    with_landmarks: ClassVar[bool] = False
    require_audio: ClassVar[bool] = False
    reads_shards: ClassVar[bool] = True  # the trainer checks cfg.data's train split first
    decoder_checkpoint: ClassVar[str | None] = None  # "required", "optional" or None
    data_name: ClassVar[str] = "shards"  # what its data is called in messages
    memory_hint: ClassVar[str] = "model.decoder.image_size"  # what to lower when out of memory

    model: nn.Module  # what the run trains and checkpoints

    def __init__(self, trainer: Run) -> None:
        self.trainer = trainer

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        """Cheap checks of the task's own settings, before any data is read."""

    def prepare(self, resuming: bool) -> None:
        """Work before the first step: statistics of the training split, say. A resumed
        run (``resuming``) has restored the model's weights already."""

    def dataset(self, split: str, train: bool, **kwargs: Any):
        """The samples of ``split``: by default a :class:`ShardDataset` built from
        ``cfg.data`` with the task's fields (``kwargs`` override them); one process reads
        all of a split that is not for training."""
        fields = dict(
            split=split,
            train=train,
            with_image=self.with_image,
            with_landmarks=self.with_landmarks,
            require_audio=self.require_audio,
        )
        fields.update(kwargs)
        if not train:
            fields.setdefault("rank", 0)
            fields.setdefault("world_size", 1)
        return build(self.trainer.cfg.data, **fields)

    def loader(self, dataset, batch_size: int, num_workers: int = 0, pin_memory: bool = False):
        """Batches of :meth:`dataset`'s samples."""
        from speech2face.data import build_loader

        return build_loader(dataset, batch_size, num_workers=num_workers, pin_memory=pin_memory)

    def step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, Tensor]:
        """The loss terms of one batch, by name; ``total`` is the one to minimise."""
        raise NotImplementedError

    def validate(self, model: nn.Module, dataset) -> dict[str, float]:
        """Figures on the val split ``dataset`` (``val/...``): ``val/loss/total`` picks the
        best checkpoint."""
        raise NotImplementedError

    def bundle(self) -> dict[str, Any]:
        """What a checkpoint's bundle holds beside the model: what evaluation and inference
        need to use it, and the run's config as YAML (``config``)."""
        raise NotImplementedError

    # picture(model, batch) -> list[Tensor], optional: the image grid's columns, each
    # (B, 3, S, S) in [0, 1], for a fixed batch of val samples with their crops.


def resize_faces(
    images: Tensor,  # (B, 3, 224, 224) floats in [0, 1]
    landmarks: Tensor,  # (B, K, 2) pixels in the 224 crop
    size: int,
) -> tuple[Tensor, Tensor]:
    """Crops and landmarks at the decoder's ``size`` (pixel centres keep their meaning)."""
    if images.shape[-1] == size:
        return images, landmarks
    scale = size / images.shape[-1]
    images = F.interpolate(images, size=(size, size), mode="area")
    return images, (landmarks + 0.5) * scale - 0.5


def float_images(batch: dict[str, Any], device: torch.device) -> Tensor:
    """A batch's crops on ``device``, floats in [0, 1]."""
    return batch["image"].to(device, non_blocking=True).float().div_(255.0)  # (B, 3, 224, 224)


def loss_terms(values: dict[str, Tensor], prefix: str = "loss/") -> dict[str, float]:
    """Loss terms as numbers, their names prefixed (``loss/<term>``)."""
    return {f"{prefix}{name}": float(value.detach()) for name, value in values.items()}


@torch.no_grad()
def validate_features(
    task: Task,
    model: nn.Module,
    dataset,
    measure: Callable[[dict[str, Any]], tuple[dict[str, Tensor], Tensor]],
    held_out: Callable[[Tensor, Tensor, list], dict[str, float]],
) -> dict[str, float]:
    """Each loss term on the val split (``val/loss/<term>``), and the ``held_out`` figures
    of the face features predicted against the true ones (with the faces' gender labels).

    ``measure(batch)`` gives a batch's loss terms and its predicted features (B, D).
    """
    from speech2face.data import build_loader

    tcfg = task.trainer.tcfg
    loader = build_loader(
        dataset, tcfg.batch_size, num_workers=0, drop_last=False, pin_memory=False
    )
    sums: dict[str, float] = {}
    count = 0
    predicted, true, genders = [], [], []
    for index, batch in enumerate(loader):
        if tcfg.val_batches is not None and index >= tcfg.val_batches:
            break
        n = len(batch["key"])
        terms, prediction = measure(batch)
        predicted.append(prediction.float().cpu())
        true.append(batch["feature"].float())
        genders += [(meta.get("labels") or {}).get("gender") for meta in batch["meta"]]
        for name, value in loss_terms(terms, "val/loss/").items():
            sums[name] = sums.get(name, 0.0) + value * n
        count += n
    values = {name: total / max(count, 1) for name, total in sums.items()}
    if predicted:
        values.update(held_out(torch.cat(predicted), torch.cat(true), genders))
    return values


def feature_bundle(trainer: Run) -> dict[str, Any]:
    """The bundle of a model of face features: the face encoder and its width, the audio
    front end, the run's config, and the decoder it was trained against (if any)."""
    from omegaconf import OmegaConf

    bundle: dict[str, Any] = {
        "face_encoder": trainer.encoder_name,
        "feature_dim": trainer.feature_dim,
        "audio": {
            "sample_rate": SAMPLE_RATE,
            "clip_samples": int(trainer.cfg.data.clip_samples),
            "win_length": WIN_LENGTH,
            "hop_length": HOP_LENGTH,
            "n_fft": N_FFT,
            "power_law": POWER_LAW,
        },
        "config": OmegaConf.to_yaml(trainer.cfg),
    }
    if trainer.decoder_entry is not None:
        bundle["decoder"] = trainer.decoder_entry
    return bundle
