"""Overrides every Hydra command refuses, or accepts, before any work: typos and quoting."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from speech2face.cli import quoted_override
from tests.media import tone


def command(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name(f"s2f-{name}")
    return subprocess.run(
        [str(script), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def one_line_error(result: subprocess.CompletedProcess, name: str) -> str:
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"s2f-{name}: error:"), result.stderr
    return lines[0]


UNKNOWN = [
    ("spectrogram", ["input=x.wav", "ouput=x.npy"], "unknown key 'ouput' (did you mean 'output'?)"),
    (
        "spectrogram",
        ["input=x.wav", "+ouput=x.npy"],
        "unknown key 'ouput' (did you mean 'output'?)",
    ),
    (
        "spectrogram",
        ["input=x.wav", "++ouput=x.npy"],
        "unknown key 'ouput' (did you mean 'output'?)",
    ),
    ("spectrogram", ["input=x.wav", "~pnq"], "unknown key 'pnq' (did you mean 'png'?)"),
    ("spectrogram", ["input=x.wav", "seconds.x=1"], "unknown key 'seconds.x'"),
    ("spectrogram", ["input=x.wav", "source=avspeech"], "unknown key 'source'"),
    ("preprocess", ["output_dir=o", "source.cvs=a.csv"], "did you mean 'source.csv'?"),
    ("preprocess", ["ouput_dir=o"], "did you mean 'output_dir'?"),
    ("preprocess", ["output_dir=o", "face_encoder.dimm=3"], "did you mean 'face_encoder.dim'?"),
    ("preprocess", ["output_dir=o", "face_encoder=nope"], "available: dlib, facenet, vggface"),
    ("weights", ["actoin=list"], "unknown key 'actoin' (did you mean 'action'?)"),
]


@pytest.mark.parametrize(("name", "args", "message"), UNKNOWN)
def test_unknown_keys_are_refused_with_the_closest_known_one(tmp_path, name, args, message):
    line = one_line_error(command(name, *args, cwd=tmp_path), name)
    assert message in line, line
    assert list(tmp_path.iterdir()) == []


LEGITIMATE = [
    ["source=avspeech", "source.csv=a.csv", "source.video_dir=v", "face_encoder=dlib"],
    ["source=voxceleb2", "source.root=r", "face_encoder=facenet", "face_encoder.weights=null"],
    ["++workers=2", "~face_encoder", "hydra.run.dir=.", "hydra.job.chdir=false"],
]


@pytest.mark.parametrize("args", LEGITIMATE)
def test_groups_nested_keys_deletions_and_hydra_keys_still_work(tmp_path, args):
    result = command("preprocess", "output_dir=o", *args, "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "output_dir: o" in result.stdout


def test_names_hydra_cannot_parse_get_a_quoting_hint_that_works(tmp_path):
    name = "take(1), it's=good.wav"
    sf.write(tmp_path / name, tone(440.0, 1.0, 16_000), 16_000)
    line = one_line_error(command("spectrogram", f"input={name}", cwd=tmp_path), "spectrogram")
    hint = quoted_override(f"input={name}")
    assert line.endswith(hint), line
    script = Path(sys.executable).with_name("s2f-spectrogram")
    result = subprocess.run(
        ["bash", "-c", f"{shlex.quote(str(script))} {hint} output=out.npy"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.npy").is_file()


@pytest.mark.parametrize("value", ["a(1).wav", "a=b.wav", "it's.wav", "a,b.wav", "[x]{y}.wav"])
def test_each_special_character_is_refused_with_a_hint(tmp_path, value):
    line = one_line_error(command("spectrogram", f"input={value}", cwd=tmp_path), "spectrogram")
    assert quoted_override(f"input={value}") in line, line


NAMES = ["a(1).wav", "it's.wav", 'say "hi".wav', "a,b=c.wav", "é $HOME `x`.wav", "end\\", "a'\\'b"]


@pytest.mark.parametrize("value", NAMES)
def test_quoted_override_round_trips_through_bash_and_hydra(value):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    hint = quoted_override(f"input={value}")
    echoed = subprocess.run(
        ["bash", "-c", f"printf %s {hint}"], capture_output=True, text=True, check=True
    ).stdout
    assert OverridesParser.create().parse_overrides([echoed])[0].value() == value
