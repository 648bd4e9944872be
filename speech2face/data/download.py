"""Fetching AVSpeech segments with yt-dlp's Python API (no shell, one segment at a time).

Only the segment's time range is downloaded (``download_ranges``), cut on exact times by
FFmpeg (``force_keyframes_at_cuts``) so the file starts at the segment's start. IDs are
validated against ``^[A-Za-z0-9_-]{11}$`` before they reach a URL or a file name. Attempts
are bounded (``retries``); errors that retrying cannot fix (video removed, private, age
restricted) stop at once. A pause after each download keeps the load polite: at least
``sleep_seconds``, and long enough that the download and the pause together average no more
than ``rate_limit`` bytes/s (``size / rate_limit - elapsed``). The cap is enforced by that
pause, not by yt-dlp: for a time range yt-dlp hands the transfer to FFmpeg, which ignores
yt-dlp's own ``ratelimit``, so a single download may burst above the cap.

Prerequisites (:func:`check_prerequisites`): an FFmpeg executable (imageio-ffmpeg ships
one) and, for YouTube, a JavaScript runtime yt-dlp supports (deno >= 2.3, node >= 22,
bun >= 1.2.11 or quickjs) plus its challenge-solver scripts (the ``yt-dlp-ejs`` package).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speech2face.data.keys import VIDEO_EXTENSIONS, YOUTUBE_ID, is_safe_key
from speech2face.errors import S2FError

__all__ = [
    "DownloadError",
    "DownloadOptions",
    "Downloader",
    "check_prerequisites",
    "ffmpeg_executable",
]

# yt-dlp error texts that no retry can fix.
PERMANENT_ERRORS = (
    "video unavailable",
    "private video",
    "has been removed",
    "account associated with this video has been terminated",
    "sign in to confirm your age",
    "not available in your country",
    "this video is not available",
    "http error 404",
    "http error 403",
    "unsupported url",
    "members-only",
)
JS_RUNTIMES = ("deno", "node", "bun", "quickjs")


class DownloadError(Exception):
    """A segment yt-dlp could not fetch (recorded as ``download_failed``)."""


@dataclass(frozen=True)
class DownloadOptions:
    """How segments are fetched.

    Args:
        url_template: page URL of a video, ``{id}`` replaced by the validated YouTube ID.
        format: yt-dlp format selector (video + audio up to 720p by default).
        retries: attempts per segment (at least 1), with exponential back-off.
        rate_limit: bandwidth cap in bytes/s, averaged over each download and the pause
            after it (``None``: no cap); see the module docstring.
        sleep_seconds: the shortest pause after each download attempt.
        socket_timeout: seconds before a stalled connection fails.
        cookies: a cookies.txt for sites that ask for a login.
        js_runtime: ``name`` or ``name:path`` of the JavaScript runtime yt-dlp should use
            for YouTube (``None``: the first of deno, node, bun, quickjs found).
        backoff_seconds: wait before retry n is ``backoff_seconds * 2 ** (n - 1)``.
    """

    url_template: str = "https://www.youtube.com/watch?v={id}"
    format: str = "bv*[height<=720]+ba/b[height<=720]/b"
    retries: int = 3
    rate_limit: int | None = 2_000_000
    sleep_seconds: float = 1.0
    socket_timeout: float = 30.0
    cookies: str | None = None
    js_runtime: str | None = None
    backoff_seconds: float = 2.0

    @property
    def needs_youtube(self) -> bool:
        return "youtube.com" in self.url_template or "youtu.be" in self.url_template


def ffmpeg_executable() -> str | None:
    """FFmpeg for yt-dlp's cuts: imageio-ffmpeg's binary, else one on PATH."""
    try:
        import imageio_ffmpeg

        path = imageio_ffmpeg.get_ffmpeg_exe()
        if path and os.access(path, os.X_OK):
            return path
    except Exception:
        pass
    return shutil.which("ffmpeg")


def _js_runtime(options: DownloadOptions) -> tuple[dict[str, dict[str, Any]] | None, str]:
    """``(yt-dlp js_runtimes option, problem)``: the runtime to use, or what is missing."""
    import yt_dlp  # noqa: F401  (registers the runtimes)
    from yt_dlp.globals import supported_js_runtimes

    if options.js_runtime:
        name, _, path = options.js_runtime.partition(":")
        names = [name]
        paths = {name: path or None}
    else:
        names, paths = list(JS_RUNTIMES), {}
    seen = []
    for name in names:
        runtime_cls = supported_js_runtimes.value.get(name)
        if runtime_cls is None:
            return None, f"yt-dlp does not support the JavaScript runtime '{name}'"
        info = runtime_cls(path=paths.get(name)).info
        if info is None:
            continue
        if not info.supported:
            seen.append(f"{name} {info.version} (too old)")
            continue
        return {name: {"path": info.path}}, ""
    found = f"; found {', '.join(seen)}" if seen else ""
    return None, (
        "a JavaScript runtime for YouTube (install deno >= 2.3 or node >= 22, "
        f"or set js_runtime=name:path){found}"
    )


def check_prerequisites(options: DownloadOptions) -> dict[str, Any]:
    """Raise :class:`S2FError` naming everything missing for downloading; else return the
    extra yt-dlp parameters (FFmpeg location, JavaScript runtime)."""
    missing = []
    params: dict[str, Any] = {}
    try:
        import yt_dlp  # noqa: F401
    except ImportError:
        raise S2FError("download=true needs yt-dlp: pip install yt-dlp") from None
    ffmpeg = ffmpeg_executable()
    if ffmpeg is None:
        missing.append("an ffmpeg executable (pip install imageio-ffmpeg)")
    else:
        params["ffmpeg_location"] = ffmpeg
    if "{id}" not in options.url_template:
        missing.append("'{id}' in url_template")
    if options.retries < 1:
        missing.append("retries >= 1")
    if options.needs_youtube:
        runtimes, problem = _js_runtime(options)
        if runtimes is None:
            missing.append(problem)
        else:
            params["js_runtimes"] = runtimes
        from yt_dlp.dependencies import yt_dlp_ejs

        if yt_dlp_ejs is None:
            missing.append("yt-dlp's YouTube challenge solver (pip install yt-dlp-ejs)")
    if missing:
        raise S2FError("download=true needs " + "; ".join(missing))
    return params


class Downloader:
    """Fetch one segment of one video into a directory (see the module docstring)."""

    def __init__(self, options: DownloadOptions, params: dict[str, Any] | None = None) -> None:
        self.options = options
        self._params = params

    def _ydl_params(self, dest_dir: Path, stem: str, start: float, end: float) -> dict[str, Any]:
        from yt_dlp.utils import download_range_func

        params = self._params if self._params is not None else check_prerequisites(self.options)
        self._params = params
        out: dict[str, Any] = {
            "format": self.options.format,
            "outtmpl": {"default": str(dest_dir / f"{stem}.%(ext)s")},
            "paths": {"home": str(dest_dir), "temp": str(dest_dir)},
            "download_ranges": download_range_func(None, [(start, end)]),
            "force_keyframes_at_cuts": True,
            "merge_output_format": "mp4",
            "noplaylist": True,
            "quiet": True,
            "no_warnings": True,
            "noprogress": True,
            "retries": 1,  # attempts are counted here, with back-off between them
            "fragment_retries": 1,
            "socket_timeout": self.options.socket_timeout,
            "overwrites": True,
            "continuedl": False,
            "nopart": False,
            "restrictfilenames": True,
            "windowsfilenames": True,
            **params,
        }
        if self.options.rate_limit:
            out["ratelimit"] = self.options.rate_limit
        if self.options.cookies:
            out["cookiefile"] = self.options.cookies
        return out

    def fetch(self, video_id: str, start: float, end: float, dest_dir: Path, stem: str) -> Path:
        """Download ``[start, end]`` of ``video_id`` to ``dest_dir/<stem>.<ext>``."""
        import yt_dlp

        if not YOUTUBE_ID.fullmatch(video_id) or not is_safe_key(stem):
            raise DownloadError(f"refusing unsafe ID {video_id[:40]!r}")
        dest_dir = Path(dest_dir)
        dest_dir.mkdir(parents=True, exist_ok=True)
        url = self.options.url_template.replace("{id}", video_id)
        params = self._ydl_params(dest_dir, stem, start, end)
        _use_ffmpeg(params.get("ffmpeg_location"))
        log = _QuietLogger()
        params["logger"] = log
        last_error = "unknown error"
        for attempt in range(1, self.options.retries + 1):
            started = time.monotonic()
            fetched = 0  # bytes of the file written, for the rate limit
            try:
                with yt_dlp.YoutubeDL(params) as ydl:
                    ydl.download([url])
                path = self._result(dest_dir, stem)
                if path is not None:
                    fetched = path.stat().st_size
                    return path
                last_error = "yt-dlp finished but wrote no file"
            except yt_dlp.utils.DownloadError as error:
                last_error = " ".join(str(error).replace("ERROR:", "").split()) or log.last_error
                if any(text in last_error.lower() for text in PERMANENT_ERRORS):
                    break
            except Exception as error:  # yt-dlp's extractors raise many kinds
                last_error = f"{type(error).__name__}: {' '.join(str(error).split())}"
            finally:
                pause = self.pause_seconds(fetched, time.monotonic() - started)
                if pause > 0:
                    _sleep(pause)
            if attempt < self.options.retries:
                _sleep(self.options.backoff_seconds * 2 ** (attempt - 1))
        self._cleanup(dest_dir, stem)
        raise DownloadError(f"{video_id}: {last_error[:300]}")

    def pause_seconds(self, size: int, elapsed: float) -> float:
        """The pause after a download of ``size`` bytes that took ``elapsed`` seconds:
        ``max(sleep_seconds, size / rate_limit - elapsed)``."""
        pause = max(0.0, self.options.sleep_seconds)
        if self.options.rate_limit:
            pause = max(pause, size / self.options.rate_limit - elapsed)
        return pause

    @staticmethod
    def _result(dest_dir: Path, stem: str) -> Path | None:
        for ext in VIDEO_EXTENSIONS:
            path = dest_dir / f"{stem}{ext}"
            if path.is_file() and path.stat().st_size > 0:
                return path
        return None

    @staticmethod
    def _cleanup(dest_dir: Path, stem: str) -> None:
        """Remove what a failed attempt left (``<stem>.*``: parts, per-format pieces)."""
        for leftover in dest_dir.glob(f"{stem}.*"):  # stem is [A-Za-z0-9_-]: no wildcards
            if leftover.is_file():
                leftover.unlink(missing_ok=True)


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


class _QuietLogger:
    """Collects yt-dlp's messages instead of printing them over the progress bar."""

    def __init__(self) -> None:
        self.last_error = ""

    def debug(self, message: str) -> None:
        pass

    def info(self, message: str) -> None:
        pass

    def warning(self, message: str) -> None:
        pass

    def error(self, message: str) -> None:
        self.last_error = " ".join(message.replace("ERROR:", "").split())


def _use_ffmpeg(path: str | None) -> None:
    """Point yt-dlp's range downloader at ``path``: its availability check ignores the
    ``ffmpeg_location`` parameter and reads a context variable the command line sets."""
    if not path:
        return
    from yt_dlp.postprocessor.ffmpeg import FFmpegPostProcessor

    location = getattr(FFmpegPostProcessor, "_ffmpeg_location", None)
    if location is not None:
        location.set(path)
