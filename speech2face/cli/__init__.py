"""Command-line entry points: each composes a Hydra config and calls the library.

``COMMANDS`` maps a command name to ``(module:function, summary)``; the same functions are
installed as ``s2f-<name>`` console scripts and run as ``python -m speech2face <name>``.
Modules are imported only when their command runs, so ``--help`` stays instant.

The helpers the commands share live here (:func:`hydra_entry`, :func:`add_model_options`);
:func:`fail` comes from :mod:`speech2face.cli.console` and the override checking and quoting
from :mod:`speech2face.cli.overrides`, both re-exported.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from speech2face.cli.console import fail
from speech2face.cli.overrides import (
    check_overrides,
    hydra_override,
    plain_run_overrides,
    quoted_override,
)

__all__ = [
    "COMMANDS",
    "add_model_options",
    "check_overrides",
    "fail",
    "hydra_entry",
    "hydra_override",
    "quoted_override",
]

COMMANDS: dict[str, tuple[str, str]] = {
    "spectrogram": (
        "speech2face.cli.spectrogram:main",
        "turn an audio or video file into the voice encoder's input (.npy, optional .png)",
    ),
    "weights": ("speech2face.cli.weights:main", "list pretrained weight files, or fetch one"),
    "preprocess": (
        "speech2face.cli.preprocess:main",
        "videos (AVSpeech, VoxCeleb2, a manifest) -> training shards; resumable, parallel",
    ),
    "train": (
        "speech2face.cli.train:main",
        "train the face decoder (task=decoder), the voice encoder (task=voice), or an "
        "attribute classifier (task=attributes)",
    ),
    "eval": (
        "speech2face.cli.eval:main",
        "the paper's evaluation of a voice checkpoint: metrics.json and report.html",
    ),
    "infer": (
        "speech2face.cli.infer:main",
        "draw the face behind each voice: s2f-infer voice.wav -> voice.png",
    ),
    "serve": (
        "speech2face.cli.serve:main",
        "a local web page: record or drop a voice, see its portrait (the 'web' extra)",
    ),
    "demo": (
        "speech2face.cli.demo:main",
        "the whole pipeline offline on a synthetic corpus; installs s2f-infer's default model",
    ),
}


def add_model_options(parser: Any) -> None:
    """``--checkpoint``, ``--device`` and ``--precise``, the options of a command that runs a
    voice model through :class:`speech2face.inference.Portraitist` (``fast=not
    args.precise``)."""
    parser.add_argument(
        "--checkpoint",
        metavar="CKPT",
        help="a voice checkpoint (RUN_VOICE/checkpoints/last.pt); default: "
        "$S2F_HOME/models/default.pt",
    )
    parser.add_argument(
        "--device",
        default="auto",
        choices=("cpu", "cuda", "auto"),
        help="where the model runs (default: auto, CUDA when there is one)",
    )
    parser.add_argument(
        "--precise",
        action="store_true",
        help="float32 throughout (default: bfloat16 autocast where the hardware has it)",
    )


def hydra_entry(
    config_name: str, usage: Callable[[], str] | None = None
) -> Callable[[Callable[[Any], Any]], Callable[[], None]]:
    """Turn ``task(cfg)`` into a console-script ``main()`` that composes ``configs/<name>``.

    ``usage``, when given, is what ``-h``/``--help`` prints instead of Hydra's generic help
    (``--hydra-help`` still gives Hydra's own). User errors (:class:`speech2face.errors.S2FError`, missing ``???`` values) become one
    line on stderr and exit status 2; the config directory is absolute, so the command works
    from any working directory.
    """

    def decorate(task: Callable[[Any], Any]) -> Callable[[], None]:
        @functools.wraps(task)
        def main() -> None:
            import hydra
            from omegaconf.errors import MissingMandatoryValue

            from speech2face.config import config_dir
            from speech2face.errors import S2FError

            try:
                path = str(config_dir())
            except S2FError as error:
                fail(str(error))

            if usage is not None and any(arg in ("-h", "--help") for arg in sys.argv[1:]):
                print(usage())
                return
            overrides = plain_run_overrides(sys.argv[1:])
            if overrides is not None:
                check_overrides(config_name, overrides)

            @hydra.main(version_base="1.3", config_path=path, config_name=config_name)
            def _run(cfg: Any) -> Any:
                try:
                    return task(cfg)
                except S2FError as error:
                    fail(str(error))
                except OSError as error:  # unwritable output, full disk, permissions
                    where = f": {error.filename}" if error.filename else ""
                    fail(f"{error.strerror or error}{where}")
                except MissingMandatoryValue as error:
                    key = getattr(error, "full_key", None) or "a required value"
                    fail(f"missing required value '{key}': pass {key}=...")
                except KeyboardInterrupt:
                    fail("interrupted", code=130)

            _run()

        return main

    return decorate
