"""The hand-run benchmarks: the GPU acceptance run refuses in one line without a CUDA
device, and a run of all benchmarks leaves out those run by hand."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_benchmark_refuses_without_cuda():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "gpu"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    refusal = done.stdout.strip().splitlines()[-1]
    assert refusal.startswith("gpu: no CUDA device"), done.stdout


def test_hand_run_benchmarks_are_named_and_left_out_of_all():
    from benchmarks.__main__ import BY_HAND, available

    assert {"gpu", "resume"} <= set(available())
    assert set(BY_HAND) == {"gpu", "resume"}
