"""``s2f-demo`` end to end at a tiny size: every stage runs for real, a rerun skips the
finished ones, and ``s2f-infer``'s default checkpoint is installed."""

from __future__ import annotations

import json

import pytest

from tests.data.conftest import run_s2f

pytestmark = pytest.mark.slow

TINY = [
    "speakers=10",
    "val_fraction=0.3",
    "workers=1",
    "frames_per_clip=1",
    "decoder.steps=4",
    "decoder.batch_size=2",
    "decoder.image_size=56",
    "voice.steps=4",
    "voice.batch_size=2",
    "attributes.steps=4",
    "attributes.batch_size=2",
    "gallery_size=2",
    "progress=false",
]


def test_the_demo_runs_resumes_and_installs_its_model(tmp_path, monkeypatch):
    monkeypatch.setenv("S2F_HOME", str(tmp_path / "home"))
    out = tmp_path / "my demo, v(1)"  # passed on quoted to every stage's command
    result = run_s2f("demo", f"output_dir='{out}'", *TINY, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    for number, name in enumerate(
        ["corpus", "preprocess", "decoder", "voice", "attributes", "eval", "portraits", "install"],
        1,
    ):
        assert f"s2f-demo [{number}/8] {name}: done in" in result.stdout
        assert (out / "stages" / f"{name}.done").is_file()
    assert f"report: {out / 'eval' / 'report.html'}" in result.stdout
    lines = result.stdout.splitlines()
    assert any(
        line.startswith(
            "held-out voices, 6 s window: the portrait drawn from the voice has the "
            "speaker's gender in "
        )
        for line in lines
    ), result.stdout
    assert any(
        line.startswith("held-out voices, whole segment: the speaker's own face") for line in lines
    )
    assert any(
        line.startswith("real voices, whole recording: portraits of 27 voices") for line in lines
    )
    # The last line gives s2f-infer as it can be run from here (its path unless on PATH).
    from speech2face.demo import command_path

    assert lines[-1] == (
        f"{command_path('s2f-infer')} voice.wav now draws with this model "
        "(trained on synthetic voices)"
    )
    assert not (out / ".s2f.lock").exists()  # the finished run let go of its directory
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert metrics["data"]["split"] == "val" and metrics["attributes"]["backend"] == "classifier"
    assert set(metrics["real_voices"]["judges"]) == {"attributes", "nearest"}
    portraits = sorted((out / "portraits").glob("*.png"))
    assert len(portraits) == metrics["data"]["samples"]
    assert [p.name[:5] for p in portraits] == [f"{n:04d}_" for n in range(1, len(portraits) + 1)]
    assert (tmp_path / "home" / "models" / "default.pt").is_file()
    recorded = (tmp_path / "home" / "models" / "default-gallery.txt").read_text().strip()
    assert recorded == str((out / "eval").resolve())  # s2f-serve's example voices

    # A rerun skips every finished stage; a stage whose mark is gone runs again.
    (out / "stages" / "eval.done").unlink()
    again = run_s2f("demo", f"output_dir='{out}'", *TINY, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "s2f-demo [1/8] corpus: done earlier, skipped" in again.stdout
    assert "s2f-demo [6/8] eval: done in" in again.stdout
    assert "s2f-demo [7/8] portraits: done earlier, skipped" in again.stdout


def test_too_few_speakers_is_one_line(tmp_path):
    result = run_s2f("demo", f"output_dir={tmp_path}/demo", "speakers=3")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "speakers must be at least 5" in lines[0]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("voice.model=voice_encoder_nowhere", "voice.model must be one of"),
        ("sentences=/nonexistent/sentences.txt", "cannot read the sentence list"),
    ],
)
def test_bad_voice_model_or_sentences_is_one_line(tmp_path, override, expected):
    result = run_s2f("demo", f"output_dir={tmp_path}/demo", override)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1, result.stderr[-2000:]
    assert expected in lines[0] and "Traceback" not in result.stderr
    assert not list((tmp_path / "demo").glob("corpus/videos/*.mp4"))


COMMAND_PATH = "from speech2face.demo import command_path; print(command_path('s2f-infer'))"


def test_the_last_line_names_s2f_infer_by_a_path_that_runs(tmp_path):
    """Inside the venv's folder: its relative path; elsewhere: absolute; on PATH: the name."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    bin_dir = Path(os.path.abspath(sys.executable)).parent
    if not (bin_dir / "s2f-infer").is_file():
        pytest.skip("no s2f-infer script beside the interpreter")
    (tmp_path / "venv").symlink_to(bin_dir.parent)
    python = tmp_path / "venv" / "bin" / Path(sys.executable).name
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != bin_dir)
    env = {**os.environ, "PATH": path, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}

    def said(cwd, **extra):
        result = subprocess.run(
            [str(python), "-c", COMMAND_PATH],
            cwd=cwd,
            env={**env, **extra},
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout.strip()

    assert said(tmp_path) == "venv/bin/s2f-infer"
    assert said(elsewhere) == str(tmp_path / "venv" / "bin" / "s2f-infer")
    on_path = os.pathsep.join([str(tmp_path / "venv" / "bin"), path])
    assert said(elsewhere, PATH=on_path) == "s2f-infer"


def test_portrait_names_never_start_with_a_dash():
    from speech2face.demo import portrait_name

    assert portrait_name(3, "--x8GZ1d0AAk_000120") == "0003_--x8GZ1d0AAk_000120.png"
    assert not portrait_name(1, "-abc").startswith("-")
