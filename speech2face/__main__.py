"""``python -m speech2face <command> [arguments]`` runs the ``s2f-<command>`` script."""

from __future__ import annotations

import importlib
import sys

from speech2face import __version__
from speech2face.cli import COMMANDS


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [
        f"speech2face {__version__}: learn to draw a face from a voice",
        "",
        "usage: python -m speech2face <command> [key=value ...]",
        "       python -m speech2face infer FILE_OR_DIR... [options]",
        "       python -m speech2face serve [--checkpoint CKPT] [--port 7860]",
        "       (each command is also installed as s2f-<command>)",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "Run 'python -m speech2face <command> --help' for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return
    if argv[0] in ("-V", "--version"):
        print(__version__)
        return
    name = argv[0]
    if name not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(name, COMMANDS, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else "see --help"
        print(f"speech2face: error: unknown command '{name}' ({hint})", file=sys.stderr)
        raise SystemExit(2)
    module_name, func_name = COMMANDS[name][0].split(":")
    entry = getattr(importlib.import_module(module_name), func_name)
    sys.argv = [f"s2f-{name}", *argv[1:]]
    entry()


if __name__ == "__main__":
    main()
