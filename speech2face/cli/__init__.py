"""Command-line entry points: each composes a Hydra config and calls the library.

``COMMANDS`` maps a command name to ``(module:function, summary)``; the same functions are
installed as ``s2f-<name>`` console scripts and run as ``python -m speech2face <name>``.
Modules are imported only when their command runs, so ``--help`` stays instant.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

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
}


def fail(message: str, prog: str | None = None, code: int = 2) -> None:
    """Print ``<prog>: error: <message>`` on one line to stderr and exit with ``code``."""
    prog = prog or _prog()
    print(f"{prog}: error: {' '.join(str(message).split())}", file=sys.stderr)
    raise SystemExit(code)


def _prog() -> str:
    import os

    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "speech2face"


def hydra_entry(config_name: str) -> Callable[[Callable[[Any], Any]], Callable[[], None]]:
    """Turn ``task(cfg)`` into a console-script ``main()`` that composes ``configs/<name>``.

    User errors (:class:`speech2face.errors.S2FError`, missing ``???`` values) become one
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

            overrides = sys.argv[1:]
            if not any(arg.startswith("-") for arg in overrides):  # not --help, --cfg, -m
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


def check_overrides(config_name: str, overrides: list[str]) -> None:
    """Compose once up front so a bad override is one line on stderr, not Hydra's report.

    Catches unknown config groups or options (``source=foo``) and override syntax errors.
    """
    from speech2face.config import compose

    try:
        compose(config_name, overrides)
    except Exception as error:  # Hydra raises several unrelated types here
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        message = lines[0] if lines else type(error).__name__
        if "Available options" in str(error):
            start = next(i for i, line in enumerate(lines) if line.startswith("Available"))
            options = [
                line for line in lines[start + 1 :] if not line.startswith(("Config", "provider"))
            ]
            message += f" (available: {', '.join(options)})"
        elif len(lines) > 1 and lines[1].startswith("To append"):
            message += f" {lines[1]}"
        elif "override_grammar" in str(error) or "mismatched input" in message:
            message = f"cannot parse overrides {' '.join(overrides)!r}: {message}"
        fail(message)
