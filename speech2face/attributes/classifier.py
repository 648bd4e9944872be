"""The attribute backend of a classifier trained by ``s2f-train task=attributes``.

The checkpoint (a training checkpoint such as ``RUN_ATTR/checkpoints/last.pt``, or a model
checkpoint of an :class:`~speech2face.models.AttributeClassifier`) rebuilds the network and
says which of its heads were trained; only those attributes are predicted. Age comes from
the predicted 10-year bin as the bin's middle year (35.0 for the 30s, 85.0 for 80+).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from speech2face.attributes import ATTRIBUTES, AttributeBackendError
from speech2face.errors import S2FError
from speech2face.models.attribute_classifier import ATTRIBUTE_CLASSES, bin_middle


class ClassifierBackend:
    """Gender, age and ethnicity from this project's own attribute classifier.

    Args:
        checkpoint: a checkpoint written by ``s2f-train task=attributes``.
        device: where the classifier runs (``cpu``, ``cuda``, ``cuda:N``).
        batch_size: images per forward pass.
    """

    name = "classifier"

    def __init__(self, checkpoint: str, device: str = "cpu", batch_size: int = 64) -> None:
        from speech2face.models import load_checkpoint, read_checkpoint

        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise AttributeBackendError(
                f"attributes.batch_size must be an integer >= 1, got {batch_size!r}"
            )
        if not checkpoint or not isinstance(checkpoint, str):
            raise AttributeBackendError("attributes.checkpoint must name a checkpoint file")
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError):
            raise AttributeBackendError(f"attributes.device {device!r} is not a device") from None
        try:
            payload = read_checkpoint(checkpoint)  # weights_only=True
            if payload["kind"] != "attribute_classifier":
                raise AttributeBackendError(
                    f"{checkpoint} holds a '{payload['kind']}', not an attribute classifier "
                    "(train one with s2f-train task=attributes)"
                )
            self.model = load_checkpoint(checkpoint, self.device, kind="attribute_classifier")
        except AttributeBackendError:
            raise
        except S2FError as error:
            raise AttributeBackendError(f"attributes.checkpoint: {error}") from None
        self.batch_size = batch_size
        self.attributes: tuple[str, ...] = self.model.trained_attributes
        if not self.attributes:
            raise AttributeBackendError(f"{checkpoint}: the classifier has no trained head")
        self.missing = {
            name: f"the classifier ({checkpoint}) was trained without {name} labels"
            for name in ATTRIBUTES
            if name not in self.attributes
        }
        bundle = payload.get("bundle") or {}
        step = (payload.get("training") or {}).get("step")
        trained_on = f" on {bundle['source']}" if bundle.get("source") else ""
        at = f", step {step}" if step is not None else ""
        self.description = (
            f"attribute classifier trained by s2f-train task=attributes{trained_on}{at} "
            f"({', '.join(self.attributes)}; {self.model.config.image_size}px input)"
        )

    @torch.no_grad()
    def predict(self, images: Tensor) -> list[dict[str, Any]]:  # (B, 3, H, W) uint8
        """One dict per image with a key per trained attribute (see
        :meth:`speech2face.attributes.AttributeBackend.predict`)."""
        if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise AttributeBackendError(f"images must be (B, 3, H, W) uint8 RGB, got {shape}")
        if images.dtype != torch.uint8:
            raise AttributeBackendError(f"images must be uint8 RGB, got {images.dtype}")
        results: list[dict[str, Any]] = []
        for start in range(0, images.shape[0], self.batch_size):
            chunk = images[start : start + self.batch_size].to(self.device)
            logits = self.model(self.model.prepare(chunk))
            chosen = {name: logits[name].argmax(dim=1).tolist() for name in self.attributes}
            for row in range(chunk.shape[0]):
                labels: dict[str, Any] = {}
                for name in self.attributes:
                    index = int(chosen[name][row])
                    if name == "age":
                        labels[name] = bin_middle(index)
                    else:
                        labels[name] = ATTRIBUTE_CLASSES[name][index]
                results.append(labels)
        return results
