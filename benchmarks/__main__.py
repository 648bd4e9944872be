"""Run benchmarks: ``python -m benchmarks`` (all but those run by hand) or
``python -m benchmarks audio models``.

Each ``benchmarks/bench_<name>.py`` has a ``main()`` that prints its figures and the ratio
against a reference measured in the same run. Run by hand only (named on the command line):
``resume`` (writes a 1.3 GB shard set to a temporary folder) and ``gpu`` (the acceptance
run on a CUDA device; it refuses in one line without one).
"""

from __future__ import annotations

import importlib
import platform
import sys
from pathlib import Path

import torch


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(p.stem.removeprefix("bench_") for p in here.glob("bench_*.py"))


BY_HAND = ("gpu", "resume")  # left out of a run of all of them


def main(argv: list[str]) -> int:
    names = available()
    if any(arg in ("-h", "--help") for arg in argv):
        print(__doc__.strip())
        print("available:", " ".join(names))
        return 0
    chosen = argv or [name for name in names if name not in BY_HAND]
    unknown = [name for name in chosen if name not in names]
    if unknown:
        print(f"benchmarks: error: unknown benchmark {unknown[0]!r} (have: {names})")
        return 2
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    print(
        f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads,"
        f" {device}, torch {torch.__version__}"
    )
    for name in chosen:
        print(f"\n== {name} ==")
        status = importlib.import_module(f"benchmarks.bench_{name}").main()
        if status:
            return int(status)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
