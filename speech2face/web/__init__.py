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
- :mod:`speech2face.web.server`: the hosts answered.

The API is documented in ``docs/web.md``. Importing this package does not import FastAPI,
torch or the model: ``s2f-serve --help`` stays instant and works without the extra.
"""

from __future__ import annotations

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

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "LOOPBACK_NAMES",
    "MAX_QUEUE",
    "MAX_SECONDS",
    "MAX_SHOWN_WINDOWS",
    "MAX_UPLOAD_BYTES",
    "PORTRAIT_PX",
    "UPSCALED_PX",
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
