"""Slow and idle clients against the real server on 127.0.0.1, with its timeouts shortened:
a stalled or trickling upload is dropped with its temporary file, connections that send
nothing are closed, uploads received at once are capped."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.web.conftest import start_server

CHUNK_S = 1.0  # the tests' timeouts: a second without a byte,
UPLOAD_S = 3.0  # three for a whole upload,
HEAD_S = 1.5  # and a second and a half for a request's head


@pytest.fixture(scope="module")
def quick(checkpoint, tmp_path_factory):
    """The real server on the tiny checkpoint with short timeouts and two uploads at once."""
    from speech2face.web import Limits
    from speech2face.web.engine import Engine

    limits = Limits(
        max_uploads=2, head_timeout=HEAD_S, chunk_timeout=CHUNK_S, upload_timeout=UPLOAD_S
    )
    tmp_root = tmp_path_factory.mktemp("slow")
    running = start_server(
        Engine(checkpoint, device="cpu", attributes=False), tmp_root=tmp_root, limits=limits
    )
    assert running.wait_ready()["state"] == "ready"
    yield running
    running.stop()


def address(server) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").rstrip("/").split(":")
    return host, int(port)


def begin_upload(server, data: bytes, sent: int) -> socket.socket:
    """A raw connection that sends the head of an upload of ``data`` and ``sent`` bytes
    of it, then nothing."""
    connection = socket.create_connection(address(server), timeout=10)
    connection.sendall(
        b"POST /api/portrait.png?filename=voice.wav HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: audio/wav\r\n" + f"Content-Length: {len(data)}\r\n\r\n".encode()
    )
    connection.sendall(data[:sent])
    return connection


def answer_of(connection: socket.socket, timeout: float) -> bytes:
    """What the server sends until it closes the connection (or ``timeout`` passes)."""
    connection.settimeout(timeout)
    received = b""
    try:
        while chunk := connection.recv(65536):
            received += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return received


def wait_empty(folder, timeout: float) -> float:
    began = time.monotonic()
    while list(folder.iterdir()) and time.monotonic() - began < timeout:
        time.sleep(0.05)
    assert list(folder.iterdir()) == [], "the temporary file of the upload is still there"
    return time.monotonic() - began


def test_a_stalled_upload_is_dropped_with_its_file(quick, voices):
    data = (voices / "long.wav").read_bytes()
    with begin_upload(quick, data, len(data) // 2) as connection:
        time.sleep(0.3)
        assert list(quick.tmp_root.iterdir()), "the upload has its temporary directory"
        began = time.monotonic()
        answer = answer_of(connection, CHUNK_S + 3)
        took = time.monotonic() - began
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b'{"error":"the upload stalled: nothing arrived for 1 s"}' in answer
    assert b"connection: close" in answer.lower()
    assert took < CHUNK_S + 1.5
    wait_empty(quick.tmp_root, 1.0)


def test_a_trickling_upload_is_dropped_after_the_time_for_the_whole(quick, voices):
    data = (voices / "long.wav").read_bytes()
    with begin_upload(quick, data, 1000) as connection:
        began = time.monotonic()
        connection.settimeout(0.1)
        answer = b""
        for position in range(1000, len(data), 200):  # 200 bytes every 0.4 s
            try:
                connection.sendall(data[position : position + 200])
                answer += connection.recv(65536)
            except TimeoutError:
                pass
            except (BrokenPipeError, ConnectionResetError):
                break
            if answer or time.monotonic() - began > UPLOAD_S + 3:
                break
            time.sleep(0.3)
        answer += answer_of(connection, 2)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"took longer than 3 s" in answer
    assert UPLOAD_S - 0.5 < time.monotonic() - began < UPLOAD_S + 3
    wait_empty(quick.tmp_root, 1.0)


def test_connections_that_send_nothing_are_closed(quick):
    connections = [socket.create_connection(address(quick), timeout=10) for _ in range(20)]
    try:
        began = time.monotonic()
        status = httpx.get(quick.url + "api/status", timeout=1)
        assert status.status_code == 200
        for connection in connections:
            assert answer_of(connection, HEAD_S + 2) == b""  # closed, nothing said
        assert time.monotonic() - began < HEAD_S + 2
        # a head sent a byte at a time is closed as well
        with socket.create_connection(address(quick), timeout=10) as slow:
            began = time.monotonic()
            try:
                for byte in b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n":
                    slow.sendall(bytes([byte]))
                    time.sleep(0.1)
            except (BrokenPipeError, ConnectionResetError):
                pass
            assert answer_of(slow, HEAD_S + 2) == b""
            assert time.monotonic() - began < HEAD_S + 1.5
    finally:
        for connection in connections:
            connection.close()


def test_uploads_received_at_once_are_capped(quick, voices):
    """Two stalled uploads hold both places: a third waits a moment, then is told the
    server is busy without a file being written; the two are dropped with theirs."""
    data = (voices / "long.wav").read_bytes()
    stalled = [begin_upload(quick, data, 4096) for _ in range(2)]
    try:
        time.sleep(0.3)
        assert len(list(quick.tmp_root.iterdir())) == 2
        with ThreadPoolExecutor(1) as pool:
            third = pool.submit(
                httpx.post,
                quick.url + "api/portrait.png",
                files={"file": ("voice.wav", data, "audio/wav")},
                timeout=10,
            )
            time.sleep(0.3)
            assert len(list(quick.tmp_root.iterdir())) == 2  # the third is not received
            response = third.result()
        # Either it got a place when a stalled one was dropped, or it was told to wait.
        assert response.status_code in (200, 503), response.text
        if response.status_code == 503:
            assert "uploads are arriving at once" in response.json()["error"]
    finally:
        for connection in stalled:
            connection.close()
    wait_empty(quick.tmp_root, CHUNK_S + 1)
    done = httpx.post(
        quick.url + "api/portrait.png", files={"file": ("v.wav", data, "audio/wav")}, timeout=60
    )
    assert done.status_code == 200
