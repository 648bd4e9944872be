"""``task=voice``: train the :class:`~speech2face.models.VoiceEncoder` with the Speech2Face
loss (Eq. 1) against a frozen trained decoder (``decoder_checkpoint``) and the face
encoder's classification head (distillation off when it has none, as with dlib).
Spectrograms are computed on the device inside the step."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speech2face.audio import spectrogram
from speech2face.errors import ConfigError
from speech2face.training.checkpoint import build_model
from speech2face.training.instantiate import build, call_with_accepted
from speech2face.training.tasks.base import (
    Run,
    Task,
    feature_bundle,
    float_images,
    validate_features,
)

RECALL_KS = (1, 5, 10)


class VoiceTask(Task):
    """Train the voice encoder with the Speech2Face loss against a frozen decoder."""

    name = "voice"
    kind = "voice_encoder"
    with_image = False
    with_landmarks = False
    require_audio = True
    decoder_checkpoint = "required"
    memory_hint = "data.clip_samples"

    def __init__(self, trainer: Run) -> None:
        super().__init__(trainer)
        cfg = trainer.cfg

        assert trainer.decoder_entry is not None
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
        self.mean_feature: Tensor | None = None  # (D,), from prepare()

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        """data.clip_samples within the range every checkpoint's window is checked against
        (speech2face.models.limits), so a run never writes a bundle inference refuses."""
        from speech2face.models.limits import MAX_CLIP_SAMPLES, MIN_CLIP_SAMPLES

        value = cfg.data.get("clip_samples")
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not (MIN_CLIP_SAMPLES <= value <= MAX_CLIP_SAMPLES)
        ):
            raise ConfigError(
                f"data.clip_samples must be a whole number from {MIN_CLIP_SAMPLES:,} to "
                f"{MAX_CLIP_SAMPLES:,} (1 s to 30 s at 16 kHz), not {value!r}"
            )

    def prepare(self, resuming: bool) -> None:
        """The mean training feature (of ``trainer.mean_geometry_samples`` drawn at random
        over the training shards): the "mean face" every voice would get from a model that
        learnt nothing from the voice (validation's baseline, the centre of a centred loss).
        A new voice encoder starts from it: its output bias is set to it."""
        trainer = self.trainer
        limit = trainer.tcfg.mean_geometry_samples
        total, squares, count = None, 0.0, 0
        # a random draw over all shards (their first samples would be a few videos' faces)
        for sample in self.dataset("train", train=False).draw(limit, seed=trainer.tcfg.seed):
            feature = sample["feature"].double()
            total = feature if total is None else total + feature
            squares += float(feature.pow(2).sum())
            count += 1
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
        bias = getattr(head, "bias", None)
        if not resuming and isinstance(bias, Tensor) and bias.numel() % mean.numel() == 0:
            with torch.no_grad():  # start from the mean face (every head: one copy each)
                bias.copy_(self.mean_feature.repeat(bias.numel() // mean.numel()))

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
        prediction = self.predict(model, batch)
        if prediction.ndim == 3:  # (B, heads, D): each head trained on the whole batch
            each = [self.loss(features, prediction[:, h]) for h in range(prediction.shape[1])]
            return {name: torch.stack([t[name] for t in each]).mean() for name in each[0]}
        return self.loss(features, prediction)

    @torch.no_grad()
    def picture(self, model: nn.Module, batch: dict[str, Any]) -> list[Tensor]:
        """Columns: true face, decoder on the true feature, decoder on the voice's prediction."""
        device = self.trainer.device
        size = self.decoder.config.image_size
        images = F.interpolate(float_images(batch, device), size=(size, size), mode="area")
        true = self.decoder.render(batch["feature"].to(device))
        predicted = self.feature(self.predict(model, batch))
        return [images, true, self.decoder.render(predicted)]

    def validate(self, model: nn.Module, dataset) -> dict[str, float]:
        """Each loss term on the val split (``val/loss/<term>``), and figures on the val
        speakers, each beside its floor: recall@K (cosine) of each voice's own face among
        the split's faces, beside chance (K / faces); the gender of the face nearest the
        prediction against the voice's (when the shards carry labels), beside the "mean
        face" baseline (the mean training feature predicted for every voice)."""

        def measure(batch: dict[str, Any]) -> tuple[dict[str, Tensor], Tensor]:
            prediction = self.predict(model, batch)
            terms = self.loss(batch["feature"].to(self.trainer.device), prediction)
            return terms, self.feature(prediction)

        return validate_features(self, model, dataset, measure, self._held_out)

    def _held_out(self, predicted: Tensor, true: Tensor, genders: list) -> dict[str, float]:
        from speech2face.metrics import nearest_label_agreement, recall_at_k

        pool = len(true)
        values: dict[str, float] = {}
        recall = recall_at_k(predicted, true, torch.arange(pool), ks=RECALL_KS)
        for k in RECALL_KS:
            values[f"val/recall@{k}"] = recall[k]
            values[f"val/chance@{k}"] = min(k / pool, 1.0)
        if any(g is not None for g in genders):
            share, _ = nearest_label_agreement(predicted, true, genders, genders)
            values["val/gender_agreement"] = share
            if self.mean_feature is not None:
                baseline = self.mean_feature.expand(pool, -1)
                share, _ = nearest_label_agreement(baseline, true, genders, genders)
                values["val/gender_agreement_mean_face"] = share
        return values

    def bundle(self) -> dict[str, Any]:
        """The face encoder, the audio front end, the run's config and the decoder; the
        mean training feature, and the distance from it predictions are placed at (a
        loss that trains only directions)."""
        bundle = feature_bundle(self.trainer)
        if self.mean_feature is not None:
            bundle["mean_feature"] = self.mean_feature.detach().cpu().float()  # (D,)
        if hasattr(self.loss, "project"):  # predictions stand at the spread's distance
            bundle["feature_radius"] = float(self.loss.spread)
        return bundle
