"""``scripts/make_synthetic_corpus.py`` writes a corpus the preprocessing reads."""

from __future__ import annotations

import csv
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
