"""An installed (non-editable) wheel carries the page's files, and serves them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "speech2face" / "web" / "static"


@pytest.mark.slow
def test_the_wheel_ships_the_page(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in ("speech2face", "configs"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("speech2face-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    files = sorted(p.name for p in STATIC.iterdir() if p.is_file())
    assert {"index.html", "app.css", "app.js", "favicon.svg"} <= set(files)
    for name in files:
        assert f"speech2face/web/static/{name}" in names
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "Provides-Extra: web" in text
    assert 'Requires-Dist: fastapi<1,>=0.115; extra == "web"' in text

    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    probe = (
        "from fastapi.testclient import TestClient\n"
        "from speech2face.web.app import create_app, STATIC_DIR\n"
        "from speech2face.web.engine import Engine\n"
        "print(STATIC_DIR)\n"
        "client = TestClient(create_app(Engine(attributes=False)))\n"
        "for path in ('/', '/static/app.js', '/static/app.css', '/static/favicon.svg'):\n"
        "    assert client.get(path).status_code == 200, path\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == target / "speech2face" / "web" / "static"
