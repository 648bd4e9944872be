"""``s2f-infer``: draw the face behind each voice, ``voice.wav -> voice.png``.

Positional files and flags, like whisper's command line (not Hydra overrides); the work is
:class:`speech2face.inference.Portraitist`'s.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from speech2face.cli import add_model_options

PROG = "s2f-infer"
# What a directory given as input is searched for (not recursively; hidden files skipped).
MEDIA_SUFFIXES = frozenset(
    (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".aiff", ".aif", ".au",
     ".wma", ".mp4", ".m4v", ".mov", ".mkv", ".webm")
)  # fmt: skip
# Inputs that are pictures, not recordings: refused by name (a .png would be its own output).
IMAGE_SUFFIXES = frozenset(
    (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".heic", ".avif")
)

EPILOG = """\
outputs:
  s2f-infer voice.wav                  writes voice.png beside voice.wav
  s2f-infer voice.wav -o face.png      one input: -o is the PNG's path
  s2f-infer a.wav b.mp3 clips/ -o out/ several inputs (or a directory): -o is a directory,
                                       each portrait named after its input (out/a.png ...)
  Existing PNG (and .npy) outputs are overwritten; an input file never is.

the model:
  --checkpoint, else $S2F_HOME/models/default.pt (~/.cache/speech2face/models/default.pt),
  which 'make demo' / 's2f-demo' installs.

audio:
  Any format (wav, flac, ogg, mp3, m4a, the audio of mp4/mov/webm) at any rate from 1 kHz
  to 384 kHz. Silence is found and left out; recordings longer than the model's window (6 s
  for the paper's) are cut into windows whose predictions are averaged, shorter ones (down
  to 1 s) are tiled.

exit status:
  0 all done; 2 an input (or the checkpoint) failed, nothing written for it; with several
  inputs, 1 when some failed and the others were done ("N of M failed").
"""


@dataclass(frozen=True)
class Job:
    source: Path  # the input as named (found in a directory, or given)
    png: Path
    npy: Path | None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Draw the face behind each voice: FILE_OR_DIR... -> PNG portraits.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "inputs", nargs="+", metavar="FILE_OR_DIR", help="audio or video files, or directories"
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="the PNG for one input; a directory for several (created when missing)",
    )
    parser.add_argument(
        "--size",
        type=_positive,
        metavar="N",
        help="resize the portrait to NxN pixels, N up to 4096 (Lanczos); without it the "
        "portrait has the model's own size, its decoder's image_size (224x224 for the "
        "paper's)",
    )
    parser.add_argument(
        "--features",
        action="store_true",
        help="also save the predicted face feature as <name>.npy beside each PNG",
    )
    add_model_options(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="no line per file")
    return parser


MAX_SIZE_PX = 4096  # --size's bound: a 4096x4096 RGB portrait is 48 MiB in memory


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number of pixels: {text!r}")
    if value > MAX_SIZE_PX:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_SIZE_PX} pixels: {text!r}")
    return value


def main(argv: list[str] | None = None) -> None:
    from speech2face.cli import fail

    args = build_parser().parse_args(argv)
    try:
        failures, total = run(args)
    except KeyboardInterrupt:
        fail("interrupted", prog=PROG, code=130)
    if failures and total > 1:
        print(f"{PROG}: {failures} of {total} failed", file=sys.stderr)
        raise SystemExit(1 if failures < total else 2)
    if failures:
        raise SystemExit(2)


def run(args: argparse.Namespace) -> tuple[int, int]:
    """Portraits for every input; returns ``(failed, total)``. Errors are printed, one line
    per failed input."""
    from speech2face.cli import fail
    from speech2face.errors import S2FError

    jobs, problems = plan(args.inputs, args.output, args.features)
    total = len(jobs) + len(problems)
    for name, problem in problems:
        _error(name, problem)
    if not jobs:
        return total, total
    try:
        from speech2face.inference import Portraitist

        artist = Portraitist.from_checkpoint(args.checkpoint, args.device, fast=not args.precise)
    except S2FError as error:
        fail(str(error), prog=PROG)
    failed = len(problems)
    for job in jobs:
        try:
            line = infer_one(artist, job, args.size)
        except S2FError as error:
            _error(None, str(error))
            failed += 1
        except OSError as error:  # unwritable output, full disk
            _error(str(error.filename or job.png), error.strerror or str(error))
            failed += 1
        else:
            if not args.quiet:
                print(line, flush=True)
    return failed, total


def plan(
    inputs: list[str], output: str | None, features: bool
) -> tuple[list[Job], list[tuple[str, str]]]:
    """The jobs for ``inputs``, and ``(input, problem)`` for those that cannot run (an empty
    directory, an output that clashes with another input's)."""
    sources: list[Path] = []
    problems: list[tuple[str, str]] = []
    batch = len(inputs) > 1
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            batch = True
            found = sorted(
                p
                for p in path.iterdir()
                if p.suffix.lower() in MEDIA_SUFFIXES and not p.name.startswith(".") and p.is_file()
            )
            if not found:
                problems.append((text, "a directory with no audio or video files"))
            sources.extend(found)
        else:
            sources.append(path)
    out = Path(output) if output else None
    into_dir = out is not None and (batch or out.is_dir() or output.endswith(("/", os.sep)))
    jobs: list[Job] = []
    claimed: dict[Path, Path] = {}
    for source in sources:
        if source.suffix.lower() in IMAGE_SUFFIXES:
            problems.append((str(source), _NOT_AUDIO))
            continue
        if out is None:
            png = source.with_name(source.stem + ".png")
        elif into_dir:
            png = out / (source.stem + ".png")
        else:
            png = out
        key = Path(os.path.abspath(png))
        if key in claimed:
            problems.append(
                (str(source), f"its portrait {png} would replace the one of {claimed[key]}")
            )
            continue
        npy = png.with_suffix(".npy") if features else None
        if npy is not None and Path(os.path.abspath(npy)) == key:
            problems.append(
                (str(source), f"its portrait and its feature would both be {png}: name it .png")
            )
            continue
        claimed[key] = source
        jobs.append(Job(source, png, npy))
    if into_dir and jobs:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            problems.extend(
                (str(job.source), f"cannot create {out}: {error.strerror}") for job in jobs
            )
            jobs = []
    return jobs, problems


_NOT_AUDIO = (
    "an image, not an audio file: s2f-infer reads a voice (a recording such as voice.wav, "
    "or a video's sound) and writes its portrait"
)


def infer_one(artist, job: Job, size: int | None) -> str:
    """Draw one portrait and write it (and its feature) atomically; the progress line."""
    import numpy as np

    from speech2face.audio import one_line_warnings
    from speech2face.errors import S2FError
    from speech2face.fileio import atomic_outputs, check_output

    outputs = [job.png] + ([job.npy] if job.npy is not None else [])
    for path in outputs:
        try:
            check_output(path, inputs=[job.source], overwrite=True)
        except S2FError as error:
            raise S2FError(f"{job.source}: {error}") from None
    with one_line_warnings(PROG):
        result = artist.predict(job.source)
    image = result.image()
    if size is not None and size != image.width:
        from PIL import Image

        image = image.resize((size, size), Image.Resampling.LANCZOS)
    with atomic_outputs(*outputs) as temps:
        image.save(temps[0], format="PNG")
        if job.npy is not None:
            with open(temps[1], "wb") as f:
                np.save(f, result.feature.numpy().astype(np.float32))
    written = ", ".join(str(path) for path in outputs)
    voice = f"{result.windows} window{'s' if result.windows != 1 else ''}, "
    return f"{job.source} -> {written} ({voice}{result.seconds:.1f} s of voice)"


def _error(name: str | None, problem: str) -> None:
    message = f"{name}: {problem}" if name else problem
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
