"""Loading the models' tensor files: :func:`speech2face.tensor_io.safe_load`, whose one-line
errors for a registered weight file also give its expected size and checksum and how to
fetch it again (:func:`speech2face.weights.unreadable_hint`)."""

from __future__ import annotations

import os
from typing import Any

from speech2face.errors import S2FError
from speech2face.tensor_io import safe_load as _safe_load
from speech2face.tensor_io import torch_reason
from speech2face.tensor_io import unreadable_message as _unreadable_message

__all__ = ["safe_load", "torch_reason", "unreadable_message"]


def safe_load(path: str | os.PathLike, error: type[S2FError], what: str, mmap: bool = False) -> Any:
    """:func:`speech2face.tensor_io.safe_load` with the weights registry's hint."""
    return _safe_load(path, error, what, mmap=mmap, hint=_registry_hint)


def unreadable_message(path: str | os.PathLike, what: str, cause: BaseException) -> str:
    """:func:`speech2face.tensor_io.unreadable_message` with the weights registry's hint."""
    return _unreadable_message(path, what, cause, hint=_registry_hint)


def _registry_hint(path: str | os.PathLike) -> str:
    from speech2face.weights import unreadable_hint  # the registry, only when a load fails

    return unreadable_hint(path)
