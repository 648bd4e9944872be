"""Atomic file output: readers see a complete file or none, never a partial one.

Every writer in speech2face goes through here. Temporary files are named
``.<name>.<pid>.tmp`` beside their target: hidden from readers that list ``*.tar`` or
``*.json``, and private to one process, so a worker orphaned by a killed run cannot collide
with the run that resumes.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from speech2face.errors import S2FError


class OutputExistsError(S2FError, FileExistsError):
    """An output file already exists and the caller did not allow replacing it."""

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__(f"{path} exists")
        self.path = Path(path)


def temporary_path(path: str | os.PathLike) -> Path:
    """``.<name>.<pid>.tmp`` beside ``path``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` name one file: the same inode (links too) or the same path."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet), or is a loop of symbolic links
        return os.path.realpath(a) == os.path.realpath(b)  # never raises, even on a loop


def check_output(
    path: str | os.PathLike,
    inputs: Iterable[str | os.PathLike] = (),
    overwrite: bool = False,
) -> None:
    """Raise a one-line :class:`S2FError` unless ``path`` can be written as a new file.

    Call it before the work that produces the file. ``path`` must not be a directory or any
    of ``inputs`` (whatever ``overwrite`` says), its directory must exist and be writable,
    and it must not exist unless ``overwrite`` (then :class:`OutputExistsError`).
    """
    path = Path(path)
    if not path.name or path.is_dir():
        raise S2FError(f"{path} is a directory, not a file name")
    for source in inputs:
        if same_file(path, source):
            raise S2FError(f"{path} is the input file {source}; it is never written over")
    parent = path.parent
    if not parent.is_dir():
        raise S2FError(f"{path}: output directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise S2FError(f"{path}: no permission to write in {parent}")
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise OutputExistsError(path)
        if not path.is_file():
            raise S2FError(f"{path} exists and is not a regular file")


@contextmanager
def atomic_outputs(*paths: str | os.PathLike, overwrite: bool = True) -> Iterator[list[Path]]:
    """Yield one temporary path per output; rename them all into place only on success.

    If anything fails inside the block, no output appears and no temporary file is left.
    With ``overwrite=False`` an existing target, even one that appeared while the block ran,
    raises :class:`OutputExistsError` and nothing is written. An ``OSError`` about a
    temporary file names its target instead.
    """
    targets = [Path(path) for path in paths]
    for path in targets:
        if not path.name or path.is_dir():
            raise S2FError(f"{path} is a directory, not a file name")
        if not path.parent.is_dir():
            raise S2FError(f"{path}: output directory {path.parent} does not exist")
    temps = [temporary_path(path) for path in targets]
    try:
        yield temps
        if overwrite:
            for tmp, path in zip(temps, targets, strict=True):
                os.replace(tmp, path)
        else:
            _place_new(temps, targets)
    except OSError as error:
        renamed = _naming_target(error, temps, targets)
        if renamed is error:
            raise
        raise renamed from error
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)


def _place_new(temps: list[Path], targets: list[Path]) -> None:
    """Link each temporary file to its target, which must not exist; all or none appear."""
    placed: list[Path] = []
    try:
        for tmp, path in zip(temps, targets, strict=True):
            _link_new(tmp, path)
            placed.append(path)
    except BaseException:
        for path in placed:  # ours: created a moment ago
            path.unlink(missing_ok=True)
        raise


def _link_new(tmp: Path, path: Path) -> None:
    """``tmp`` -> ``path`` unless ``path`` exists, atomically where the filesystem has links."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise OutputExistsError(path) from None
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        if path.exists() or path.is_symlink():  # no hard links here: check, then rename
            raise OutputExistsError(path) from None
        os.replace(tmp, path)


def _naming_target(error: OSError, temps: list[Path], targets: list[Path]) -> OSError:
    """``error`` with a temporary file's name replaced by its target's."""
    if isinstance(error, S2FError):
        return error
    for tmp, path in zip(temps, targets, strict=True):
        if error.filename is not None and os.fspath(error.filename) == str(tmp):
            return OSError(error.errno, error.strerror, str(path))
    return error


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    with atomic_outputs(path) as (tmp,):
        tmp.write_bytes(data)
