"""An uploaded recording, streamed into a temporary directory and refused past a limit.

A request carries the audio either as the form field ``file`` of a ``multipart/form-data``
body (what the page and ``curl -F file=@voice.wav`` send) or as the whole body (``curl
--data-binary @voice.wav -H 'Content-Type: audio/wav'``). The file is written, chunk by
chunk as it arrives, to ``upload<suffix>`` inside the directory the caller gives (a
per-request temporary directory); the client's file name is never used as a path: only
its suffix, when it is one of the formats ``s2f-infer`` reads, so the right decoder is
tried first (the content type's otherwise), and its base name for messages.

A body larger than the limit is refused with :class:`UploadError` (413) as soon as the
count passes it, before anything past the limit is written; the rest of the body is read
and dropped (up to a few times the limit) so that the client receives the answer instead
of a reset connection.

A client that stops sending is not waited for: an upload is dropped with :class:`UploadError`
(408) when no byte has arrived for :attr:`~speech2face.web.Limits.chunk_timeout` seconds, or
when the whole body has taken more than :attr:`~speech2face.web.Limits.upload_timeout`
(the same bounds hold for a body being read and dropped); its temporary file goes with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speech2face.errors import S2FError
from speech2face.web import Limits

__all__ = ["FIELD", "Received", "UploadError", "display_name", "receive", "suffix_for"]

FIELD = "file"  # the form field holding the audio
FORM_SLACK = 64 * 1024  # multipart headers and boundaries allowed on top of the file
NO_FILE = (
    f"no file in the request: send the audio as the form field '{FIELD}' of a "
    "multipart/form-data body, or as the request's body"
)
DRAIN_FACTOR = 4  # read (and drop) at most this many limits of an oversized body
CONTENT_TYPES = {
    "audio/wav": ".wav",
    "audio/wave": ".wav",
    "audio/x-wav": ".wav",
    "audio/vnd.wave": ".wav",
    "audio/flac": ".flac",
    "audio/x-flac": ".flac",
    "audio/ogg": ".ogg",
    "audio/opus": ".opus",
    "audio/mpeg": ".mp3",
    "audio/mp3": ".mp3",
    "audio/mp4": ".m4a",
    "audio/x-m4a": ".m4a",
    "audio/aac": ".aac",
    "video/mp4": ".mp4",
    "audio/webm": ".webm",
    "video/webm": ".webm",
    "video/quicktime": ".mov",
}


class UploadError(S2FError, ValueError):
    """A request whose audio cannot be taken: ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Received:
    path: Path  # the audio, inside the caller's directory
    name: str  # what messages call it: the client's base name, or "the uploaded file"
    size: int  # bytes


def display_name(filename: str | None, fallback: str = "the uploaded file") -> str:
    """A client's file name fit for a message: its base name, printable, at most 80
    characters (the page shows it as text, never as HTML)."""
    if not filename:
        return fallback
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()[:80]
    return base or fallback


def suffix_for(filename: str | None, content_type: str | None) -> str:
    """The suffix to save an upload with: the file name's when ``s2f-infer`` reads that
    format, else the content type's, else none (FFmpeg then finds the format itself)."""
    from speech2face.cli.infer import MEDIA_SUFFIXES

    if filename:
        base = display_name(filename, "")
        dot = base.rfind(".")
        suffix = base[dot:].lower() if dot > 0 else ""
        if suffix in MEDIA_SUFFIXES:
            return suffix
    if content_type:
        kind = content_type.split(";", 1)[0].strip().lower()
        return CONTENT_TYPES.get(kind, "")
    return ""


def _megabytes(size: int) -> str:
    return f"{size / 2**20:g} MB"


def too_large(name: str, limit: int) -> UploadError:
    return UploadError(
        f"{name} is larger than the {_megabytes(limit)} limit: send a shorter recording "
        "(a minute of speech is plenty)",
        413,
    )


async def body(request: Any, limits: Limits) -> AsyncIterator[bytes]:
    """The chunks of ``request``'s body as they arrive; raises :class:`UploadError` (408)
    when the next chunk takes more than ``limits.chunk_timeout`` seconds, or the body more
    than ``limits.upload_timeout`` in all."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limits.upload_timeout
    chunks = request.stream().__aiter__()
    while True:
        wait = min(limits.chunk_timeout, deadline - loop.time())
        try:
            if wait <= 0:
                raise TimeoutError
            chunk = await asyncio.wait_for(anext(chunks), wait)
        except StopAsyncIteration:
            return
        except TimeoutError:
            if loop.time() >= deadline:
                raise UploadError(
                    f"the upload took longer than {limits.upload_timeout:g} s: send a shorter "
                    "recording, or over a faster connection",
                    408,
                ) from None
            raise UploadError(
                f"the upload stalled: nothing arrived for {limits.chunk_timeout:g} s", 408
            ) from None
        yield chunk


async def receive(
    request: Any,
    folder: Path,
    limit: int,
    filename: str | None = None,
    limits: Limits | None = None,
) -> Received:
    """Stream the audio of ``request`` (a Starlette request) into ``folder``; raises
    :class:`UploadError` (400 no file or an empty one, 413 over ``limit`` bytes, 408 a
    client too slow for ``limits``)."""
    limits = limits or Limits()
    content_type = request.headers.get("content-type", "")
    if content_type.lower().startswith("application/x-www-form-urlencoded"):
        await _drain(request, limit, limits=limits)
        raise UploadError(NO_FILE)
    length = request.headers.get("content-length")
    multipart = content_type.lower().startswith("multipart/form-data")
    allowed = limit + (FORM_SLACK if multipart else 0)
    try:
        declared = int(length) if length is not None else None
    except ValueError:
        raise UploadError("the request's Content-Length is not a number") from None
    if declared is not None and declared > allowed:
        await _drain(request, limit, limits=limits)
        raise too_large(display_name(filename), limit)
    if multipart:
        sink = _FormSink(folder, limit)
        parser = _form_parser(content_type, sink)
        total = 0
        try:
            async for chunk in body(request, limits):
                total += len(chunk)
                if total <= allowed:
                    _feed(parser, chunk)
                if total > allowed or sink.over:
                    sink.over = True
                    sink.close()
                    await _drain(request, limit, total, limits)
                    raise too_large(sink.name, limit)
            _feed(parser, None)
        finally:
            sink.close()
        if sink.path is None:
            raise UploadError(NO_FILE)
        path, name, size = sink.path, sink.name, sink.size
    else:
        name = display_name(filename)
        path = folder / f"upload{suffix_for(filename, content_type)}"
        size = 0
        with open(path, "wb") as out:
            async for chunk in body(request, limits):
                size += len(chunk)
                if size > limit:
                    out.close()
                    path.unlink(missing_ok=True)
                    await _drain(request, limit, size, limits)
                    raise too_large(name, limit)
                out.write(chunk)
    if size == 0:
        raise UploadError(f"{name} is empty (0 bytes): nothing to draw from")
    return Received(path, name, size)


async def _drain(request: Any, limit: int, read: int = 0, limits: Limits | None = None) -> None:
    """Read and drop what is left of the body, up to ``DRAIN_FACTOR * limit`` bytes in all
    and within ``limits``' timeouts, so the client gets the answer; past that the
    connection is closed on it."""
    try:
        async for chunk in body(request, limits or Limits()):
            read += len(chunk)
            if read > DRAIN_FACTOR * limit:
                return
    except Exception:  # the client went away or stalled, or the stream was consumed already
        return


class _FormSink:
    """Callbacks of python-multipart's parser: the first part with a file name (or named
    :data:`FIELD`) goes to ``folder/upload<suffix>``; other parts are dropped."""

    def __init__(self, folder: Path, limit: int) -> None:
        self.folder = folder
        self.limit = limit
        self.path: Path | None = None
        self.name = "the uploaded file"
        self.size = 0
        self.over = False
        self._out: Any = None
        self._headers: dict[bytes, bytes] = {}
        self._field = b""
        self._value = b""

    def on_part_begin(self) -> None:
        self._headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._field.strip().lower()] = self._value.strip()
        self._field, self._value = b"", b""

    def on_headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        field = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        if self.path is not None or (filename is None and field != FIELD):
            return
        client = filename.decode("utf-8", "replace") if filename is not None else None
        self.name = display_name(client)
        kind = self._headers.get(b"content-type", b"").decode("latin-1")
        self.path = self.folder / f"upload{suffix_for(client, kind)}"
        self._out = open(self.path, "wb")  # noqa: SIM115 (closed by on_part_end or close)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._out is None or self.over:
            return
        self.size += end - start
        if self.size > self.limit:
            self.over = True
            return
        self._out.write(data[start:end])

    def on_part_end(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    def close(self) -> None:
        self.on_part_end()
        if self.over and self.path is not None:
            self.path.unlink(missing_ok=True)


def _feed(parser: Any, chunk: bytes | None) -> None:
    """Give the parser a chunk (``None``: the end), a malformed body as :class:`UploadError`."""
    from python_multipart.exceptions import MultipartParseError

    try:
        if chunk is None:
            parser.finalize()
        else:
            parser.write(chunk)
    except MultipartParseError as error:
        raise UploadError(f"the request's form data is malformed: {error}") from None


def _form_parser(content_type: str, sink: _FormSink) -> Any:
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise UploadError("a multipart/form-data request without a boundary")
    callbacks = {
        name: getattr(sink, name)
        for name in (
            "on_part_begin",
            "on_part_data",
            "on_part_end",
            "on_header_field",
            "on_header_value",
            "on_header_end",
            "on_headers_finished",
        )
    }
    return MultipartParser(boundary, callbacks)
