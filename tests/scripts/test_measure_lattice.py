"""scripts/measure_lattice.py on a trained voice checkpoint and its shards."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "measure_lattice.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600
    )


def test_it_reads_portraits_and_crops_of_the_held_out_speakers(checkpoint, preprocessed):
    result = run(str(checkpoint), str(preprocessed), "--split", "val", "--max-clips", "4")
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r"^4 clips of val; decoder upsampling '\w+', \d+ -> \d+ px", result.stdout)
    for name in ("portraits", "true face crops"):
        line = next(line for line in result.stdout.splitlines() if line.startswith(name))
        mean, largest = (float(x) for x in re.findall(r"(-?\d+\.\d+) dB", line))
        assert largest >= mean


def test_bad_input_is_one_line(checkpoint, preprocessed, tmp_path):
    for args, fragment in (
        ((str(tmp_path / "none.pt"), str(preprocessed)), "none.pt"),
        ((str(checkpoint), str(preprocessed), "--split", "nosuch"), "nosuch"),
        ((str(checkpoint), str(preprocessed), "--max-clips", "0"), "--max-clips"),
    ):
        result = run(*args)
        assert result.returncode == 2, result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("measure_lattice: error:"), result.stderr
        assert fragment in lines[0]
