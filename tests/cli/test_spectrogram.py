"""``s2f-spectrogram`` run as users run it: outputs never replace inputs or other files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.media import tone

ERROR = "s2f-spectrogram: error:"


def spectrogram(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("s2f-spectrogram")
    return subprocess.run(
        [str(script), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(ERROR), result.stderr
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}


@pytest.fixture
def voices(tmp_path: Path) -> Path:
    """hello.wav and hello.flac (different tones) and an unrelated notes.txt."""
    sf.write(tmp_path / "hello.wav", tone(440.0, 1.0, 16_000), 16_000)
    sf.write(tmp_path / "hello.flac", tone(660.0, 1.0, 16_000), 16_000)
    (tmp_path / "notes.txt").write_text("my notes\n")
    return tmp_path


def test_inputs_and_unrelated_files_are_never_written(voices):
    before = snapshot(voices)
    cases = {
        ("output=hello.wav",): "output must end in .npy, got 'hello.wav'",
        ("output=hello.wav", "overwrite=true"): "must end in .npy",
        ("output=notes.txt", "overwrite=true"): "must end in .npy",
        ("output=o.npy", "png=hello.wav", "overwrite=true"): "png must end in",
        ("output=o.npy", "png=notes.txt"): "png must end in",
    }
    for args, message in cases.items():
        line = one_line_error(spectrogram("input=hello.wav", *args, cwd=voices))
        assert message in line, line
    assert snapshot(voices) == before


def test_an_input_is_never_an_output_even_with_overwrite(voices):
    """Decoders read content, not names: a WAV called .npy is an input the rule protects."""
    wav = voices / "voice.npy"
    wav.write_bytes((voices / "hello.wav").read_bytes())
    os.link(wav, voices / "link.npy")
    (voices / "cover.png").symlink_to("hello.wav")
    before = snapshot(voices)
    for args in (
        ["input=voice.npy", "output=voice.npy"],
        ["input=voice.npy", f"output={wav}"],
        ["input=voice.npy", "output=link.npy"],
        ["input=hello.wav", "png=cover.png"],
    ):
        line = one_line_error(spectrogram(*args, "overwrite=true", cwd=voices))
        assert "is the input file" in line, line
    assert snapshot(voices) == before


def test_default_outputs_of_one_stem_do_not_replace_each_other(voices):
    assert spectrogram("input=hello.wav", cwd=voices).returncode == 0
    first = (voices / "hello.spec.npy").read_bytes()
    line = one_line_error(spectrogram("input=hello.flac", cwd=voices))
    assert "hello.spec.npy exists; pass overwrite=true, or output=OTHER.npy" in line
    assert (voices / "hello.spec.npy").read_bytes() == first
    (voices / "preview.png").write_bytes(b"a picture")
    line = one_line_error(
        spectrogram("input=hello.flac", "output=f.npy", "png=preview.png", cwd=voices)
    )
    assert "preview.png exists; pass overwrite=true, or png=OTHER.png" in line
    assert not (voices / "f.npy").exists()
    assert (voices / "preview.png").read_bytes() == b"a picture"

    result = spectrogram("input=hello.flac", "overwrite=true", cwd=voices)
    assert result.returncode == 0, result.stderr
    assert (voices / "hello.spec.npy").read_bytes() != first
    assert np.load(voices / "hello.spec.npy").shape == (2, 598, 257)
    assert [p.name for p in voices.iterdir() if p.name.startswith(".")] == []


def test_input_that_names_no_file_is_one_line(voices):
    cases = {
        "input=": "input must name an audio or video file, got ''",
        "input=null": "input must name an audio or video file, got null",
        "input=12": "quote a name that looks like a number",
        "input=.": "input '.' is a directory",
        "input=/": "input '/' is a directory",
        f"input={voices}": "is a directory",
        "input=missing.wav": "input 'missing.wav' does not exist",
    }
    for arg, message in cases.items():
        line = one_line_error(spectrogram(arg, cwd=voices))
        assert message in line, line
        assert "Traceback" not in line


def test_output_errors_name_the_users_path_before_any_work(voices):
    (voices / "out.npy").mkdir()
    cases = {
        f"output={voices}": f"output must end in .npy, got '{voices}'",
        "output=out.npy": "out.npy is a directory",
        "output=no_such_dir/x.npy": "output directory no_such_dir does not exist",
        "overwrite=yes": "overwrite must be true or false, got 'yes'",
    }
    for arg, message in cases.items():
        line = one_line_error(spectrogram("input=hello.wav", arg, cwd=voices))
        assert message in line, line
        assert ".tmp" not in line
    line = one_line_error(spectrogram("input=hello.wav", "output=/proc/x.npy", cwd=voices))
    assert "/proc/x.npy" in line and ".tmp" not in line  # the failure of the write itself
