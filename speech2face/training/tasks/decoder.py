"""``task=decoder``: train the :class:`~speech2face.models.FaceDecoder` on the shards' face
crops, 68 landmarks and features. Its mean landmark geometry is computed from the training
split first and stored in the model. The identity term of its loss needs a differentiable
face encoder (vggface, facenet) and is off with dlib."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speech2face.errors import ConfigError, S2FError
from speech2face.training.checkpoint import unwrap
from speech2face.training.instantiate import build
from speech2face.training.tasks.base import (
    Run,
    Task,
    feature_bundle,
    float_images,
    resize_faces,
    validate_features,
)

SHARD_CROP_SIZE = 224  # the shards' aligned crops and landmark coordinates


class DecoderTask(Task):
    """Train the face decoder on crops, landmarks and features."""

    name = "decoder"
    kind = "face_decoder"
    with_image = True
    with_landmarks = True
    require_audio = False
    memory_hint = "model.decoder.image_size"

    def __init__(self, trainer: Run) -> None:
        super().__init__(trainer)
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
        dataset = self.dataset("train", train=False, with_image=False, with_landmarks=True)
        points = [sample["landmarks"] for sample in dataset.draw(limit, seed=trainer.tcfg.seed)]
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
            float_images(batch, device), batch["landmarks"].to(device).float(), size
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
        images = F.interpolate(float_images(batch, device), size=(size, size), mode="area")
        return [images, model.render(batch["feature"].to(device))]

    @torch.no_grad()
    def reencode(self, model: nn.Module, batch: dict[str, Any]) -> Tensor:  # -> (B, D)
        """The face encoder's feature of the portrait drawn from each true feature."""
        portraits = unwrap(model).render(batch["feature"].to(self.trainer.device))
        return self.judge()(portraits)

    def validate(self, model: nn.Module, dataset) -> dict[str, float]:
        """Each loss term on the val split (``val/loss/<term>``); and the portrait of each
        true feature, re-encoded by the face encoder, finds its own face at rank 1
        (``val/portrait_recall@1``), beside chance (``val/portrait_chance@1``)."""

        def measure(batch: dict[str, Any]) -> tuple[dict[str, Tensor], Tensor]:
            return self.step(model, batch), self.reencode(model, batch)  # portraits, re-encoded

        return validate_features(self, model, dataset, measure, self._held_out)

    def _held_out(self, predicted: Tensor, true: Tensor, genders: list) -> dict[str, float]:
        from speech2face.metrics import recall_at_k

        pool = len(true)
        recall = recall_at_k(predicted, true, torch.arange(pool), ks=(1,))
        return {"val/portrait_recall@1": recall[1], "val/portrait_chance@1": 1 / pool}

    def bundle(self) -> dict[str, Any]:
        """The face encoder, the audio front end and the run's config."""
        return feature_bundle(self.trainer)
