"""An installed (non-editable) wheel carries the configs and composes them anywhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_ships_every_config_and_finds_them(tmp_path):
    # Build from a copy: an in-tree build would write build/ into the checkout.
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
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
    for config in (ROOT / "configs").rglob("*.yaml"):
        assert f"speech2face/configs/{config.relative_to(ROOT / 'configs').as_posix()}" in names
    packages = {
        p.parent.relative_to(ROOT).as_posix() for p in ROOT.glob("speech2face/**/__init__.py")
    }
    for package in packages:
        assert f"{package}/__init__.py" in names, f"{package} missing from the wheel"

    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("S2F_CONFIG_DIR", None)
    probe = (
        "import speech2face.config as c; "
        "print(c.config_dir()); print(c.compose('spectrogram', ['input=x']).input)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    where, value = result.stdout.split()
    assert Path(where) == target / "speech2face" / "configs"
    assert value == "x"
