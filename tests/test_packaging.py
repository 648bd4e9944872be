"""An installed (non-editable) wheel carries the configs, the web page and the report's
templates, and uses them anywhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _copy_source(source: Path, symlinks: bool = False) -> Path:
    """What a build reads of this checkout, copied to ``source``; ``symlinks``: keep the
    link speech2face/configs as a link (else a copy of the folder it points to)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    for name in ("speech2face", "configs"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore, symlinks=symlinks)
    return source


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel of this checkout, built from a copy (an in-tree build would write build/)."""
    tmp_path = tmp_path_factory.mktemp("wheel")
    source = _copy_source(tmp_path / "src")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v",
         "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (tmp_path / "build.log").write_text(build.stdout + build.stderr)
    (path,) = (tmp_path / "dist").glob("speech2face-*.whl")
    return path


def _install(wheel: Path, target: Path) -> dict[str, str]:
    """The wheel unpacked into ``target``; the environment that imports it from there."""
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("S2F_CONFIG_DIR", None)
    return env


@pytest.mark.slow
def test_wheel_ships_every_config_and_finds_them(wheel, tmp_path):
    names = set(zipfile.ZipFile(wheel).namelist())
    for config in (ROOT / "configs").rglob("*.yaml"):
        assert f"speech2face/configs/{config.relative_to(ROOT / 'configs').as_posix()}" in names
    packages = {
        p.parent.relative_to(ROOT).as_posix() for p in ROOT.glob("speech2face/**/__init__.py")
    }
    for package in packages:
        assert f"{package}/__init__.py" in names, f"{package} missing from the wheel"

    target = tmp_path / "site"
    env = _install(wheel, target)
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


def test_every_folder_that_ships_is_a_listed_package():
    """pyproject.toml lists every folder of speech2face/ and configs/ as a package (code or
    data): one left out is missing from the wheel, or makes setuptools warn on every
    install."""
    import tomllib

    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    folders = {"speech2face.configs"} | {
        "speech2face.configs." + ".".join(p.relative_to(ROOT / "configs").parts)
        for p in (ROOT / "configs").rglob("*")
        if p.is_dir()
    }
    folders |= {
        ".".join(p.relative_to(ROOT).parts)
        for p in [ROOT / "speech2face", *(ROOT / "speech2face").rglob("*")]
        if p.is_dir() and p.name != "__pycache__" and any(p.iterdir())
    }
    assert folders == listed


@pytest.mark.slow
def test_the_wheel_builds_without_packaging_warnings(wheel):
    log = (wheel.parent.parent / "build.log").read_text()
    assert "speech2face" in log  # the verbose build's output was kept
    assert "absent from the `packages` configuration" not in log
    assert "BuildBackendWarning" not in log


@pytest.mark.slow
def test_the_wheel_ships_the_web_page_and_serves_it(wheel, tmp_path):
    names = set(zipfile.ZipFile(wheel).namelist())
    static = ROOT / "speech2face" / "web" / "static"
    files = sorted(p.name for p in static.iterdir() if p.is_file())
    assert {"index.html", "app.css", "app.js", "favicon.svg"} <= set(files)
    for name in files:
        assert f"speech2face/web/static/{name}" in names
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "Provides-Extra: web" in text
    assert 'Requires-Dist: fastapi<1,>=0.115; extra == "web"' in text

    target = tmp_path / "site"
    env = _install(wheel, target)
    probe = (
        "from fastapi.testclient import TestClient\n"
        "from speech2face.web.app import create_app, STATIC_DIR\n"
        "from speech2face.web.engine import Engine\n"
        "print(STATIC_DIR)\n"
        "client = TestClient(create_app(Engine(attributes=False)), base_url='http://127.0.0.1')\n"
        "for path in ('/', '/static/app.js', '/static/app.css', '/static/favicon.svg'):\n"
        "    assert client.get(path).status_code == 200, path\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == target / "speech2face" / "web" / "static"


@pytest.mark.slow
def test_the_wheel_ships_the_report_templates_and_renders_them(wheel, tmp_path):
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = sorted((ROOT / "speech2face" / "evaluation" / "templates").glob("*.html"))
    assert "report.html" in {p.name for p in templates}
    for template in templates:
        assert f"speech2face/evaluation/templates/{template.name}" in names

    target = tmp_path / "site"
    env = _install(wheel, target)
    probe = (
        "import speech2face.evaluation.report as r\n"
        "print(r.__file__)\n"
        "page = r.render_html({'version': 1})\n"
        "assert page.startswith('<!DOCTYPE html>') and 'Skipped: not computed' in page\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).is_relative_to(target)


@pytest.mark.slow
def test_the_editable_install_is_one_path_line_with_no_notice(tmp_path):
    """``pip install -e .`` (make install) builds an editable wheel: with a simple layout it is
    a .pth file naming the checkout, and setuptools prints no notice about import precedence
    (a package-dir mapping would make it install a meta path finder and say so)."""
    source = _copy_source(tmp_path / "src", symlinks=True)
    assert (source / "speech2face" / "configs").is_symlink()
    build = subprocess.run(
        [sys.executable, "-W", "always", "-c",
         "import sys, setuptools.build_meta as b; print(b.build_editable(sys.argv[1]))",
         str(tmp_path / "dist")],
        cwd=source, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    assert "BuildBackendWarning" not in build.stderr
    assert "Editable installation" not in build.stderr
    editable = tmp_path / "dist" / build.stdout.strip().splitlines()[-1]
    with zipfile.ZipFile(editable) as archive:
        (pth,) = [n for n in archive.namelist() if n.endswith(".pth")]
        assert archive.read(pth).decode().split() == [str(source.resolve())]

    probe = "import speech2face.config as c; print(c.config_dir())"
    env = {**os.environ, "PYTHONPATH": str(source)}
    env.pop("S2F_CONFIG_DIR", None)
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == source / "configs"
