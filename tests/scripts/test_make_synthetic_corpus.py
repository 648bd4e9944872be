"""``scripts/make_synthetic_corpus.py`` writes a corpus the preprocessing reads."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_synthetic_corpus.py"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_writes_videos_and_rows(tmp_path):
    result = run(
        "corpus", "--speakers", "2", "--clips", "1", "--seed", "3", "--workers", "2", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    clips = tmp_path / "corpus" / "clips.csv"
    assert clips.samefile(tmp_path / result.stdout.strip())  # prints the CSV's path
    rows = list(csv.reader(clips.open()))
    assert len(rows) == 2 and all(len(row) == 5 for row in rows)
    for row in rows:
        assert (tmp_path / "corpus" / "videos" / f"{row[0]}.mp4").stat().st_size > 1000


def test_bad_arguments_exit_non_zero(tmp_path):
    for bad in (["--speakers", "0"], ["--workers", "0"]):
        result = run("corpus", *bad, cwd=tmp_path)
        assert result.returncode == 2
        assert "at least 1" in result.stderr
        assert not (tmp_path / "corpus").exists()


def test_a_missing_engine_or_sentence_list_is_one_line(tmp_path):
    """Checked before any video: one line, exit 2. The engine is hidden by a module that
    shadows the ``espeakng_loader`` package and fails to import, as a missing wheel does."""
    result = run("corpus", "--speakers", "2", "--sentences", "nowhere.txt", cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "cannot read the sentence list nowhere.txt" in lines[0]
    assert not list(tmp_path.glob("corpus/videos/*.mp4"))

    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "espeakng_loader.py").write_text("raise ImportError('no engine here')\n")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "corpus2", "--speakers", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(shadow)},
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "the speech engine is missing: pip install espeakng-loader" in lines[0]
    assert not list(tmp_path.glob("corpus2/videos/*.mp4"))
