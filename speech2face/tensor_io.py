"""Reading tensor files safely: ``torch.load(weights_only=True)`` with one-line errors.

A file torch cannot read is reported for what it is, never with torch's advice to load it
with ``weights_only=False`` (which would run whatever code the file holds): either it is
corrupt or truncated (with its size, and whatever the caller's ``hint`` adds), or it holds
pickled Python objects besides tensors. The weights registry and the models both load
through here; neither is imported by it.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Callable
from typing import Any

import torch

from speech2face.errors import S2FError

# torch's weights_only failures wrap the unpickler's own message in advice; this finds it.
_UNPICKLER_REASON = re.compile(r"WeightsUnpickler error:\s*(.+?)(?:\n\s*\n|$)", re.DOTALL)


Hint = Callable[[str | os.PathLike], str]


def safe_load(
    path: str | os.PathLike,
    error: type[S2FError],
    what: str,
    mmap: bool = False,
    hint: Hint | None = None,
) -> Any:
    """Load ``path`` on the CPU without running pickled code.

    Args:
        error: the :class:`S2FError` subclass to raise.
        what: what the file should hold, for the message (``"checkpoint"``, ``"weights"``).
        mmap: map the file's tensors into memory instead of reading them (a read-only use of
            a large checkpoint then costs no copy: the pages are read as the tensors are
            used). A file that cannot be mapped is read as usual, so its error is the same.
        hint: called with ``path`` when torch cannot read it: what to do about it, appended
            to the message (``""``: nothing to add).
    """
    if mmap:
        try:
            return torch.load(os.fspath(path), map_location="cpu", weights_only=True, mmap=True)
        except Exception:  # noqa: BLE001 (read it again below, for the one-line reason)
            pass
    try:
        return torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except OSError as cause:  # a directory, no permission
        raise error(f"could not read {what} {path}: {cause.strerror or cause}") from None
    except Exception as cause:  # unpickling errors have many types
        raise error(unreadable_message(path, what, cause, hint)) from None


def torch_reason(cause: BaseException) -> str:
    """What went wrong in a failed ``torch.load``, in a few words, without torch's advice."""
    text = str(cause)
    if isinstance(cause, pickle.UnpicklingError):
        match = _UNPICKLER_REASON.search(text)
        if match:
            text = match.group(1)
        elif cause.__context__ is not None:
            text = str(cause.__context__)
    text = " ".join(text.split())
    if "legacy .tar format" in text:
        return "not a tensor file (or PyTorch's legacy .tar format, which is not loaded)"
    if isinstance(cause, EOFError) or text.startswith("unexpected EOF"):
        return "the file ends too early"
    opcode = re.fullmatch(r"Unsupported operand (\d+)", text)
    if opcode:  # the unpickler met a byte that starts no pickle instruction
        return f"not a tensor file: unknown pickle opcode {opcode.group(1)}"
    text = text.removeprefix("PytorchStreamReader ")
    text = re.split(r"(?<=[\w)])\.\s", text)[0].rstrip(".")  # the first sentence
    return f"torch: {text or type(cause).__name__}"


def unreadable_message(
    path: str | os.PathLike, what: str, cause: BaseException, hint: Hint | None = None
) -> str:
    """One line saying why ``path`` could not be loaded, and what to do about it."""
    reason = torch_reason(cause)
    hint = hint(path) if hint is not None else ""
    if reason.startswith("torch: Unsupported global"):  # a pickled class or function, not damage
        found = re.search(r"GLOBAL (\S+)", reason)
        detail = f" ({found.group(1)})" if found else ""
        message = (
            f"could not read {what} {path}: it holds pickled Python objects{detail} besides "
            "tensors, which speech2face never loads because loading them could run code"
        )
        return f"{message}; {hint}" if hint else message
    try:
        size = f"{os.path.getsize(path):,} bytes; "
    except OSError:
        size = ""
    message = f"{what} {path} is corrupt or truncated ({size}{reason})"
    return f"{message}: {hint}" if hint else message
