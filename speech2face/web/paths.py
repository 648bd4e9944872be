"""File names as the server's answers show them: never an absolute path.

A page (or whoever reaches the server) learns nothing of the machine's directories: a file
is shown relative to the directory ``s2f-serve`` runs in when it is inside it
(``runs/voice/checkpoints/last.pt``), else by its name (``default.pt``). The terminal keeps
the full paths.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["scrub", "shown"]

# An absolute path inside a message: a slash that starts a word (not a URL's ``//`` or a
# ratio's ``1/2``), up to a space or a quote.
_ABSOLUTE = re.compile(r"(?<![\w./~:-])/[^\s'\"`,;()<>]+")


def shown(path: str | os.PathLike) -> str:
    """``path`` relative to the current directory when inside it, else its name."""
    path = Path(path)
    try:
        here = Path.cwd()
        absolute = path.expanduser().absolute()
        if here.parent != here:  # not the root: everything is inside that
            relative = absolute.relative_to(here).as_posix()
            return relative if relative != "." else path.name or "."
    except (ValueError, OSError):
        pass
    return path.name or "."


def scrub(text: str) -> str:
    """``text`` with each absolute path in it replaced by :func:`shown`'s name for it."""
    return _ABSOLUTE.sub(lambda found: shown(found.group(0)), text)
