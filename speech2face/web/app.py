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

Errors are JSON ``{"error": "<one line>"}``, FastAPI's own included: 400 a malformed request
(a parameter of the wrong type) or an empty file, 403 a POST from another site's page
(its ``Origin``), 404 nothing there, 405 a method the route does not take, 408 an upload
that stalled or took too long, 413 a file over the size limit, 415 a POST whose body is no
upload (``text/plain``, a form without a file), 421 a ``Host`` the server does not answer
to, 422 a file that gives no portrait (not audio, silent, too short), 503 the model is
loading, failed to load, or too many requests wait, 500 anything else (logged with its
traceback; the server keeps serving). Answers never hold an absolute path
(:mod:`speech2face.web.paths`). FastAPI's ``/docs`` and ``/redoc`` (which load their scripts
from a CDN) are off: nothing the page uses comes from outside the server.

Requests from other sites are refused before any route runs (:class:`Guard`): a ``Host``
that is not one of the server's names (DNS rebinding), and a POST whose ``Origin`` is not
the server's own or whose content type is not an upload's.
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
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from speech2face import __version__
from speech2face.errors import S2FError
from speech2face.web import (
    LOOPBACK_NAMES,
    MAX_SHOWN_WINDOWS,
    MAX_UPLOAD_BYTES,
    PORTRAIT_PX,
    UPSCALED_PX,
    Limits,
)
from speech2face.web.engine import Busy, Drawing, Engine, NotReady, png_bytes
from speech2face.web.gallery import Gallery
from speech2face.web.paths import scrub
from speech2face.web.server import HostPolicy, split_host
from speech2face.web.upload import FIELD, UploadError, _drain, receive

__all__ = ["STATIC_DIR", "Guard", "create_app"]

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
# Content types a POST may carry: a form with the file, or the audio itself (or none).
UPLOAD_TYPES = ("multipart/form-data", "application/octet-stream")
UPLOAD_KINDS = ("audio/", "video/")
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
CLOSE = {"Connection": "close"}  # an answer given before the body was read ends the connection


def create_app(
    engine: Engine,
    gallery: Gallery | None = None,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    tmp_root: str | Path | None = None,
    limits: Limits | None = None,
    hosts: HostPolicy | None = None,
) -> FastAPI:
    """The application serving ``engine`` (started with the app, stopped with it).

    Args:
        engine: the model (:class:`Engine`); its loading starts when the app starts.
        gallery: example voices (:func:`speech2face.web.gallery.find_gallery`); none when
            ``None``.
        max_upload_bytes: the largest audio file accepted.
        tmp_root: where per-request temporary directories are made (the system's temporary
            directory when ``None``); each is removed when its request is done.
        limits: uploads received at once and their timeouts (:class:`Limits`).
        hosts: the names the ``Host`` header may give
            (:func:`speech2face.web.server.allowed_hosts`); this machine's loopback names
            when ``None``.
    """
    gallery = gallery if gallery is not None else Gallery()
    limits = limits or Limits()
    hosts = hosts or HostPolicy(set(LOOPBACK_NAMES))
    uploads = asyncio.Semaphore(max(limits.max_uploads, 1))

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        from speech2face.web.server import OutOfFiles

        asyncio.get_running_loop().set_exception_handler(OutOfFiles())
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
    app.state.limits = limits

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        path = request.url.path[:200]
        if error.status_code == 404:
            message = f"nothing at {path}"
        elif error.status_code == 405:
            allowed = (error.headers or {}).get("Allow", "")
            message = f"{request.method} is not allowed on {path}" + (
                f" (only {allowed})" if allowed else ""
            )
        else:
            message = " ".join(str(error.detail).split())
        # Not _error: the message names the URL's path, which is no file's.
        return JSONResponse({"error": message}, error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> Response:
        return _error(400, _validation_message(error))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> Response:
        log.exception("unexpected error")
        return _error(500, f"an unexpected error ({type(error).__name__})", CLOSE)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable) -> Response:
        response = await call_next(request)
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        return response

    app.add_middleware(Guard, hosts=hosts)  # outside security_headers: refusals come first
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
            await _drain(request, max_upload_bytes, limits=limits)
            raise
        try:  # wait a moment for one of the uploads being received to end
            await asyncio.wait_for(uploads.acquire(), limits.chunk_timeout)
        except TimeoutError:
            raise Busy(
                f"the server is busy ({limits.max_uploads} uploads are arriving at once): "
                "try again in a moment"
            ) from None
        folder = None
        handed = False
        try:
            try:
                folder = tempfile.TemporaryDirectory(prefix="s2f-serve-", dir=tmp_root)
                received = await receive(
                    request, Path(folder.name), max_upload_bytes, filename, limits
                )
            finally:
                uploads.release()
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
            if folder is not None and not handed:
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
            await _drain(request, max_upload_bytes, limits=limits)
            return _error(
                400, f"size must be between 1 and {MAX_PNG_SIZE} pixels, got {size}", CLOSE
            )

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
        return _error(error.status, str(error), CLOSE)
    except (NotReady, Busy) as error:
        return _error(503, str(error), {"Retry-After": "2", **CLOSE})
    except S2FError as error:
        return _error(422, " ".join(str(error).split()), CLOSE)
    except ClientDisconnect:  # the visitor left mid-upload: no one to answer
        return _error(400, "the upload was interrupted", CLOSE)
    except Exception as error:
        log.exception("unexpected error")
        return _error(
            500,
            f"an unexpected error ({type(error).__name__}); the server's terminal shows it. "
            "Try another file",
            CLOSE,
        )
    return respond(result)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON error ``{"error": message}``, in one line and without absolute paths."""
    line = scrub(" ".join(message.split()))
    return JSONResponse({"error": line}, status_code=status, headers=headers)


def _validation_message(error: RequestValidationError) -> str:
    parts = []
    for problem in error.errors()[:3]:
        where = [str(part) for part in problem.get("loc", ()) if part not in ("query", "path")]
        name = ".".join(where) or "the request"
        parts.append(f"{name}: {problem.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request is malformed"


class Guard:
    """ASGI middleware refusing requests from other sites, before any route runs: a
    ``Host`` that ``hosts`` does not allow (421), and a POST (PUT, PATCH, DELETE) whose
    ``Origin`` is another site's or whose ``Sec-Fetch-Site`` says cross-site (403), or whose
    content type is not an upload's (415): a form with the file, audio or video, bytes, or
    none. Each refusal is ``{"error": ...}`` and closes the connection."""

    def __init__(self, app: Any, hosts: HostPolicy) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, message = refusal
        await _error(status, message, CLOSE)(scope, receive, send)

    def refusal(self, scope: dict) -> tuple[int, str] | None:
        headers = Headers(scope=scope)
        host_header = headers.get("host")
        if not host_header:
            return 400, "the request has no Host header"
        host, port = split_host(host_header)
        if not self.hosts.allows(host):
            shown = "".join(ch for ch in host if ch.isprintable())[:100]
            return 421, (
                f"this server does not answer to the host name {shown!r}: open it as "
                "http://127.0.0.1 or http://localhost (s2f-serve --allow-host NAME adds a name)"
            )
        if scope["method"] not in UNSAFE_METHODS:
            return None
        origin = headers.get("origin")
        if origin is not None and not _same_origin(origin, scope["scheme"], host, port):
            return 403, "a request from another site's page is refused"
        if headers.get("sec-fetch-site", "").lower() == "cross-site":
            return 403, "a request from another site's page is refused"
        kind = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if kind and kind not in UPLOAD_TYPES and not kind.startswith(UPLOAD_KINDS):
            return 415, (
                f"a body of type {kind[:60]!r} is no upload: send the audio as the form field "
                f"'{FIELD}' of a multipart/form-data body, or as the body with an audio/* or "
                "application/octet-stream type"
            )
        return None


def _same_origin(origin: str, scheme: str, host: str, port: str) -> bool:
    """Whether ``origin`` (an ``Origin`` header) is the page's own: the scheme, host and
    port the request was sent to."""
    try:
        parts = urlsplit(origin.strip())
        origin_port = parts.port
    except ValueError:
        return False
    default = 443 if scheme == "https" else 80
    try:
        request_port = int(port) if port else default
    except ValueError:
        return False
    return (
        parts.scheme == scheme
        and (parts.hostname or "").removesuffix(".") == host.lower().removesuffix(".")
        and (origin_port or default) == request_port
    )


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
