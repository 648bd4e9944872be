"""The command-line surface: ``python -m speech2face`` and ``s2f-spectrogram``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import soundfile as sf

from speech2face.cli import COMMANDS
from tests.media import tone


def run(args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "speech2face", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_help_lists_every_command(tmp_path):
    result = run(["--help"], tmp_path)
    assert result.returncode == 0
    for name in COMMANDS:
        assert name in result.stdout


def test_unknown_command_is_a_one_line_error(tmp_path):
    result = run(["no-such-command"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "unknown command" in result.stderr


def test_a_misspelt_command_gets_a_did_you_mean(tmp_path):
    result = run(["trian", "task=decoder"], tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        "speech2face: error: unknown command 'trian' (did you mean 'train'?)\n"
    )


def test_spectrogram_command_from_another_directory(tmp_path):
    source = tmp_path / "voice.wav"
    sf.write(source, tone(440.0, 3.0, 22_050), 22_050)
    work = tmp_path / "elsewhere"
    work.mkdir()
    result = run(["spectrogram", f"input={source}", "png=preview.png"], work)
    assert result.returncode == 0, result.stderr
    spec = np.load(tmp_path / "voice.spec.npy")
    assert spec.shape == (2, 598, 257) and spec.dtype == np.float32
    assert (work / "preview.png").stat().st_size > 1000
    assert not (work / "outputs").exists()  # utility commands leave no Hydra run dir


def test_spectrogram_three_seconds(tmp_path):
    source = tmp_path / "voice.flac"
    sf.write(source, tone(440.0, 5.0, 16_000), 16_000)
    result = run(["spectrogram", f"input={source}", "output=short.npy", "seconds=3"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert np.load(tmp_path / "short.npy").shape == (2, 298, 257)


def test_bad_input_gives_one_line_and_no_output(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    good = tmp_path / "good.wav"
    sf.write(good, tone(440.0, 1.0, 16_000), 16_000)
    cases = [
        ["spectrogram", f"input={bad}", "output=out.npy"],
        ["spectrogram", f"input={tmp_path / 'missing.wav'}", "output=out.npy"],
        ["spectrogram", "output=out.npy"],
        ["spectrogram", f"input={bad}", "output=out.npy", "seconds=-1"],
        ["spectrogram", f"input={good}", "output=out.npy", "seconds=nan"],
        ["spectrogram", f"input={good}", "output=out.npy", "seconds=abc"],
        ["spectrogram", f"input={good}", "output=out.npy", "offset=inf"],
        ["spectrogram", f"input={good}", "output=no_such_dir/out.npy"],
        ["spectrogram", f"input={good}", "output=out.npy", "png=/proc/preview.png"],
        ["spectrogram", f"input={good}", "output=out.npy", "png=preview.xyz"],
    ]
    for args in cases:
        result = run(args, tmp_path)
        assert result.returncode != 0, args
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("s2f-spectrogram: error:"), lines
        assert "Traceback" not in result.stderr
        assert not (tmp_path / "out.npy").exists()
    assert list(tmp_path.glob(".out*")) == []  # no temporary leftovers


def test_bad_overrides_are_one_line_errors(tmp_path):
    cases = {
        ("preprocess", "source=no_such_source", f"output_dir={tmp_path}"): "avspeech",
        ("spectrogram", "input=x.wav", "no_such_key=1"): "unknown key 'no_such_key'",
        ("spectrogram", "input=x.wav", "seconds==="): "cannot parse",
    }
    for args, hint in cases.items():
        result = run(list(args), tmp_path)
        assert result.returncode == 2, args
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and hint in lines[0], result.stderr


def test_train_help_is_the_projects_own(tmp_path):
    result = run(["train", "--help"], tmp_path)
    assert result.returncode == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0].startswith("s2f-train: train the face decoder") and len(lines) < 60
    for text in (
        "task=decoder",
        "task=voice",
        "task=attributes",
        "data.root=OUT/",
        "output_dir=RUN_DEC/",
        "decoder_checkpoint=RUN_DEC/checkpoints/last.pt",
        "debug=cpu",
        "debug=demo",
        "experiment=paper",
        "debug:        cpu, demo",
    ):
        assert text in result.stdout, text
    assert "powered by Hydra" not in result.stdout
    assert "Hydra (" in run(["train", "--hydra-help"], tmp_path).stdout  # Hydra's, on request


def test_train_names_every_missing_required_value_in_one_line(tmp_path):
    result = run(["train"], tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        "s2f-train: error: missing required values: task=<decoder|voice|attributes> "
        "output_dir=... data.root=... decoder_checkpoint=... (task=voice) "
        "(s2f-train --help gives examples)\n"
    )
    result = run(["train", "task=voice", "debug=cpu"], tmp_path)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert "missing required values: output_dir=... data.root=... decoder_checkpoint=..." in (
        result.stderr
    )
    result = run(["train", "task=attributes", "faces=fairface", "output_dir=run/"], tmp_path)
    assert result.returncode == 2 and "missing required values: faces.csv=..." in result.stderr
    assert not (tmp_path / "run").exists()
