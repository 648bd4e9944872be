"""One live run per output directory.

Every long job that writes into a directory (preprocessing, training, evaluation, the demo)
holds an exclusive ``fcntl`` lock on ``<dir>/.s2f.lock`` while it runs. The kernel releases
the lock when the holder exits, however it exits (SIGKILL included), so a stale lock file
never blocks a later run; a second run started while the first is alive is refused with one
line naming the holder. A run that ends (normally or by an error) removes its lock file
unless a process it forked still holds the lock; only a killed run leaves one behind, which
the next run takes over.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from speech2face.errors import S2FError

__all__ = ["LOCK_NAME", "DirectoryBusyError", "hold_directory", "holder"]

LOCK_NAME = ".s2f.lock"


class DirectoryBusyError(S2FError):
    """Another live run holds the output directory."""


def holder(directory: str | os.PathLike, name: str = LOCK_NAME) -> dict | None:
    """What the lock file says about the run holding ``directory`` (``None`` if unreadable)."""
    try:
        return json.loads((Path(directory) / name).read_text())
    except (OSError, ValueError):
        return None


@contextmanager
def hold_directory(
    directory: str | os.PathLike, command: str | None = None, name: str = LOCK_NAME
) -> Iterator[Path]:
    """Hold ``directory`` (created if needed) for this process while the block runs.

    ``name`` is the lock file's; jobs that share a directory by design (the jobs of a
    preprocessing job array) each hold their own.

    Raises :class:`DirectoryBusyError` at once, without waiting, if a live process holds it.
    The lock file records the holder's command, PID, host and start time for that message.
    The descriptor is close-on-exec, so programs the run executes do not hold it; workers
    forked from the run share it (a lock belongs to the open file), so the directory stays
    held until the last of them has exited, which is what keeps a new run from starting
    beside an orphaned worker.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    fd = _lock(path, directory, name)
    try:
        record = {
            "command": command or os.path.basename(sys.argv[0] or "speech2face"),
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        yield directory
    finally:
        os.close(fd)  # releases the lock, unless a forked worker still shares it
        _remove_if_free(path)


def _lock(path: Path, directory: Path, name: str) -> int:
    """An open descriptor of ``path`` holding its exclusive lock.

    A run that ends removes the file, so the file locked may have been unlinked between
    opening and locking it: then the lock is on nothing anyone else sees, and it is taken
    again on the file now at ``path``.
    """
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            removed = not _same_file(fd, path)  # by a run ending now: its lock is no matter
            os.close(fd)
            if removed:
                continue
            info = holder(directory, name) or {}
            who = info.get("command", "another run")
            pid = info.get("pid", "?")
            host = info.get("host", "?")
            raise DirectoryBusyError(
                f"{directory} is in use by {who} (pid {pid} on {host}); wait for it to "
                "finish, stop it, or choose another output directory"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        if _same_file(fd, path):
            return fd
        os.close(fd)  # removed by the run that just ended: lock the new file instead


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _remove_if_free(path: Path) -> None:
    """Remove the lock file when no process holds its lock (a forked worker may, then the
    file stays and keeps the directory held until the worker exits)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if _same_file(fd, path):
            os.unlink(path)  # while holding the lock: a run that opened it locks again
    except OSError:
        pass  # held by a worker or by a new run: its file, left alone
    finally:
        os.close(fd)
