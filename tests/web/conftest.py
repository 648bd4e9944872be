"""Fixtures for the web page's tests: the real server (uvicorn, in a thread of this process)
on a free port of 127.0.0.1, serving the tiny voice checkpoint of the inference tests, and
a small evaluation gallery made of synthetic voices."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.inference.conftest import voice

RATE = 16_000
UPLOAD_LIMIT = 1024 * 1024  # 1 MB: a voice of 8 s is 256 kB, the oversized file 1.5 MB


@dataclass
class Server:
    """A running ``create_app`` on 127.0.0.1 (``url`` ends with ``/``)."""

    url: str
    app: object
    engine: object
    tmp_root: Path
    _server: object
    _thread: threading.Thread

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)

    def wait_ready(self, timeout: float = 60.0) -> dict:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = httpx.get(self.url + "api/status", timeout=10).json()
            if status["state"] != "loading":
                return status
            time.sleep(0.05)
        raise AssertionError(f"the model did not load in {timeout} s")


def start_server(
    engine, gallery=None, tmp_root: Path | None = None, limits=None, **kwargs
) -> Server:
    """``create_app(engine, ...)`` served by uvicorn in a daemon thread on a free port, with
    ``s2f-serve``'s uvicorn settings and ``limits`` (``Limits()`` when ``None``)."""
    import uvicorn

    from speech2face.web import Limits
    from speech2face.web.app import create_app
    from speech2face.web.server import uvicorn_config

    limits = limits or Limits()
    app = create_app(engine, gallery, tmp_root=tmp_root, limits=limits, **kwargs)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    config = uvicorn_config(app, limits, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="uvicorn-test", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("the test server did not start")
        time.sleep(0.02)
    return Server(f"http://127.0.0.1:{port}/", app, engine, tmp_root, server, thread)


def write_voice(path: Path, seconds: float = 4.0, seed: int = 0, rate: int = RATE) -> Path:
    sf.write(path, voice(seconds, rate, seed), rate, subtype="PCM_16")
    return path


@pytest.fixture(scope="session")
def voices(tmp_path_factory) -> Path:
    """A directory of voice files: ``voice.wav`` (4 s), ``long.wav`` (8 s, two windows of
    the tiny model's 3 s and more), ``voice.flac``, ``voice.webm`` (Opus, what Chromium's
    recorder sends) and ``voice.m4a`` (AAC)."""
    from tests.media import write_av

    folder = tmp_path_factory.mktemp("voices")
    write_voice(folder / "voice.wav")
    write_voice(folder / "long.wav", 8.0, seed=1)
    sf.write(folder / "voice.flac", voice(4.0, 22_050, 2), 22_050)
    write_av(folder / "voice.webm", voice(4.0, 48_000, 3), 48_000, codec="libopus")
    write_av(folder / "voice.m4a", voice(4.0, 44_100, 4), 44_100, codec="aac")
    return folder


@pytest.fixture(scope="session")
def evaluation(tmp_path_factory) -> Path:
    """An evaluation's output directory as ``s2f-eval`` writes it, with a gallery of two
    synthetic voices (and an entry pointing outside it, which must be left out)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("eval")
    media = root / "media" / "gallery"
    media.mkdir(parents=True)
    rng = np.random.default_rng(0)
    entries = []
    for number in range(2):
        stem = f"{number:03d}"
        write_voice(media / f"{stem}.wav", 3.5, seed=10 + number)
        face = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
        Image.fromarray(face).save(media / f"{stem}_true.png")
        entries.append(
            {
                "key": f"clip{number}",
                "speaker": f"spk{number}",
                "labels": {"gender": "female" if number else "male", "age": 30 + number},
                "true": f"media/gallery/{stem}_true.png",
                "audio": f"media/gallery/{stem}.wav",
            }
        )
    entries.append({"key": "x", "speaker": "outside", "true": "../x.png", "audio": "/etc/passwd"})
    (root / "metrics.json").write_text(json.dumps({"version": 1, "gallery": entries}))
    return root


@pytest.fixture(scope="module")
def server(checkpoint, evaluation, tmp_path_factory):  # noqa: F811
    """The real server on the tiny checkpoint, with gender and age, a gallery, a 1 MB
    upload limit, and its temporary directories under ``server.tmp_root``."""
    from speech2face.web.engine import Engine
    from speech2face.web.gallery import find_gallery

    tmp_root = tmp_path_factory.mktemp("requests")
    engine = Engine(checkpoint, device="cpu")
    running = start_server(
        engine, find_gallery(evaluation), tmp_root=tmp_root, max_upload_bytes=UPLOAD_LIMIT
    )
    status = running.wait_ready()
    assert status["state"] == "ready", status
    yield running
    running.stop()
