"""Reading tensor files safely: ``torch.load(weights_only=True)`` with one-line errors."""

from __future__ import annotations

import os
from typing import Any

import torch

from speech2face.errors import S2FError


def safe_load(path: str | os.PathLike, error: type[S2FError], what: str) -> Any:
    """Load ``path`` on the CPU without running pickled code.

    Args:
        error: the :class:`S2FError` subclass to raise.
        what: what the file should hold, for the message (``"checkpoint"``, ``"weights"``).
    """
    try:
        return torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except Exception as cause:  # unpickling errors have many types
        message = " ".join(str(cause).split())[:200]
        raise error(f"could not read {what} {path}: {message}") from None
