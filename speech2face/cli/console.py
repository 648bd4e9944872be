"""How a command reports a user error: ``<prog>: error: <message>`` on one line, then exit."""

from __future__ import annotations

import os
import sys


def fail(message: str, prog: str | None = None, code: int = 2) -> None:
    """Print ``<prog>: error: <message>`` on one line to stderr and exit with ``code``."""
    prog = prog or _prog()
    print(f"{prog}: error: {' '.join(str(message).split())}", file=sys.stderr)
    raise SystemExit(code)


def _prog() -> str:
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "speech2face"
