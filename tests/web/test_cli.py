"""``s2f-serve`` as users run it: the URL on start, a model that is missing, a port in use,
Ctrl-C; one-line errors, never a traceback."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from speech2face.cli import COMMANDS

PROG = "s2f-serve"


def command() -> list[str]:
    script = Path(sys.executable).with_name(PROG)
    return [str(script)] if script.exists() else [sys.executable, "-m", "speech2face", "serve"]


def run(*args: str, env: dict | None = None, cwd: Path | None = None):
    return subprocess.run(
        [*command(), *args], capture_output=True, text=True, timeout=120, env=env, cwd=cwd
    )


class Serving:
    """``s2f-serve ARGS`` in the background; ``url`` is what it printed."""

    def __init__(
        self, *args: str, env: dict | None = None, cwd: Path | None = None, **popen
    ) -> None:
        self.process = subprocess.Popen(
            [*command(), "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=cwd,
            **popen,
        )
        first = self.process.stdout.readline()
        found = re.search(r"(http://127\.0\.0\.1:\d+/)", first)
        if not found:
            self.process.kill()
            raise AssertionError(f"no URL on start: {first!r} {self.process.stderr.read()}")
        self.first_line = first
        self.url = found.group(1)

    def status(self, timeout: float = 120.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = httpx.get(self.url + "api/status", timeout=10).json()
            if status["state"] != "loading":
                return status
            time.sleep(0.1)
        raise AssertionError("the model did not load")

    def interrupt(self) -> tuple[int, str, str]:
        self.process.send_signal(signal.SIGINT)
        out, err = self.process.communicate(timeout=30)
        return self.process.returncode, out, err


def test_serve_is_a_command():
    assert COMMANDS["serve"][0] == "speech2face.cli.serve:main"
    result = subprocess.run(
        [sys.executable, "-m", "speech2face", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "--checkpoint" in result.stdout and "ssh -N -L" in result.stdout


def test_a_port_in_use_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run("--port", str(port), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"{PROG}: error: port {port} on 127.0.0.1 is in use (another s2f-serve?): pass "
        "--port N, or --port 0 for a free one"
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--gallery", "no/such/dir"], "no such directory"),
        (["--host", "no.such.host.invalid"], "--host no.such.host.invalid"),
        (["--port", "99999"], "must be a port number"),
        (["--max-upload-mb", "0"], "positive number of megabytes"),
    ],
)
def test_bad_options_are_one_line(tmp_path, args, words):
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith(f"{PROG}: error:")]
    assert len(errors) == 1 and words in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_without_the_extra_it_says_how_to_install_it(monkeypatch, capsys):
    from speech2face.cli import serve

    monkeypatch.setitem(sys.modules, "uvicorn", None)
    with pytest.raises(SystemExit) as stop:
        serve.main(["--port", "0"])
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"{PROG}: error: the web page needs uvicorn")
    assert "pip install -e '.[web]'" in error


def test_no_model_installed_the_page_says_how_to_get_one(tmp_path):
    env = {**os.environ, "S2F_HOME": str(tmp_path / "home")}
    serving = Serving(env=env, cwd=tmp_path)
    try:
        status = serving.status()
        assert status["state"] == "error"
        assert "make demo" in status["message"] and "default.pt" in status["message"]
        assert str(tmp_path) not in status["message"]  # the terminal says where, not the page
        assert httpx.get(serving.url, timeout=10).status_code == 200
        gallery = httpx.get(serving.url + "api/gallery", timeout=10).json()
        assert gallery["examples"] == [] and "make demo" in gallery["note"]
    finally:
        code, out, err = serving.interrupt()
    assert code == 0, err
    assert out.strip().splitlines()[-1] == f"{PROG}: stopped"
    errors = [line for line in err.splitlines() if line.startswith(f"{PROG}: error:")]
    assert len(errors) == 1 and "no model at" in errors[0] and "make demo" in errors[0]
    assert str(tmp_path / "home") in errors[0]
    assert "Traceback" not in err


def test_serve_a_checkpoint_and_stop_with_ctrl_c(checkpoint, voices, tmp_path):
    serving = Serving("--checkpoint", str(checkpoint), "--no-attributes", cwd=tmp_path)
    try:
        assert f"loading {checkpoint} in the background" in serving.first_line
        assert serving.status()["state"] == "ready"
        with open(voices / "voice.wav", "rb") as f:
            response = httpx.post(serving.url + "api/portrait.png", files={"file": f}, timeout=60)
        assert response.status_code == 200 and response.content.startswith(b"\x89PNG")
    finally:
        code, out, err = serving.interrupt()
    assert code == 0, err
    assert "model ready in" in out and out.strip().endswith(f"{PROG}: stopped")
    assert "voice.wav: 2 windows" in err  # the line per portrait
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written where it ran


def few_open_files() -> None:
    """In the child: a soft limit of 256 open files, the hard limit left as it is."""
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))


def test_idle_connections_do_not_stop_the_server(tmp_path):
    """300 connections that send nothing, started with ulimit -n 256: the status still
    answers within a second, and the terminal stays quiet."""
    import resource

    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 1024:
        pytest.skip("the hard limit on open files is below 1024")
    env = {**os.environ, "S2F_HOME": str(tmp_path / "home")}
    serving = Serving(env=env, cwd=tmp_path, preexec_fn=few_open_files)
    host, port = serving.url.removeprefix("http://").rstrip("/").split(":")
    idle = []
    try:
        serving.status()
        idle = [socket.create_connection((host, int(port)), timeout=10) for _ in range(300)]
        time.sleep(0.5)
        began = time.monotonic()
        status = httpx.get(serving.url + "api/status", timeout=1)
        assert status.status_code == 200 and time.monotonic() - began < 1
    finally:
        for connection in idle:
            connection.close()
        code, out, err = serving.interrupt()
    assert code == 0, err
    assert "Too many open files" not in err and "Traceback" not in err
    assert len(err.splitlines()) <= 3, err


def test_a_gallery_with_a_nul_byte_in_a_path_is_one_line(evaluation, tmp_path):
    import json
    import shutil

    bad = tmp_path / "eval"
    shutil.copytree(evaluation, bad)
    metrics = json.loads((bad / "metrics.json").read_text())
    entries = metrics["gallery"]
    entries[0]["audio"] = "media/gallery/000\u0000.wav"
    (bad / "metrics.json").write_text(json.dumps(metrics))
    env = {**os.environ, "S2F_HOME": str(tmp_path / "home")}
    serving = Serving("--gallery", str(bad), env=env, cwd=tmp_path)
    try:
        gallery = httpx.get(serving.url + "api/gallery", timeout=10).json()
        assert [e["speaker"] for e in gallery["examples"]] == ["spk1"]  # the NUL one left out
    finally:
        code, _, err = serving.interrupt()
    assert code == 0 and "Traceback" not in err
    # every entry broken: one line, and no server
    for entry in entries:
        entry["true"] = "x\u0000.png"
    (bad / "metrics.json").write_text(json.dumps(metrics))
    result = run("--gallery", str(bad), "--port", "0", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "has no voice with its files" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_checkpoint_of_the_wrong_shape_is_one_line(checkpoint, tmp_path):
    import torch

    payload = torch.load(checkpoint, map_location="cpu", weights_only=True)
    name = next(k for k, v in payload["state_dict"].items() if v.ndim >= 2)
    payload["state_dict"][name] = torch.zeros(3, 3)
    wrong = tmp_path / "wrong.pt"
    torch.save(payload, wrong)
    serving = Serving("--checkpoint", str(wrong), "--no-attributes", cwd=tmp_path)
    try:
        status = serving.status()
        assert status["state"] == "error" and "wrong.pt" in status["message"]
        assert "\n" not in status["message"] and "\t" not in status["message"]
        assert str(tmp_path) not in status["message"]
    finally:
        code, _, err = serving.interrupt()
    assert code == 0, err
    errors = [line for line in err.splitlines() if line.startswith(f"{PROG}: error:")]
    assert len(errors) == 1 and "wrong.pt" in errors[0], err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err


def test_nothing_is_left_in_the_temporary_directory(checkpoint, voices, tmp_path):
    """With the gender and age models (ONNX Runtime) loaded and a portrait drawn, the
    server leaves nothing in $TMPDIR."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {**os.environ, "TMPDIR": str(temporary)}
    env.pop("ORT_DISABLE_TELEMETRY", None)
    serving = Serving("--checkpoint", str(checkpoint), env=env, cwd=tmp_path)
    try:
        status = serving.status()
        assert status["state"] == "ready"
        with open(voices / "voice.wav", "rb") as f:
            response = httpx.post(serving.url + "api/portrait", files={"file": f}, timeout=60)
        assert response.status_code == 200, response.text
    finally:
        code, _, err = serving.interrupt()
    assert code == 0, err
    assert sorted(p.name for p in temporary.iterdir()) == []
