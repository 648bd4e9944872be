"""A local web page that draws the face behind a voice: ``s2f-serve`` (``make serve``).

One static page (``static/``: HTML, CSS and JavaScript, no external assets) served by
FastAPI and uvicorn, the optional ``web`` extra (``pip install -e ".[web]"``). A visitor
records from the microphone or drops an audio file; the page shows the portrait, the gender
and age the attribute models give the portrait, and the spectrogram the voice encoder saw.
A gallery shows held-out voices of an evaluation (the demo's) beside their true faces.

Modules:

- :mod:`speech2face.web.engine`: the model, loaded in the background and run by one worker
  thread (a queue, so requests never run the model at the same time);
- :mod:`speech2face.web.upload`: an upload streamed into a per-request temporary directory,
  refused past :data:`MAX_UPLOAD_BYTES`;
- :mod:`speech2face.web.gallery`: the example voices of an evaluation's report;
- :mod:`speech2face.web.app`: the FastAPI application (the page and ``/api/...``);
- :mod:`speech2face.web.paths`: file names as answers show them (never absolute paths);
- :mod:`speech2face.web.server`: uvicorn's settings: limits on connections and slow
  clients, the hosts answered, the open-file limit.

The API is documented in ``docs/web.md``. Importing this package does not import FastAPI,
torch or the model: ``s2f-serve --help`` stays instant and works without the extra.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_HOST = "127.0.0.1"  # loopback only: other machines reach it through an SSH tunnel
DEFAULT_PORT = 7860
# The largest request body accepted (the audio file plus a few hundred bytes of form
# headers): 25 MB is over 13 minutes of 16 kHz 16-bit WAV, or a long mp3.
MAX_UPLOAD_BYTES = 25 * 1024 * 1024
# Audio past this is left out (the page says so): a long recording would hold the model
# for everyone else. Two minutes is 39 windows of the paper's 6 s with a 3 s hop.
MAX_SECONDS = 120.0
# Requests waiting for the model beyond this many get "busy, try again" (HTTP 503).
MAX_QUEUE = 64
# Windows drawn in the spectrogram picture; longer recordings show the first ones.
MAX_SHOWN_WINDOWS = 4
# Sides in pixels of the portrait on the page and of its upscaled view.
PORTRAIT_PX = 224
UPSCALED_PX = 448
# What the Host header may say on a server listening on this machine only.
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")

# The limits on connections and slow clients (docs/web.md, "Limits and timeouts").
# Connections open at once (uvicorn's limit_concurrency); past it a request gets 503.
MAX_CONNECTIONS = 1000
# Uploads being received at once (each holds a temporary file of up to MAX_UPLOAD_BYTES);
# another waits up to CHUNK_TIMEOUT for its turn, then gets 503.
MAX_UPLOADS = 4
# Seconds a connection may take to send a request's line and headers (from connecting, or
# from its previous answer) before it is closed.
HEAD_TIMEOUT = 10.0
# Seconds an upload may go without a byte arriving, and may take in all (25 MB in 120 s
# is 210 kB/s), before it is dropped with 408 and its temporary file removed.
CHUNK_TIMEOUT = 10.0
UPLOAD_TIMEOUT = 120.0
# Seconds an idle keep-alive connection stays open after an answer (uvicorn's default).
KEEP_ALIVE_TIMEOUT = 5


@dataclass(frozen=True)
class Limits:
    """The server's limits on connections and slow clients (the module's constants by
    default; the tests shorten the timeouts)."""

    max_connections: int = MAX_CONNECTIONS
    max_uploads: int = MAX_UPLOADS
    head_timeout: float = HEAD_TIMEOUT
    chunk_timeout: float = CHUNK_TIMEOUT
    upload_timeout: float = UPLOAD_TIMEOUT
    keep_alive: int = KEEP_ALIVE_TIMEOUT


__all__ = [
    "CHUNK_TIMEOUT",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "HEAD_TIMEOUT",
    "KEEP_ALIVE_TIMEOUT",
    "LOOPBACK_NAMES",
    "MAX_CONNECTIONS",
    "MAX_QUEUE",
    "MAX_SECONDS",
    "MAX_SHOWN_WINDOWS",
    "MAX_UPLOADS",
    "MAX_UPLOAD_BYTES",
    "PORTRAIT_PX",
    "UPLOAD_TIMEOUT",
    "UPSCALED_PX",
    "Limits",
    "missing_extra",
]

EXTRA_MODULES = ("fastapi", "uvicorn", "python_multipart")


def missing_extra() -> str | None:
    """``None`` when the ``web`` extra is installed, else a one-line message saying how to
    install it."""
    import importlib.util

    def absent(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is None
        except (ImportError, ValueError):  # a module set to None, a broken parent package
            return True

    missing = [name for name in EXTRA_MODULES if absent(name)]
    if not missing:
        return None
    names = ", ".join(name.replace("_", "-") for name in missing)
    return (
        f"the web page needs {names} (the 'web' extra): pip install -e '.[web]' from the "
        "repository's root, or pip install 'speech2face[web]'"
    )
