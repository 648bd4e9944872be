"""Atomic file output: readers see a complete file or none, never a partial one.

Every writer in speech2face goes through here. Temporary files are named
``.<name>.<pid>.tmp`` beside their target: hidden from readers that list ``*.tar`` or
``*.json``, and private to one process, so a worker orphaned by a killed run cannot collide
with the run that resumes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from speech2face.errors import S2FError


def temporary_path(path: str | os.PathLike) -> Path:
    """``.<name>.<pid>.tmp`` beside ``path``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextmanager
def atomic_outputs(*paths: str | os.PathLike) -> Iterator[list[Path]]:
    """Yield one temporary path per output; rename them all into place only on success.

    If anything fails inside the block, no output appears and no temporary file is left.
    """
    targets = [Path(path) for path in paths]
    for path in targets:
        if not path.parent.is_dir():
            raise S2FError(f"{path}: output directory {path.parent} does not exist")
    temps = [temporary_path(path) for path in targets]
    try:
        yield temps
        for tmp, path in zip(temps, targets, strict=True):
            os.replace(tmp, path)
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    with atomic_outputs(path) as (tmp,):
        tmp.write_bytes(data)
