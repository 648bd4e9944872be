"""The FastAPI application of ``s2f-serve``: the page and its small JSON API.

Routes (``docs/web.md`` has the details):

- ``GET /``: the page; ``GET /static/...``: its CSS, JavaScript and icon (package data);
- ``GET /api/status``: ``loading``, ``ready`` or ``error``, the model, the limits;
- ``POST /api/portrait``: audio in (form field ``file``, or the body), JSON out: the
  portrait (PNG, 224 and 448 pixels), gender and age, the spectrogram (PNG), windows,
  seconds;
- ``POST /api/portrait.png``: the same audio in, the portrait alone as a PNG out;
- ``GET /api/gallery``, ``/api/gallery/{i}/audio.wav``, ``/true.png``, ``/portrait.png``:
  the example voices.

Errors are JSON ``{"error": "<one line>"}``: 400 a malformed request or an empty file, 413 a
file over the size limit, 422 a file that gives no portrait (not audio, silent, too short),
503 the model is loading, failed to load, or too many requests wait, 500 anything else
(logged with its traceback; the server keeps serving). Answers never hold an absolute path
(:mod:`speech2face.web.paths`). FastAPI's ``/docs`` and ``/redoc``
(which load their scripts from a CDN) are off: nothing the page uses comes from outside
the server.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.requests import ClientDisconnect

from speech2face import __version__
from speech2face.errors import S2FError
from speech2face.web import MAX_SHOWN_WINDOWS, MAX_UPLOAD_BYTES, PORTRAIT_PX, UPSCALED_PX
from speech2face.web.engine import Busy, Drawing, Engine, NotReady, png_bytes
from speech2face.web.gallery import Gallery
from speech2face.web.paths import scrub
from speech2face.web.upload import UploadError, _drain, receive

__all__ = ["STATIC_DIR", "create_app"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
log = logging.getLogger("speech2face.web")

# The page loads nothing from elsewhere, and the browser is told to refuse it if it tried.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
        "connect-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
MAX_PNG_SIZE = 2048  # the largest ?size= of /api/portrait.png


def create_app(
    engine: Engine,
    gallery: Gallery | None = None,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    tmp_root: str | Path | None = None,
) -> FastAPI:
    """The application serving ``engine`` (started with the app, stopped with it).

    Args:
        engine: the model (:class:`Engine`); its loading starts when the app starts.
        gallery: example voices (:func:`speech2face.web.gallery.find_gallery`); none when
            ``None``.
        max_upload_bytes: the largest audio file accepted.
        tmp_root: where per-request temporary directories are made (the system's temporary
            directory when ``None``); each is removed when its request is done.
    """
    gallery = gallery if gallery is not None else Gallery()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        engine.start()
        yield
        engine.close()

    app = FastAPI(
        title="speech2face",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.state.gallery = gallery

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable) -> Response:
        response = await call_next(request)
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        return response

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")

    @app.get("/api/status")
    async def status() -> dict[str, Any]:
        from speech2face.inference import MIN_SECONDS

        return {
            **engine.status(),
            "version": __version__,
            "limits": {
                "max_upload_bytes": max_upload_bytes,
                "max_seconds": engine.max_seconds,
                "min_seconds": MIN_SECONDS,
            },
            "gallery": len(gallery.examples),
        }

    async def drawn(
        request: Request,
        filename: str | None,
        finish: Callable[[Drawing, str], Any],
        extras: bool = True,
    ) -> Any:
        """Receive the upload into its own temporary directory, queue the drawing and
        ``finish(drawing, name)`` on the worker; the directory goes when the job is done."""
        try:
            engine.ready_or_raise()
        except NotReady:
            await _drain(request, max_upload_bytes)
            raise
        folder = tempfile.TemporaryDirectory(prefix="s2f-serve-", dir=tmp_root)
        handed = False
        try:
            received = await receive(request, Path(folder.name), max_upload_bytes, filename)
            queued = time.perf_counter()

            def job() -> Any:
                waited = time.perf_counter() - queued
                drawing = engine.draw(received.path, received.name, extras)
                log.info(
                    "%s: %d window%s, %.1f s of voice, drawn in %.2f s (waited %.2f s)",
                    received.name,
                    drawing.windows,
                    "" if drawing.windows == 1 else "s",
                    drawing.seconds,
                    drawing.elapsed,
                    waited,
                )
                return finish(drawing, received.name) | {"waited_s": round(waited, 2)}

            future = engine.submit(job, cleanup=folder.cleanup)
            handed = True
            return await asyncio.wrap_future(future)
        finally:
            if not handed:
                folder.cleanup()

    @app.post("/api/portrait")
    async def portrait(request: Request, filename: str | None = None) -> Response:
        def finish(drawing: Drawing, name: str) -> dict[str, Any]:
            model = engine.model
            return {
                "name": name,
                "portrait": _data_url(png_bytes(drawing.portrait, PORTRAIT_PX)),
                "upscaled": _data_url(png_bytes(drawing.portrait, UPSCALED_PX)),
                "portrait_px": drawing.portrait.width,
                "attributes": drawing.attributes,
                "attributes_note": scrub(model.attributes_note) if model else "",
                "spectrogram": _data_url(drawing.spectrogram),
                "shown_windows": min(drawing.windows, MAX_SHOWN_WINDOWS),
                "windows": drawing.windows,
                "window_seconds": drawing.window_seconds,
                "seconds": round(drawing.seconds, 2),
                "duration": round(drawing.duration, 2),
                "truncated": drawing.truncated,
                "elapsed_s": round(drawing.elapsed, 3),
            }

        return await _answer(lambda: drawn(request, filename, finish), JSONResponse)

    @app.post("/api/portrait.png")
    async def portrait_png(
        request: Request, filename: str | None = None, size: int | None = None
    ) -> Response:
        if size is not None and not 1 <= size <= MAX_PNG_SIZE:
            await _drain(request, max_upload_bytes)
            return _error(400, f"size must be between 1 and {MAX_PNG_SIZE} pixels, got {size}")

        def finish(drawing: Drawing, name: str) -> dict[str, Any]:
            return {
                "png": png_bytes(drawing.portrait, size),
                "windows": drawing.windows,
                "seconds": drawing.seconds,
            }

        def png(result: dict[str, Any]) -> Response:
            headers = {
                "X-S2F-Windows": str(result["windows"]),
                "X-S2F-Seconds": f"{result['seconds']:.2f}",
            }
            return Response(result["png"], media_type="image/png", headers=headers)

        return await _answer(lambda: drawn(request, filename, finish, extras=False), png)

    @app.get("/api/gallery")
    async def gallery_list() -> dict[str, Any]:
        return gallery.public()

    def example(index: int):
        if not 0 <= index < len(gallery.examples):
            return None
        return gallery.examples[index]

    def example_file(index: int, field: str, media_type: str) -> Response:
        found = example(index)
        if found is None:
            return _error(404, f"no example voice {index}")
        return FileResponse(getattr(found, field), media_type=media_type)

    @app.get("/api/gallery/{index}/audio.wav")
    async def gallery_audio(index: int) -> Response:
        return example_file(index, "audio", "audio/wav")

    @app.get("/api/gallery/{index}/true.png")
    async def gallery_true(index: int) -> Response:
        return example_file(index, "true_face", "image/png")

    @app.get("/api/gallery/{index}/portrait.png")
    async def gallery_portrait(index: int) -> Response:
        found = example(index)
        if found is None:
            return _error(404, f"no example voice {index}")

        async def run() -> bytes:
            cached = engine.cache.get(("gallery", index))
            if cached is not None:
                return cached
            name = f"example voice {index + 1} ({found.speaker})"
            future = engine.submit(
                lambda: engine.cached_portrait(("gallery", index), found.audio, name)
            )
            return await asyncio.wrap_future(future)

        def png(data: bytes) -> Response:
            return Response(data, media_type="image/png", headers={"Cache-Control": "no-cache"})

        return await _answer(run, png)

    return app


async def _answer(run: Callable[[], Any], respond: Callable[[Any], Response]) -> Response:
    """``respond(await run())``, or the JSON error that stands for what went wrong."""
    try:
        result = await run()
    except UploadError as error:
        return _error(error.status, str(error))
    except (NotReady, Busy) as error:
        return _error(503, str(error), {"Retry-After": "2"})
    except S2FError as error:
        return _error(422, " ".join(str(error).split()))
    except ClientDisconnect:  # the visitor left mid-upload: no one to answer
        return _error(400, "the upload was interrupted")
    except Exception as error:
        log.exception("unexpected error")
        return _error(
            500,
            f"an unexpected error ({type(error).__name__}); the server's terminal shows it. "
            "Try another file",
        )
    return respond(result)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON error ``{"error": message}``, in one line and without absolute paths."""
    line = scrub(" ".join(message.split()))
    return JSONResponse({"error": line}, status_code=status, headers=headers)


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
