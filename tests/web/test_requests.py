"""Who the server answers, and how: other sites' names and pages are refused, every error
is ``{"error": "..."}``, and no answer shows an absolute path (the real server on
127.0.0.1)."""

from __future__ import annotations

import os

import httpx
import pytest

from tests.web.test_server import PNG, post


def assert_error(response: httpx.Response, status: int) -> str:
    """The answer is ``status`` with ``{"error": one line}`` and nothing else."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"] and isinstance(body["error"], str), body
    assert body["error"] and "\n" not in body["error"]
    return body["error"]


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:7860", "127.0.0.1.nip.io"])
def test_another_host_name_is_refused(server, host):
    """DNS rebinding: a page of attacker.example whose name now points at 127.0.0.1."""
    for path in ("", "api/status", "api/gallery", "static", "static/app.js"):
        response = httpx.get(server.url + path, headers={"host": host}, timeout=10)
        message = assert_error(response, 421)
        assert "does not answer to the host name" in message
        assert "location" not in response.headers  # /static does not redirect there
        assert "checkpoint" not in response.text
    voice = post(server, "api/portrait.png", "v.wav", b"RIFF")
    assert voice.status_code != 421  # the server's own name still works


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST.", "[::1]", "localhost:1"])
def test_the_servers_own_names_are_answered(server, host):
    response = httpx.get(server.url + "api/status", headers={"host": host}, timeout=10)
    assert response.status_code == 200 and response.json()["state"] == "ready"


def test_a_cross_site_post_is_refused(server, voices):
    data = (voices / "voice.wav").read_bytes()
    files = {"file": ("voice.wav", data, "audio/wav")}
    url = server.url + "api/portrait.png"
    own = server.url.rstrip("/")
    for origin in ("http://attacker.example", "null", own.replace("127.0.0.1", "localhost")):
        response = httpx.post(url, files=files, headers={"origin": origin}, timeout=10)
        assert "another site" in assert_error(response, 403), origin
    port = int(own.rsplit(":", 1)[1])
    other_port = own.rsplit(":", 1)[0] + f":{port + 1 if port < 65535 else port - 1}"
    response = httpx.post(url, files=files, headers={"origin": other_port}, timeout=10)
    assert_error(response, 403)
    response = httpx.post(url, files=files, headers={"sec-fetch-site": "cross-site"}, timeout=10)
    assert_error(response, 403)
    # A form's text/plain body (no preflight in a browser) is no upload.
    for kind in ("text/plain", "text/plain;charset=UTF-8", "application/json"):
        response = httpx.post(url, content=data, headers={"content-type": kind}, timeout=10)
        assert "is no upload" in assert_error(response, 415), kind
    # The page's own requests still work.
    response = httpx.post(url, files=files, headers={"origin": own}, timeout=60)
    assert response.status_code == 200 and response.content.startswith(PNG)
    assert list(server.tmp_root.iterdir()) == []


def test_every_error_has_one_shape(server):
    url = server.url
    assert "nothing at /no/such/page" in assert_error(httpx.get(url + "no/such/page"), 404)
    assert_error(httpx.get(url + "static/nothing.js"), 404)
    assert_error(httpx.get(url + "api/gallery/7/true.png"), 404)
    assert "not allowed" in assert_error(httpx.get(url + "api/portrait"), 405)
    assert_error(httpx.delete(url + "api/status"), 405)
    message = assert_error(httpx.post(url + "api/portrait.png?size=abc", content=b"x"), 400)
    assert message.startswith("size: ")
    assert assert_error(httpx.get(url + "api/gallery/abc/audio.wav"), 400).startswith("index: ")


def strings(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, str):
        yield value


def test_answers_hold_no_absolute_path(server, checkpoint, evaluation):
    for path in ("api/status", "api/gallery"):
        answer = httpx.get(server.url + path, timeout=10)
        assert answer.status_code == 200
        for text in (str(checkpoint.parent), str(evaluation.resolve()), os.path.expanduser("~")):
            assert text not in answer.text, (path, text)
        for value in strings(answer.json()):
            assert not os.path.isabs(value) or value.startswith("/api/"), (path, value)
