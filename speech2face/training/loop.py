"""The trainer and its tasks: the face decoder, then the voice encoder against it; and the
attribute classifier that evaluation can label faces with.

- ``task=decoder`` trains the :class:`~speech2face.models.FaceDecoder` on the shards' face
  crops, 68 landmarks and features. Its mean landmark geometry is computed from the training
  split first and stored in the model. The identity term of its loss needs a differentiable
  face encoder (vggface, facenet) and is off with dlib.
- ``task=voice`` trains the :class:`~speech2face.models.VoiceEncoder` with the Speech2Face
  loss (Eq. 1) against a frozen trained decoder (``decoder_checkpoint``) and the face
  encoder's classification head (distillation off when it has none, as with dlib).
  Spectrograms are computed on the device inside the step.
- ``task=attributes`` trains the :class:`~speech2face.models.AttributeClassifier` (gender,
  age bins, ethnicity) on labelled faces: a face set (``faces=fairface`` or
  ``faces=utkface``) or, without one, the shards' crops and labels (``data.root``). A head
  is trained only on the faces labelled for it; validation reports each attribute's
  accuracy on the held-out split beside the majority class of the training labels.

Every problem with the configuration is found before any long work and reported in one
line. See :mod:`speech2face.training.checkpoint` for what a checkpoint holds and how a run
resumes exactly (same weights as an uninterrupted run, on a CPU with a fixed seed).
"""

from __future__ import annotations

import contextlib
import itertools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speech2face.audio import HOP_LENGTH, N_FFT, POWER_LAW, SAMPLE_RATE, WIN_LENGTH, spectrogram
from speech2face.config import require_file_name
from speech2face.errors import ConfigError, S2FError
from speech2face.training import distributed
from speech2face.training.checkpoint import (
    FORMAT,
    VERSION,
    build_model,
    model_entry,
    read_training_checkpoint,
    resume_path,
    rng_state,
    save_training_checkpoint,
    set_rng_state,
    unwrap,
)
from speech2face.training.instantiate import (
    build,
    call_with_accepted,
    choice,
    face_encoder_name,
    missing,
)
from speech2face.training.logging import Meter, RunLogger

TASKS = ("decoder", "voice", "attributes")
PRECISIONS = ("auto", "bf16", "fp32")
RECALL_KS = (1, 5, 10)
CONFIG_COPY = "config.yaml"
SHARD_CROP_SIZE = 224  # the shards' aligned crops and landmark coordinates


@dataclass
class TrainerConfig:
    """How a run trains (not what): steps, batches, intervals, precision, loader."""

    max_steps: int = 100_000
    batch_size: int = 8
    val_every: int = 2_000
    val_batches: int | None = 50  # batches per validation; None: the whole val split
    ckpt_every: int = 2_000
    keep_last: int = 3
    log_every: int = 50
    image_every: int = 2_000
    num_images: int = 4
    grad_clip: float | None = None
    grad_accum: int = 1
    precision: str = "auto"  # auto: bf16 on a GPU, fp32 on a CPU
    channels_last: bool = True  # on a GPU
    compile: bool = False
    num_workers: int = 4
    pin_memory: bool = True
    device: str = "auto"
    seed: int = 0
    progress: bool = True
    mean_geometry_samples: int = 10_000  # training landmarks averaged into the mean geometry

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "val_every", "ckpt_every", "keep_last"):
            _positive_int(getattr(self, name), f"trainer.{name}")
        for name in ("log_every", "image_every", "grad_accum", "mean_geometry_samples"):
            _positive_int(getattr(self, name), f"trainer.{name}")
        for name in ("num_images", "num_workers", "seed"):
            _positive_int(getattr(self, name), f"trainer.{name}", minimum=0)
        if self.val_batches is not None:
            _positive_int(self.val_batches, "trainer.val_batches")
        if self.grad_clip is not None and (
            isinstance(self.grad_clip, bool) or not float(self.grad_clip) > 0
        ):
            raise ConfigError(f"trainer.grad_clip must be > 0 or null, got {self.grad_clip!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"trainer.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        for name in ("channels_last", "compile", "pin_memory", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"trainer.{name} must be true or false")


def _positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


# --------------------------------------------------------------------------- helpers


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


def _float_images(batch: dict[str, Any], device: torch.device) -> Tensor:
    return batch["image"].to(device, non_blocking=True).float().div_(255.0)  # (B, 3, 224, 224)


def _terms(values: dict[str, Tensor], prefix: str = "loss/") -> dict[str, float]:
    return {f"{prefix}{name}": float(value.detach()) for name, value in values.items()}


# --------------------------------------------------------------------------- tasks


class DecoderTask:
    """Train the face decoder on crops, landmarks and features."""

    name = "decoder"
    kind = "face_decoder"
    with_image = True
    with_landmarks = True
    require_audio = False

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        cfg = trainer.cfg
        from hydra.utils import get_class

        self.model: nn.Module = build(cfg.model.decoder)
        if self.model.config.feature_dim != trainer.feature_dim:
            raise ConfigError(
                f"model.decoder.feature_dim={self.model.config.feature_dim} but "
                f"face_encoder={trainer.encoder_name} gives {trainer.feature_dim}-D features"
            )
        encoder_cls = get_class(str(cfg.face_encoder._target_))
        self.encoder = None
        if getattr(encoder_cls, "differentiable", True):
            self.encoder = build(cfg.face_encoder).freeze()
            self.encoder.requires_grad_(False)
            self.encoder.to(trainer.device)
        else:
            trainer.log.message(
                f"identity term off: face_encoder={trainer.encoder_name} is not differentiable"
            )
        self.loss = build(cfg.loss.decoder)(face_encoder=self.encoder)
        self._judge: nn.Module | None = self.encoder

    def judge(self) -> nn.Module:
        """The face encoder that re-encodes portraits in validation (built on first use)."""
        if self._judge is None:
            self._judge = build(self.trainer.cfg.face_encoder)
            if hasattr(self._judge, "freeze"):
                self._judge.freeze()
            self._judge.to(self.trainer.device)
        return self._judge

    def prepare(self, resuming: bool) -> None:
        """Compute the mean geometry of the training split (a resumed run has it already)."""
        if resuming:
            return
        from speech2face.models import mean_geometry

        trainer = self.trainer
        limit = trainer.tcfg.mean_geometry_samples
        dataset = trainer.dataset("train", train=False, with_image=False, with_landmarks=True)
        points = []
        for sample in dataset:
            points.append(sample["landmarks"])
            if len(points) >= limit:
                break
        if not points:
            raise S2FError(f"no training sample in {trainer.cfg.data.root} to average landmarks")
        mean = torch.from_numpy(mean_geometry(torch.stack(points)))
        size = self.model.config.image_size
        mean = (mean + 0.5) * (size / SHARD_CROP_SIZE) - 0.5
        self.model.set_mean_geometry(mean)
        trainer.log.message(f"mean geometry from {len(points)} training faces")

    def step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, Tensor]:
        device = self.trainer.device
        size = unwrap(model).config.image_size
        images, landmarks = resize_faces(
            _float_images(batch, device), batch["landmarks"].to(device).float(), size
        )
        features = batch["feature"].to(device, non_blocking=True)  # (B, D)
        with torch.no_grad():
            target = unwrap(model).to_mean_geometry(images, landmarks)  # (B, 3, S, S)
        with self.trainer.autocast():
            output = model(features, warp=self.loss.needs_image)
        if output.image is not None:
            output.image = output.image.float()
        output.texture, output.landmarks = output.texture.float(), output.landmarks.float()
        return self.loss(output, features, target, landmarks)

    @torch.no_grad()
    def picture(self, model: nn.Module, batch: dict[str, Any]) -> list[Tensor]:
        """Columns: the true face, the decoder on its true feature."""
        device = self.trainer.device
        size = model.config.image_size
        images = F.interpolate(_float_images(batch, device), size=(size, size), mode="area")
        return [images, model.render(batch["feature"].to(device))]

    @torch.no_grad()
    def reencode(self, model: nn.Module, batch: dict[str, Any]) -> Tensor:  # -> (B, D)
        """The face encoder's feature of the portrait drawn from each true feature."""
        portraits = unwrap(model).render(batch["feature"].to(self.trainer.device))
        return self.judge()(portraits)


class VoiceTask:
    """Train the voice encoder with the Speech2Face loss against a frozen decoder."""

    name = "voice"
    kind = "voice_encoder"
    with_image = False
    with_landmarks = False
    require_audio = True

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        cfg = trainer.cfg

        self.decoder = build_model(trainer.decoder_entry).to(trainer.device).eval()
        self.decoder.requires_grad_(False)
        self.model: nn.Module = build(cfg.model.voice)
        if self.model.config.out_dim != trainer.feature_dim:
            raise ConfigError(
                f"model.voice.out_dim={self.model.config.out_dim} but "
                f"face_encoder={trainer.encoder_name} gives {trainer.feature_dim}-D features"
            )
        encoder = build(cfg.face_encoder)
        self.encoder = encoder if getattr(encoder, "has_logits", False) else None
        if self.encoder is None:
            trainer.log.message(
                f"distillation off: face_encoder={trainer.encoder_name} has no classification head"
            )
        else:
            self.encoder.freeze().to(trainer.device)
        augment = cfg.get("augment")
        self.augment = build(augment) if augment is not None else None
        if self.augment is not None:
            trainer.log.message("augment: every training voice passes a random recording channel")
        self.generator = torch.Generator().manual_seed(int(trainer.tcfg.seed) + trainer.dist.rank)
        self.loss = call_with_accepted(
            build(cfg.loss.voice),
            "loss.voice",
            f_dec=self.decoder.fc_in,
            f_vgg=self.encoder.logits if self.encoder is not None else None,
            feature_dim=trainer.feature_dim,
        ).to(trainer.device)

    def prepare(self, resuming: bool) -> None:
        """The mean training feature: the "mean face" every voice would get from a model that
        learnt nothing from the voice (validation's baseline, the centre of a centred loss).
        A new voice encoder starts from it: its output bias is set to it."""
        trainer = self.trainer
        limit = trainer.tcfg.mean_geometry_samples
        total, squares, count = None, 0.0, 0
        for sample in trainer.dataset("train", train=False):
            feature = sample["feature"].double()
            total = feature if total is None else total + feature
            squares += float(feature.pow(2).sum())
            count += 1
            if count >= limit:
                break
        self.mean_feature = None
        if total is None:
            return
        mean = total / count
        self.mean_feature = mean.float()  # (D,)
        if hasattr(self.loss, "set_mean"):
            # RMS distance from the mean: E|f|^2 - |E f|^2, in float64
            spread = max(squares / count - float(mean.pow(2).sum()), 0.0) ** 0.5
            self.loss.set_mean(self.mean_feature.to(trainer.device), spread)
        head = getattr(self.model, "fc2", None)
        if not resuming and isinstance(head, nn.Linear) and head.bias is not None:
            with torch.no_grad():  # start from the mean face
                head.bias.copy_(self.mean_feature)

    def spectrogram(self, batch: dict[str, Any]) -> Tensor:  # -> (B, 2, T, 257)
        spec = spectrogram(batch["wav"].to(self.trainer.device, non_blocking=True))
        if self.trainer.device.type == "cuda" and self.trainer.tcfg.channels_last:
            spec = spec.contiguous(memory_format=torch.channels_last)
        return spec

    def predict(self, model: nn.Module, batch: dict[str, Any]) -> Tensor:  # -> (B, D)
        """The voice encoder's output (what the loss reads)."""
        with self.trainer.autocast():
            return model(self.spectrogram(batch)).float()

    def feature(self, prediction: Tensor) -> Tensor:  # (B, D) -> (B, D)
        """The face feature a prediction stands for (a loss that trains only directions
        from the mean face places it at the faces' typical distance)."""
        project = getattr(self.loss, "project", None)
        return project(prediction) if project is not None else prediction

    def step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, Tensor]:
        features = batch["feature"].to(self.trainer.device, non_blocking=True)
        if self.augment is not None:  # training steps only: validation hears the voices as is
            wav = batch["wav"].to(self.trainer.device, non_blocking=True)
            batch = {**batch, "wav": self.augment(wav, self.generator)}
        return self.loss(features, self.predict(model, batch))

    @torch.no_grad()
    def picture(self, model: nn.Module, batch: dict[str, Any]) -> list[Tensor]:
        """Columns: true face, decoder on the true feature, decoder on the voice's prediction."""
        device = self.trainer.device
        size = self.decoder.config.image_size
        images = F.interpolate(_float_images(batch, device), size=(size, size), mode="area")
        true = self.decoder.render(batch["feature"].to(device))
        predicted = self.feature(self.predict(model, batch))
        return [images, true, self.decoder.render(predicted)]


class AttributeLoss:
    """Weighted cross-entropy of the attribute heads (``loss/<name>``, ``loss/total``).

    Each term is the mean over the faces labelled for that attribute (0 when the batch has
    none); ``total`` sums them with their weights. Age bins (9 classes, often ambiguous) start
    near a cross-entropy of 2.2 against gender's 0.69: weighted less, they do not crowd the
    other heads out of a small shared network.
    """

    def __init__(self, gender: float = 1.0, age: float = 0.3, ethnicity: float = 0.3) -> None:
        self.weights = {"gender": gender, "age": age, "ethnicity": ethnicity}
        for name, weight in self.weights.items():
            if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
                raise ConfigError(f"loss.attributes.{name} must be a weight >= 0, got {weight!r}")

    def __call__(
        self,
        logits: dict[str, Tensor],  # name -> (B, classes)
        targets: dict[str, Tensor],  # name -> (B,) class indices, -1: no label
        heads: tuple[str, ...],
    ) -> dict[str, Tensor]:
        terms: dict[str, Tensor] = {}
        total = None
        for name in heads:
            target = targets[name].to(logits[name].device)
            mask = target >= 0
            if bool(mask.any()):
                terms[name] = F.cross_entropy(logits[name][mask].float(), target[mask])
            else:
                terms[name] = logits[name].float().sum() * 0.0
            weighted = terms[name] * float(self.weights[name])
            total = weighted if total is None else total + weighted
        terms["total"] = total
        return terms


class AttributeTask:
    """Train the attribute classifier on labelled faces (a face set, else the shards)."""

    name = "attributes"
    kind = "attribute_classifier"
    with_image = True
    with_landmarks = False
    require_audio = False

    def __init__(self, trainer: Trainer) -> None:
        from omegaconf import OmegaConf

        self.trainer = trainer
        cfg = trainer.cfg
        self.model: nn.Module = build(cfg.model.attributes)
        self.loss = build(cfg.loss.attributes)
        self.faces = cfg.get("faces")
        if self.faces is not None and self.faces.get("_target_") is None:
            self.faces = None
        data_given = "data" in cfg and not OmegaConf.is_missing(cfg.data, "root")
        if self.faces is not None and data_given:
            raise ConfigError(
                "task=attributes reads either a face set (faces=...) or shards (data.root), "
                "not both: drop one"
            )
        if self.faces is None:
            if not data_given:
                raise ConfigError(
                    "task=attributes needs labelled faces: faces=fairface faces.csv=..., "
                    "faces=utkface faces.root=..., or shards with labels: data.root=..."
                )
            root = require_file_name(cfg.data.root, "data.root", "an s2f-preprocess output")
            self.source = f"shards {root}"
        else:
            self.source = f"faces={choice('faces') or self.faces._target_}"
        self.counts: dict[str, dict[str, int]] = {}
        self.majority: dict[str, int] = {}
        self.portraits: dict[str, Tensor] = {}  # key -> (3, S, S) uint8 (decoder_checkpoint)
        self.portrait_share = float(cfg.get("portrait_share", 0.5))
        if not 0.0 <= self.portrait_share <= 1.0:
            raise ConfigError(f"portrait_share must lie in [0, 1], got {self.portrait_share}")
        self._check_data()

    # ------------------------------------------------------------ data

    def dataset(self, split: str, train: bool, **kwargs: Any):
        """The labelled faces of ``split`` at the classifier's input size."""
        from speech2face.data.labelled_faces import ShardFaces

        size = self.model.config.image_size
        ranks = {} if train else {"rank": 0, "world_size": 1}
        seed = self.trainer.tcfg.seed
        if self.faces is not None:
            return build(self.faces, split=split, train=train, image_size=size, seed=seed, **ranks)
        fields = dict(split=split, train=train, with_image=True, require_audio=False, **ranks)
        fields.update({k: v for k, v in kwargs.items() if k != "with_landmarks"})
        return ShardFaces(build(self.trainer.cfg.data, **fields), image_size=size)

    def loader(self, dataset, batch_size: int, num_workers: int = 0, pin_memory: bool = False):
        from speech2face.data.labelled_faces import build_face_loader

        return build_face_loader(dataset, batch_size, num_workers, pin_memory)

    def _check_data(self) -> None:
        """The training split exists, holds a batch per process, and its first face reads."""
        trainer = self.trainer
        probe = self.dataset("train", train=False)
        if probe.num_samples == 0:
            raise S2FError(f"the train split of {self.source} is empty")
        sample = next(iter(probe), None)
        if sample is None:
            raise S2FError(f"the train split of {self.source} holds no face")
        needed = trainer.tcfg.batch_size * trainer.dist.world_size
        if probe.num_samples is not None and probe.num_samples < needed:
            raise ConfigError(
                f"the train split of {self.source} holds {probe.num_samples} faces, fewer than "
                f"one batch of {trainer.tcfg.batch_size} per process ({trainer.dist.world_size})"
            )

    def prepare(self, resuming: bool) -> None:
        """Count the training labels (up to ``trainer.mean_geometry_samples`` faces of shards;
        a face set's all): the heads to train, and each attribute's majority class."""
        from speech2face.models.attribute_classifier import ATTRIBUTE_CLASSES, label_targets

        trainer = self.trainer
        dataset = self.dataset("train", train=False)
        if hasattr(dataset, "labels"):  # a face set: labels without reading images
            labels = list(dataset.labels())
        else:
            from speech2face.data.labelled_faces import shard_labels

            shards = build(
                trainer.cfg.data, split="train", train=False, require_audio=False,
                rank=0, world_size=1,
            )  # fmt: skip
            labels = []
            for sample in shards:
                labels.append(shard_labels(sample["meta"]))
                if len(labels) >= trainer.tcfg.mean_geometry_samples:
                    break
        try:
            targets = label_targets(labels)
        except S2FError as error:
            raise S2FError(f"{self.source}: {error}") from None
        self.counts, self.majority = {}, {}
        for name, classes in ATTRIBUTE_CLASSES.items():
            known = targets[name][targets[name] >= 0]
            if known.numel() == 0:
                continue
            tally = torch.bincount(known, minlength=len(classes))
            self.counts[name] = {c: int(n) for c, n in zip(classes, tally.tolist(), strict=True)}
            self.majority[name] = int(tally.argmax())
        if not self.counts:
            raise S2FError(
                f"no labelled faces in the train split of {self.source}: gender, age or "
                "ethnicity labels are needed (s2f-preprocess source.labels=... for shards)"
            )
        unwrap(self.model).set_trained(tuple(self.counts))
        untrained = [name for name in ATTRIBUTE_CLASSES if name not in self.counts]
        note = f"; no labels for {', '.join(untrained)}" if untrained else ""
        trainer.log.message(
            f"training heads {', '.join(self.counts)} on {len(labels)} faces ({self.source}){note}"
        )
        if trainer.decoder_entry is not None:
            self._render_portraits()

    @torch.no_grad()
    def _render_portraits(self) -> None:
        """The decoder's portrait of each training face's feature, at the classifier's input
        size, by sample key: ``portrait_share`` of the training faces are shown as these, so
        the classifier also reads portraits (what evaluation gives it)."""
        from speech2face.data import collate

        trainer = self.trainer
        if self.faces is not None:
            raise ConfigError(
                "task=attributes with decoder_checkpoint draws portraits from the shards' face "
                "features: use data.root=... instead of faces=..."
            )
        assert trainer.decoder_entry is not None
        decoder = build_model(trainer.decoder_entry).to(trainer.device).eval()
        size = self.model.config.image_size
        shards = build(
            trainer.cfg.data, split="train", train=False, require_audio=False, rank=0, world_size=1
        )
        batch: list[dict[str, Any]] = []
        for sample in itertools.chain(shards, [None]):
            if sample is not None:
                batch.append(sample)
            if batch and (sample is None or len(batch) == trainer.tcfg.batch_size):
                features = collate(batch)["feature"].to(trainer.device)
                images = F.interpolate(decoder.render(features), size=(size, size), mode="area")
                pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8).cpu()
                self.portraits.update(zip((s["key"] for s in batch), pixels, strict=True))
                batch = []
        trainer.log.message(
            f"{len(self.portraits)} portraits of the training faces from decoder_checkpoint; "
            f"{self.portrait_share:.0%} of the faces shown as portraits"
        )

    # ------------------------------------------------------------ steps

    def _images(self, model: nn.Module, batch: dict[str, Any], augment: bool) -> Tensor:
        pixels = batch["image"]  # (B, 3, S, S) uint8
        if augment and self.portraits:  # some faces as the decoder draws them
            shown = (torch.rand(pixels.shape[0]) < self.portrait_share).tolist()
            pixels = pixels.clone()
            for i, key in enumerate(batch["key"]):
                if shown[i] and key in self.portraits:
                    pixels[i] = self.portraits[key]
        images = unwrap(model).prepare(pixels.to(self.trainer.device, non_blocking=True))
        if augment:  # mirror half the faces (the global RNG: a resumed run draws the same)
            flip = torch.rand(images.shape[0]) < 0.5
            images[flip.to(images.device)] = images[flip.to(images.device)].flip(-1)
        return images  # (B, 3, S, S) in [0, 1]

    def _losses(self, logits: dict[str, Tensor], targets: dict[str, Tensor]):
        return self.loss(logits, targets, tuple(self.counts))

    def _targets(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        from speech2face.models.attribute_classifier import label_targets

        try:
            return label_targets(batch["labels"])
        except S2FError as error:
            raise S2FError(f"{self.source}: {error}") from None

    def step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, Tensor]:
        images = self._images(model, batch, augment=True)
        with self.trainer.autocast():
            logits = model(images)
        return self._losses(logits, self._targets(batch))

    @torch.no_grad()
    def validate(self, model: nn.Module, dataset) -> dict[str, float]:
        """On the val split: each loss term (``val/loss/<name>``), each trained attribute's
        accuracy (``val/<name>_accuracy``) beside the majority training class predicted for
        every face (``val/<name>_majority``), and the age error in years of the predicted
        bins' middles (``val/age_mae``)."""
        from speech2face.models.attribute_classifier import bin_middle

        loader = self.loader(dataset, self.trainer.tcfg.batch_size)
        limit = self.trainer.tcfg.val_batches
        sums: dict[str, float] = {}
        hits: dict[str, list[int]] = {name: [0, 0, 0] for name in self.counts}  # right, base, n
        age_error, count = 0.0, 0
        for index, batch in enumerate(loader):
            if limit is not None and index >= limit:
                break
            targets = self._targets(batch)
            logits = model(self._images(model, batch, augment=False))
            n = len(batch["key"])
            for name, value in _terms(self._losses(logits, targets), "val/loss/").items():
                sums[name] = sums.get(name, 0.0) + value * n
            count += n
            for name in self.counts:
                target = targets[name].to(logits[name].device)
                mask = target >= 0
                predicted = logits[name].argmax(dim=1)
                hits[name][0] += int((predicted == target)[mask].sum())
                hits[name][1] += int((target[mask] == self.majority[name]).sum())
                hits[name][2] += int(mask.sum())
                if name == "age" and bool(mask.any()):
                    ages = torch.tensor([float(row.get("age", 0.0)) for row in batch["labels"]])
                    middles = torch.tensor([bin_middle(int(i)) for i in predicted.tolist()])
                    age_error += float((middles - ages)[mask.cpu()].abs().sum())
        values = {name: total / max(count, 1) for name, total in sums.items()}
        for name, (right, base, total) in hits.items():
            if total:
                values[f"val/{name}_accuracy"] = right / total
                values[f"val/{name}_majority"] = base / total
                if name == "age":
                    values["val/age_mae"] = age_error / total
        return values

    def bundle(self) -> dict[str, Any]:
        """What the checkpoint says about the training data: the trained attributes, the
        training label counts per class, the majority classes and the input size."""
        from speech2face.models.attribute_classifier import ATTRIBUTE_CLASSES

        return {
            "attributes": list(self.counts),
            "label_counts": self.counts,
            "majority": {k: ATTRIBUTE_CLASSES[k][v] for k, v in self.majority.items()},
            "image_size": int(self.model.config.image_size),
            "source": self.source,
            "portrait_share": self.portrait_share if self.portraits else 0.0,
        }


# --------------------------------------------------------------------------- trainer


class Trainer:
    """One training run of ``cfg.task`` on this process (one rank of a DDP job).

    Everything that can be checked cheaply is checked in the constructor (shards, feature
    widths, the decoder checkpoint, the resume checkpoint), before any model trains.
    """

    def __init__(self, cfg: Any, dist: distributed.DistInfo | None = None) -> None:

        self.cfg = cfg
        self.task_name = str(cfg.task)
        if self.task_name not in TASKS:
            raise ConfigError(f"task must be one of {', '.join(TASKS)}, got {cfg.task!r}")
        self.output_dir = Path(require_file_name(cfg.output_dir, "output_dir", "a directory"))
        self.tcfg: TrainerConfig = build(cfg.trainer)
        self.dist = dist or distributed.setup(self.tcfg.device)
        self.device = self.dist.device
        self._messages: list[str] = []
        self.log: Any = _Deferred(self._messages, self.dist.is_main)  # a RunLogger in fit()
        self.encoder_name = face_encoder_name(cfg)
        self.feature_dim = int(cfg.face_encoder.dim)
        if self.task_name == "voice":
            self._check_clip_samples()
        if self.task_name != "attributes":  # the attribute task checks its own data
            self._check_shards()
        self.decoder_entry: dict[str, Any] | None = None
        if self.task_name == "voice" or (
            self.task_name == "attributes" and not missing(cfg, "decoder_checkpoint")
        ):
            self.decoder_entry = self._decoder_checkpoint()
        self.resume_from = self._resume_checkpoint()

        torch.manual_seed(self.tcfg.seed)
        tasks = {"decoder": DecoderTask, "voice": VoiceTask, "attributes": AttributeTask}
        self.task = tasks[self.task_name](self)
        self.model = self.task.model.to(self.device)

    # ---------------------------------------------------------------- checks

    def dataset(self, split: str, train: bool, **kwargs: Any):
        """A :class:`ShardDataset` of ``split`` built from ``cfg.data`` (the task's fields);
        for ``task=attributes``, the task's labelled faces."""
        if isinstance(getattr(self, "task", None), AttributeTask):
            return self.task.dataset(split, train, **kwargs)
        fields = dict(
            split=split,
            train=train,
            with_image=self.task.with_image,
            with_landmarks=self.task.with_landmarks,
            require_audio=self.task.require_audio,
        )
        fields.update(kwargs)
        if not train:
            fields.setdefault("rank", 0)
            fields.setdefault("world_size", 1)
        return build(self.cfg.data, **fields)

    def _check_shards(self) -> None:

        root = require_file_name(self.cfg.data.root, "data.root", "an s2f-preprocess output")
        probe = build(
            self.cfg.data, split="train", train=False, require_audio=False, rank=0, world_size=1
        )
        if probe.num_samples == 0:
            raise S2FError(f"the train split of {root} is empty")
        sample = next(iter(probe), None)
        if sample is None:
            raise S2FError(f"the train split of {root} holds no sample")
        width = int(sample["feature"].shape[0])
        if width != self.feature_dim:
            made_by = sample["meta"].get("face_encoder")
            by = f" ({made_by})" if made_by else ""
            raise ConfigError(
                f"shards in {root} hold {width}-D features{by}, but face_encoder="
                f"{self.encoder_name} gives {self.feature_dim}-D: choose the face encoder the "
                "shards were made with, or recompute them (s2f-preprocess action=features)"
            )
        needed = self.tcfg.batch_size * self.dist.world_size
        if probe.num_samples is not None and probe.num_samples < needed:
            raise ConfigError(
                f"the train split of {root} holds {probe.num_samples} samples, fewer than one "
                f"batch of {self.tcfg.batch_size} per process ({self.dist.world_size})"
            )

    def _check_clip_samples(self) -> None:
        """data.clip_samples within the range every checkpoint's window is checked against
        (speech2face.models.limits), so a run never writes a bundle inference refuses."""
        from speech2face.models.limits import MAX_CLIP_SAMPLES, MIN_CLIP_SAMPLES

        value = self.cfg.data.get("clip_samples")
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not (MIN_CLIP_SAMPLES <= value <= MAX_CLIP_SAMPLES)
        ):
            raise ConfigError(
                f"data.clip_samples must be a whole number from {MIN_CLIP_SAMPLES:,} to "
                f"{MAX_CLIP_SAMPLES:,} (1 s to 30 s at 16 kHz), not {value!r}"
            )

    def _decoder_checkpoint(self) -> dict[str, Any]:
        from speech2face.models import read_checkpoint

        path = require_file_name(self.cfg.decoder_checkpoint, "decoder_checkpoint", "a file")
        try:
            payload = read_checkpoint(path)
        except S2FError as error:
            raise ConfigError(f"decoder_checkpoint: {error}") from None
        if payload["kind"] != "face_decoder":
            raise ConfigError(f"decoder_checkpoint {path} holds a '{payload['kind']}'")
        width = int(payload["config"].get("feature_dim", -1))
        if width != self.feature_dim:
            raise ConfigError(
                f"decoder_checkpoint {path} takes {width}-D features, but face_encoder="
                f"{self.encoder_name} gives {self.feature_dim}-D"
            )
        return {k: payload[k] for k in ("kind", "config", "state_dict")}

    def _resume_checkpoint(self) -> dict[str, Any] | None:
        resume = self.cfg.get("resume", "auto")
        if resume is False or resume in ("never", "false"):
            if resume_path(self.output_dir) is not None:
                raise ConfigError(
                    f"{self.output_dir} holds checkpoints of an earlier run: resume=auto "
                    "continues it, or choose another output_dir"
                )
            return None
        path = resume_path(self.output_dir) if resume in ("auto", True) else Path(str(resume))
        if path is None:
            return None
        payload = read_training_checkpoint(path)
        trained = payload["training"]
        if trained["task"] != self.task_name:
            raise ConfigError(
                f"{path} is a task={trained['task']} checkpoint, not task={self.task_name}: "
                "choose another output_dir"
            )
        return payload

    # ---------------------------------------------------------------- running

    def autocast(self):
        precision = self.tcfg.precision
        if precision == "auto":
            precision = "bf16" if self.device.type == "cuda" else "fp32"
        if precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _restore(self, optimizer, scheduler) -> tuple[int, int, int, float | None]:
        payload = self.resume_from
        if payload is None:
            return 0, 0, 0, None
        model = unwrap(self.model)
        if payload["config"] != model_entry(model)["config"]:
            raise ConfigError(
                f"{self.output_dir} holds a run of another {payload['kind']} architecture: "
                "choose another output_dir"
            )
        state = payload["training"]
        try:
            model.load_state_dict(payload["state_dict"], strict=True)
            optimizer.load_state_dict(state["optimizer"])
            if scheduler is not None and state.get("scheduler") is not None:
                scheduler.load_state_dict(state["scheduler"])
            set_rng_state(state["rng"])
        except (KeyError, RuntimeError, TypeError, ValueError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            raise ConfigError(
                f"{self.output_dir}: its last checkpoint cannot be resumed ({first}): "
                "choose another output_dir"
            ) from None
        best = state.get("best")
        return int(state["step"]), int(state["epoch"]), int(state["batch_in_epoch"]), best

    def _batches(self, loader, dataset):
        """``(batch, seconds waited)`` forever, epoch after epoch, from the saved position."""
        while True:
            dataset.set_epoch(self.epoch)
            iterator = iter(loader)
            for _ in range(self.batch_in_epoch):  # a resumed run skips what it has read
                if next(iterator, None) is None:
                    break
            yielded = self.batch_in_epoch > 0
            while True:
                started = time.perf_counter()
                batch = next(iterator, None)
                if batch is None:
                    break
                self.batch_in_epoch += 1
                yielded = True
                yield batch, time.perf_counter() - started
            if not yielded:
                raise S2FError(
                    f"the train split yields no full batch of {self.tcfg.batch_size} per process"
                )
            self.epoch += 1
            self.batch_in_epoch = 0

    def next_batch(self, batches) -> tuple[dict[str, Any], float]:
        return next(batches)

    def fit(self) -> dict[str, float]:
        """Train to ``trainer.max_steps``; returns the last training and validation values."""

        from speech2face.data import build_loader

        tcfg = self.tcfg
        optimizer = build(self.cfg.optim.optimizer)(
            [p for p in self.model.parameters() if p.requires_grad]
        )
        scheduler = None
        if self.cfg.optim.get("scheduler") is not None:
            scheduler = build(self.cfg.optim.scheduler)(optimizer)
        self.task.prepare(resuming=self.resume_from is not None)
        step, self.epoch, self.batch_in_epoch, self.best = self._restore(optimizer, scheduler)

        logger = RunLogger(
            self.output_dir,
            tcfg.max_steps,
            first_step=step,
            enabled=self.dist.is_main,
            progress=tcfg.progress,
        )
        for line in self._messages:
            logger.message(line)
        self.log = logger
        if self.dist.is_main:
            self._write_config()
        if step:
            logger.message(f"resuming from step {step} ({self.output_dir})")

        train_set = self.dataset("train", train=True)
        loader = getattr(self.task, "loader", build_loader)(
            train_set,
            tcfg.batch_size,
            num_workers=tcfg.num_workers,
            pin_memory=tcfg.pin_memory and self.device.type == "cuda",
        )
        val_set = self._val_dataset()
        picture_batch = self._picture_batch()
        self._audio_logged = False

        model: nn.Module = self.model
        if self.device.type == "cuda" and tcfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if self.dist.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            model = DistributedDataParallel(model, device_ids=ids)
        if tcfg.compile:
            model = torch.compile(model)

        batches = self._batches(loader, train_set)
        meter = Meter()
        results: dict[str, float] = {}
        model.train()
        try:
            while step < tcfg.max_steps:
                optimizer.zero_grad(set_to_none=True)
                terms_sum: dict[str, float] = {}
                samples = 0
                waited = 0.0
                for micro in range(tcfg.grad_accum):
                    batch, wait = self.next_batch(batches)
                    waited += wait
                    samples += len(batch["key"])
                    last = micro == tcfg.grad_accum - 1
                    sync = (
                        model.no_sync()
                        if self.dist.distributed and not last and hasattr(model, "no_sync")
                        else contextlib.nullcontext()
                    )
                    with sync, self._memory_guard():
                        terms = self.task.step(model, batch)
                        (terms["total"] / tcfg.grad_accum).backward()
                    for name, value in _terms(terms).items():
                        terms_sum[name] = terms_sum.get(name, 0.0) + value / tcfg.grad_accum
                if not torch.isfinite(torch.tensor(terms_sum["loss/total"])):
                    raise S2FError(f"the loss is not finite at step {step + 1}: {terms_sum}")
                if tcfg.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), float(tcfg.grad_clip))
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                step += 1
                meter.add(terms_sum, samples, waited)

                if step % tcfg.log_every == 0 or step == tcfg.max_steps:
                    values = {
                        **meter.means(),
                        "lr": optimizer.param_groups[0]["lr"],
                        **meter.perf(self.dist.world_size),
                    }
                    logger.scalars(values, step)
                    results.update(values)
                    meter.reset()
                logger.advance(step, {"loss": f"{terms_sum['loss/total']:.4g}"})

                with meter.pause():  # not training: out of samples/s and the wait share
                    if picture_batch is not None and (
                        step % tcfg.image_every == 0 or step == tcfg.max_steps
                    ):
                        self._pictures(picture_batch, step)

                    validate = step % tcfg.val_every == 0 or step == tcfg.max_steps
                    is_best = False
                    if validate and val_set is not None:
                        values = self.validate(val_set) if self.dist.is_main else {}
                        logger.scalars(values, step)
                        results.update(values)
                        metric = values.get("val/loss/total")
                        if metric is not None and (self.best is None or metric < self.best):
                            self.best, is_best = metric, True
                        model.train()
                        distributed.barrier()
                    elif validate and val_set is None and self.best is None:
                        is_best = True  # no validation: best.pt follows the first checkpoint
                    checkpoint = step % tcfg.ckpt_every == 0 or step == tcfg.max_steps or is_best
                    if checkpoint and self.dist.is_main:
                        self.save(step, optimizer, scheduler, is_best)
        finally:
            logger.close()
        distributed.broadcast_buffers(unwrap(self.model))
        if self.dist.is_main:
            extra = {"best": self.best} if self.best is not None else {}
            logger.message(logger.summary(step, self.output_dir, extra))
        return results

    # ---------------------------------------------------------------- pieces

    @contextlib.contextmanager
    def _memory_guard(self):
        """A batch that does not fit becomes one line naming the settings to lower."""
        try:
            yield
        except torch.OutOfMemoryError:
            tcfg = self.tcfg
            hints = {"voice": "data.clip_samples", "attributes": "model.attributes.image_size"}
            hint = hints.get(self.task_name, "model.decoder.image_size")
            raise S2FError(
                f"a batch of {tcfg.batch_size} does not fit in {self.device} memory: lower "
                f"trainer.batch_size (and raise trainer.grad_accum to keep the batch per step), "
                f"or {hint}; precision=bf16 also halves the activations"
            ) from None

    def _val_dataset(self):
        try:
            dataset = self.dataset("val", train=False)
        except S2FError:
            dataset = None
        if dataset is None or dataset.num_samples == 0:
            where = "face set" if isinstance(self.task, AttributeTask) else "shards"
            self.log.message(f"no val split in the {where}: validation is off")
            return None
        return dataset

    def _picture_batch(self) -> dict[str, Any] | None:
        """A fixed batch of ``num_images`` val (else train) samples with their crops."""
        from speech2face.data import collate

        if not self.dist.is_main or self.tcfg.num_images == 0 or not hasattr(self.task, "picture"):
            return None
        for split in ("val", "train"):
            try:
                dataset = self.dataset(split, train=False, with_image=True, shuffle_buffer=0)
            except S2FError:
                continue
            samples = []
            for sample in dataset:
                samples.append(sample)
                if len(samples) == self.tcfg.num_images:
                    break
            if samples:
                return collate(samples)
        return None

    def _pictures(self, batch: dict[str, Any], step: int) -> None:
        """The image grid; with the voice task, the grid's voices as audio too (once per
        run: they do not change), tagged ``audio/voice/<row>``."""
        model = unwrap(self.model)
        model.eval()
        try:
            self.log.images(f"images/{self.task_name}", self.task.picture(model, batch), step)
        finally:
            model.train()
        if self.task.require_audio and "wav" in batch and not self._audio_logged:
            self.log.audio("audio/voice", batch["wav"], SAMPLE_RATE, step)
            self._audio_logged = True

    @torch.no_grad()
    def validate(self, dataset) -> dict[str, float]:
        """Each loss term on the val split (``val/loss/<term>``), and the held-out figures of
        :meth:`_held_out`."""
        from speech2face.data import build_loader

        model = unwrap(self.model)
        model.eval()
        if isinstance(self.task, AttributeTask):
            return self.task.validate(model, dataset)
        loader = build_loader(
            dataset, self.tcfg.batch_size, num_workers=0, drop_last=False, pin_memory=False
        )
        sums: dict[str, float] = {}
        count = 0
        predicted, true, genders = [], [], []
        for index, batch in enumerate(loader):
            if self.tcfg.val_batches is not None and index >= self.tcfg.val_batches:
                break
            n = len(batch["key"])
            if isinstance(self.task, VoiceTask):
                prediction = self.task.predict(model, batch)
                features = batch["feature"].to(self.device)
                terms = self.task.loss(features, prediction)
                prediction = self.task.feature(prediction)
            else:
                terms = self.task.step(model, batch)
                prediction = self.task.reencode(model, batch)  # portraits, re-encoded
            predicted.append(prediction.float().cpu())
            true.append(batch["feature"].float())
            genders += [(meta.get("labels") or {}).get("gender") for meta in batch["meta"]]
            for name, value in _terms(terms, "val/loss/").items():
                sums[name] = sums.get(name, 0.0) + value * n
            count += n
        values = {name: total / max(count, 1) for name, total in sums.items()}
        if predicted:
            values.update(self._held_out(torch.cat(predicted), torch.cat(true), genders))
        return values

    def _held_out(self, predicted: Tensor, true: Tensor, genders: list) -> dict[str, float]:
        """Figures on the val speakers, each beside its floor.

        voice: recall@K (cosine) of each voice's own face among the split's faces, beside
        chance (K / faces); the gender of the face nearest the prediction against the voice's
        (when the shards carry labels), beside the "mean face" baseline (the mean training
        feature predicted for every voice). decoder: the portrait of each true feature,
        re-encoded by the face encoder, finds its own face at rank 1 (recall@1), beside chance.
        """
        from speech2face.metrics import nearest_label_agreement, recall_at_k

        pool = len(true)
        targets = torch.arange(pool)
        values: dict[str, float] = {}
        if isinstance(self.task, DecoderTask):
            recall = recall_at_k(predicted, true, targets, ks=(1,))
            values["val/portrait_recall@1"] = recall[1]
            values["val/portrait_chance@1"] = 1 / pool
            return values
        recall = recall_at_k(predicted, true, targets, ks=RECALL_KS)
        for k in RECALL_KS:
            values[f"val/recall@{k}"] = recall[k]
            values[f"val/chance@{k}"] = min(k / pool, 1.0)
        if any(g is not None for g in genders):
            share, _ = nearest_label_agreement(predicted, true, genders, genders)
            values["val/gender_agreement"] = share
            mean = self.task.mean_feature
            if mean is not None:
                baseline = mean.expand(pool, -1)
                share, _ = nearest_label_agreement(baseline, true, genders, genders)
                values["val/gender_agreement_mean_face"] = share
        return values

    def _bundle(self) -> dict[str, Any]:
        from omegaconf import OmegaConf

        if isinstance(self.task, AttributeTask):
            return {**self.task.bundle(), "config": OmegaConf.to_yaml(self.cfg)}

        bundle: dict[str, Any] = {
            "face_encoder": self.encoder_name,
            "feature_dim": self.feature_dim,
            "audio": {
                "sample_rate": SAMPLE_RATE,
                "clip_samples": int(self.cfg.data.clip_samples),
                "win_length": WIN_LENGTH,
                "hop_length": HOP_LENGTH,
                "n_fft": N_FFT,
                "power_law": POWER_LAW,
            },
            "config": OmegaConf.to_yaml(self.cfg),
        }
        if self.decoder_entry is not None:
            bundle["decoder"] = self.decoder_entry
        mean = getattr(self.task, "mean_feature", None)
        if mean is not None:
            bundle["mean_feature"] = mean.detach().cpu().float()  # (D,)
        loss = getattr(self.task, "loss", None)
        if hasattr(loss, "project"):  # predictions stand at the spread's distance from the mean
            bundle["feature_radius"] = float(loss.spread)
        return bundle

    def save(self, step: int, optimizer, scheduler, is_best: bool) -> Path:
        payload = {
            "format": FORMAT,
            "version": VERSION,
            **model_entry(self.model),
            "training": {
                "task": self.task_name,
                "step": step,
                "epoch": self.epoch,
                "batch_in_epoch": self.batch_in_epoch,
                "world_size": self.dist.world_size,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "rng": rng_state(),
                "best": self.best,
            },
            "bundle": self._bundle(),
        }
        return save_training_checkpoint(
            self.output_dir, payload, step, self.tcfg.keep_last, is_best
        )

    def _write_config(self) -> None:
        from omegaconf import OmegaConf

        from speech2face.fileio import write_atomic

        self.output_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.output_dir / CONFIG_COPY, OmegaConf.to_yaml(self.cfg).encode())


class _Deferred:
    """Collects messages until the run's logger exists (the constructor's notes)."""

    def __init__(self, store: list[str], enabled: bool) -> None:
        self.store = store
        self.enabled = enabled

    def message(self, text: str) -> None:
        if self.enabled:
            self.store.append(text)


def train(cfg: Any) -> dict[str, float]:
    """Run ``cfg.task`` (``decoder``, ``voice`` or ``attributes``) as configured by ``configs/train.yaml``.

    Under ``torchrun`` every process calls this; rank 0 holds the output directory, logs and
    writes checkpoints. Returns the last logged training and validation values.
    """
    from speech2face.runlock import hold_directory

    output = require_file_name(cfg.output_dir, "output_dir", "a directory")
    dist = distributed.setup(str(cfg.trainer.device))
    try:
        trainer = Trainer(cfg, dist)  # every check, before the directory is taken
        if not dist.is_main:
            return trainer.fit()
        with hold_directory(output, "s2f-train"):
            return trainer.fit()
    finally:
        distributed.cleanup()
