"""The web server against real HTTP on 127.0.0.1: audio in, portraits out; each bad input
gets its message and the server keeps serving; a burst of requests; nothing left behind."""

from __future__ import annotations

import base64
import io
import shutil
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from tests.web.conftest import RATE, UPLOAD_LIMIT, start_server, write_voice

PNG = b"\x89PNG\r\n\x1a\n"


def post(server, path: str, name: str, data: bytes, kind: str = "application/octet-stream"):
    files = {"file": (name, data, kind)}
    return httpx.post(server.url + path, files=files, timeout=120)


def image_of(data_url: str) -> Image.Image:
    head, _, payload = data_url.partition(",")
    assert head == "data:image/png;base64"
    return Image.open(io.BytesIO(base64.b64decode(payload)))


def still_serving(server, voices) -> None:
    """The page, the status and a good upload all still work."""
    page = httpx.get(server.url, timeout=10)
    assert page.status_code == 200 and "speech2face" in page.text
    assert httpx.get(server.url + "api/status", timeout=10).json()["state"] == "ready"
    done = post(server, "api/portrait.png", "voice.wav", (voices / "voice.wav").read_bytes())
    assert done.status_code == 200 and done.content.startswith(PNG)


def assert_no_leftovers(server) -> None:
    assert list(server.tmp_root.iterdir()) == [], "a request left files behind"


# ---------------------------------------------------------------------- the page


def test_the_page_and_its_assets_are_local(server):
    page = httpx.get(server.url, timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    text = page.text
    assert "http://" not in text and "https://" not in text and "//cdn" not in text
    for asset in ("static/app.css", "static/app.js", "static/favicon.svg", "favicon.ico"):
        response = httpx.get(server.url + asset, timeout=10)
        assert response.status_code == 200, asset
        assert b"https://" not in response.content and b"@import" not in response.content
    for path in ("docs", "redoc", "openapi.json"):  # FastAPI's pages load a CDN's scripts
        assert httpx.get(server.url + path, timeout=10).status_code == 404


def test_status_describes_the_model_and_the_limits(server, checkpoint):
    status = httpx.get(server.url + "api/status", timeout=10).json()
    assert status["state"] == "ready"
    assert status["model"]["checkpoint"] == status["checkpoint"] == checkpoint.name
    assert status["model"]["portrait_px"] == 56  # the tiny decoder's
    assert status["model"]["window_seconds"] == 3.0
    assert status["limits"]["max_upload_bytes"] == UPLOAD_LIMIT
    assert status["attributes"]["available"] is True
    assert status["gallery"] == 2


# ---------------------------------------------------------------------- portraits


def test_a_wav_file_gives_a_png(server, voices):
    response = post(server, "api/portrait.png", "voice.wav", (voices / "voice.wav").read_bytes())
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.content.startswith(PNG)
    image = Image.open(io.BytesIO(response.content))
    assert image.size == (56, 56) and image.mode == "RGB"
    assert response.headers["x-s2f-windows"] == "2"  # 4 s in windows of 3 s, hop 1.5 s
    # The body itself (curl --data-binary) and a size, as s2f-infer --size.
    raw = httpx.post(
        server.url + "api/portrait.png?size=300&filename=voice.wav",
        content=(voices / "voice.wav").read_bytes(),
        headers={"content-type": "audio/wav"},
        timeout=60,
    )
    assert raw.status_code == 200, raw.text
    assert Image.open(io.BytesIO(raw.content)).size == (300, 300)
    assert_no_leftovers(server)


def test_the_page_gets_portrait_attributes_and_spectrogram(server, voices, checkpoint):
    from speech2face.inference import Portraitist

    response = post(server, "api/portrait", "long.wav", (voices / "long.wav").read_bytes())
    assert response.status_code == 200, response.text
    result = response.json()
    assert image_of(result["portrait"]).size == (224, 224)
    assert image_of(result["upscaled"]).size == (448, 448)
    spectrogram = image_of(result["spectrogram"])
    assert spectrogram.width > 400 and spectrogram.height > 150
    assert result["portrait_px"] == 56
    assert result["duration"] == 8.0
    assert result["truncated"] is False
    assert result["attributes"]["gender"] in ("male", "female")
    assert 0 < result["attributes"]["age"] < 120
    assert result["name"] == "long.wav"
    # The same portrait s2f-infer's Portraitist draws from the file.
    reference = Portraitist.from_checkpoint(checkpoint, "cpu").predict(voices / "long.wav")
    assert result["windows"] == reference.windows > 3  # 8 s in windows of 3 s, hop 1.5 s
    assert result["shown_windows"] == 4
    assert result["seconds"] == pytest.approx(reference.seconds, abs=0.01)
    expected = reference.image()
    drawn = np.asarray(image_of(result["portrait"]).resize((56, 56), Image.Resampling.LANCZOS))
    assert np.abs(drawn.astype(int) - np.asarray(expected).astype(int)).mean() < 8


@pytest.mark.parametrize("name", ["voice.flac", "voice.webm", "voice.m4a"])
def test_other_formats(server, voices, name):
    kind = {"voice.webm": "audio/webm;codecs=opus", "voice.m4a": "audio/mp4"}.get(name, "")
    response = post(server, "api/portrait", name, (voices / name).read_bytes(), kind)
    assert response.status_code == 200, response.text
    assert response.json()["windows"] >= 1


def test_a_file_name_with_an_odd_or_no_suffix(server, voices):
    data = (voices / "voice.webm").read_bytes()
    for name in ("../../etc/voice", "blob", "rec.WEBM", "a\\b\\c d.txt"):
        response = post(server, "api/portrait", name, data)
        assert response.status_code == 200, (name, response.text)
    assert_no_leftovers(server)


# ---------------------------------------------------------------------- bad input


def silence_wav(seconds: float) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(int(seconds * RATE)), RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def short_wav(tmp_path) -> bytes:
    return write_voice(tmp_path / "short.wav", 0.5).read_bytes()


BAD = {
    # name: (bytes or a maker, status, words of the message)
    "notes.txt": (b"this is not audio at all, just words\n" * 20, 422, "notes.txt"),
    "empty.wav": (b"", 400, "empty.wav is empty"),
    "short.wav": (short_wav, 422, "s of sound"),
    "quiet.wav": (lambda tmp: silence_wav(3.0), 422, "silent"),
    "big.wav": (lambda tmp: b"\0" * (UPLOAD_LIMIT + 512 * 1024), 413, "larger than the 1 MB limit"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_gets_its_message_and_the_server_keeps_serving(server, voices, tmp_path, name):
    data, status, words = BAD[name]
    data = data(tmp_path) if callable(data) else data
    for path in ("api/portrait", "api/portrait.png"):
        response = post(server, path, name, data)
        assert response.status_code == status, response.text
        message = response.json()["error"]
        assert words in message, message
        assert "\n" not in message
        assert str(server.tmp_root) not in message and "s2f-serve-" not in message
    still_serving(server, voices)
    assert_no_leftovers(server)


def test_an_oversized_body_without_a_length_is_cut_off_while_streaming(server, voices):
    def chunks():
        for _ in range(24):
            yield b"\0" * (64 * 1024)  # 1.5 MB in all, sent chunked

    response = httpx.post(
        server.url + "api/portrait?filename=big.wav",
        content=chunks(),
        headers={"content-type": "audio/wav"},
        timeout=60,
    )
    assert response.status_code == 413
    assert "larger than the 1 MB limit" in response.json()["error"]
    still_serving(server, voices)
    assert_no_leftovers(server)


def test_an_upload_cut_off_midway(server, voices, caplog):
    """A visitor who leaves mid-upload: the partial file is removed, nothing is logged as
    an error, and the server keeps serving."""
    host, port = server.url.removeprefix("http://").rstrip("/").split(":")
    data = (voices / "voice.wav").read_bytes()
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(
            b"POST /api/portrait?filename=voice.wav HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: audio/wav\r\n"
            + f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data[: len(data) // 3]
        )
        time.sleep(0.5)
    deadline = time.monotonic() + 10
    while list(server.tmp_root.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert_no_leftovers(server)
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    still_serving(server, voices)


def test_a_request_without_a_file(server, voices):
    form = {"other": (None, b"x")}  # a multipart form without the file
    response = httpx.post(server.url + "api/portrait", files=form, timeout=10)
    assert response.status_code == 400
    assert "no file in the request" in response.json()["error"]
    response = httpx.post(server.url + "api/portrait", data={"file": "x"}, timeout=10)
    assert response.status_code == 415  # a form without a file is no upload
    assert "form field 'file'" in response.json()["error"]
    response = httpx.post(server.url + "api/portrait.png?size=0", content=b"x", timeout=10)
    assert response.status_code == 400 and "size" in response.json()["error"]
    still_serving(server, voices)


# ---------------------------------------------------------------------- concurrency


def test_a_burst_of_twenty_requests(server, voices):
    data = (voices / "voice.wav").read_bytes()
    began = time.perf_counter()
    with ThreadPoolExecutor(20) as pool:
        responses = list(
            pool.map(lambda i: post(server, "api/portrait", f"voice{i}.wav", data), range(20))
        )
    seconds = time.perf_counter() - began
    assert [r.status_code for r in responses] == [200] * 20, [r.text for r in responses]
    assert all(image_of(r.json()["portrait"]).size == (224, 224) for r in responses)
    assert max(r.json()["waited_s"] for r in responses) > 0  # they queued
    print(f"20 concurrent requests in {seconds:.2f} s")
    assert_no_leftovers(server)


# ---------------------------------------------------------------------- the gallery


def test_the_gallery_plays_voices_and_draws_their_portraits(server, evaluation):
    gallery = httpx.get(server.url + "api/gallery", timeout=10).json()
    assert gallery["source"] == evaluation.name  # its name: no absolute path
    examples = gallery["examples"]
    assert [e["speaker"] for e in examples] == ["spk0", "spk1"]  # the outside entry left out
    first = examples[0]
    assert first["labels"] == {"gender": "male", "age": 30}
    audio = httpx.get(server.url + first["audio"].lstrip("/"), timeout=10)
    assert audio.status_code == 200 and audio.content[:4] == b"RIFF"
    true = httpx.get(server.url + first["true_face"].lstrip("/"), timeout=10)
    assert true.status_code == 200 and true.content.startswith(PNG)
    began = time.perf_counter()
    drawn = httpx.get(server.url + first["portrait"].lstrip("/"), timeout=60)
    first_time = time.perf_counter() - began
    assert drawn.status_code == 200 and drawn.content.startswith(PNG)
    assert Image.open(io.BytesIO(drawn.content)).size == (224, 224)
    began = time.perf_counter()
    again = httpx.get(server.url + first["portrait"].lstrip("/"), timeout=60)
    assert again.content == drawn.content  # kept in memory
    assert time.perf_counter() - began < first_time
    assert httpx.get(server.url + "api/gallery/7/portrait.png", timeout=10).status_code == 404
    assert httpx.get(server.url + "api/gallery/-1/audio.wav", timeout=10).status_code == 404


def test_no_gallery_says_how_to_make_one(tmp_path, monkeypatch):
    from speech2face.web.gallery import GalleryError, find_gallery

    monkeypatch.setenv("S2F_HOME", str(tmp_path / "home"))  # no demo recorded there
    monkeypatch.chdir(tmp_path)
    empty = find_gallery()
    assert empty.examples == [] and "make demo" in empty.note
    with pytest.raises(GalleryError, match="no metrics.json"):
        find_gallery(tmp_path)


def test_the_demos_recorded_gallery_is_found_from_anywhere(evaluation, tmp_path, monkeypatch):
    from speech2face.inference import install_gallery
    from speech2face.web.gallery import find_gallery

    monkeypatch.setenv("S2F_HOME", str(tmp_path / "home"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert find_gallery().examples == []
    install_gallery(evaluation)
    found = find_gallery()
    assert [e.speaker for e in found.examples] == ["spk0", "spk1"]
    # a demo/ here comes first; a recorded evaluation that is gone again gives the note
    (elsewhere / "demo").mkdir()
    shutil.copytree(evaluation, elsewhere / "demo" / "eval")
    assert Path(find_gallery().source).is_relative_to(elsewhere.resolve())
    shutil.rmtree(elsewhere / "demo")
    install_gallery(tmp_path / "gone")
    assert find_gallery().examples == [] and "make demo" in find_gallery().note


# ---------------------------------------------------------------------- the model's states


def test_a_request_while_the_model_loads(checkpoint, voices, tmp_path):
    from speech2face.inference import Portraitist
    from speech2face.web.engine import Engine

    gate = threading.Event()

    def slow_load():
        assert gate.wait(60)
        return Portraitist.from_checkpoint(checkpoint, "cpu")

    engine = Engine(checkpoint, loader=slow_load, attributes=False)
    running = start_server(engine, tmp_root=tmp_path)
    try:
        assert httpx.get(running.url, timeout=10).status_code == 200  # the page at once
        status = httpx.get(running.url + "api/status", timeout=10).json()
        assert status["state"] == "loading"
        data = (voices / "voice.wav").read_bytes()
        for path in ("api/portrait", "api/portrait.png"):
            response = post(running, path, "voice.wav", data)
            assert response.status_code == 503
            assert response.headers["retry-after"] == "2"
            assert "the model is still loading" in response.json()["error"]
        gate.set()
        assert running.wait_ready()["state"] == "ready"
        response = post(running, "api/portrait", "voice.wav", data)
        assert response.status_code == 200, response.text
        assert response.json()["attributes"] is None
        assert "off" in response.json()["attributes_note"]
    finally:
        gate.set()
        running.stop()
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_that_fails_to_load(tmp_path, voices):
    from speech2face.web.engine import Engine

    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    for checkpoint, words in ((tmp_path / "missing.pt", "does not exist"), (broken, "broken.pt")):
        running = start_server(Engine(checkpoint, attributes=False), tmp_root=tmp_path)
        try:
            status = running.wait_ready()
            assert status["state"] == "error" and words in status["message"]
            assert "\n" not in status["message"]
            assert httpx.get(running.url, timeout=10).status_code == 200
            response = post(
                running, "api/portrait", "voice.wav", (voices / "voice.wav").read_bytes()
            )
            assert response.status_code == 503
            assert response.json()["error"].startswith("no model: ") and words in response.text
        finally:
            running.stop()


def test_too_many_waiting_requests_are_told_to_come_back(checkpoint, voices, tmp_path):
    """With room for one waiting job, a third request (one drawing, one waiting) is told
    the server is busy; all three upload directories are removed."""
    from speech2face.web.engine import Engine

    engine = Engine(checkpoint, attributes=False, max_queue=1)
    running = start_server(engine, tmp_root=tmp_path)
    hold = threading.Event()
    try:
        running.wait_ready()
        engine.submit(lambda: hold.wait(60))  # the worker is busy with this
        data = (voices / "voice.wav").read_bytes()
        with ThreadPoolExecutor(2) as pool:
            waiting = pool.submit(post, running, "api/portrait", "voice.wav", data)
            time.sleep(1.0)
            busy = post(running, "api/portrait", "voice.wav", data)
            assert busy.status_code == 503 and "busy" in busy.json()["error"]
            hold.set()
            assert waiting.result().status_code == 200
    finally:
        hold.set()
        running.stop()
    assert list(tmp_path.iterdir()) == []
