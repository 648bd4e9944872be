"""Hydra overrides checked before a command runs, and quoted for a command line.

:func:`check_overrides` refuses a bad ``key=value`` (a typo, an unknown config group, a value
that needs quoting) with one line on stderr instead of Hydra's report;
:func:`hydra_override` and :func:`quoted_override` write a value so that Hydra reads it back
as one string.
"""

from __future__ import annotations

import re
from typing import Any

from speech2face.cli.console import fail


def plain_run_overrides(argv: list[str]) -> list[str] | None:
    """The overrides of ``argv`` when it asks for one run of this command's own config.

    ``None`` for ``--help``, ``--info``, ``-m`` (sweeps), another ``--config-name`` or
    ``--config-dir`` and the like: Hydra handles those itself. ``--cfg job`` is checked.
    """
    import contextlib
    import io

    from hydra._internal.utils import get_args_parser

    quiet = io.StringIO()
    try:
        with contextlib.redirect_stderr(quiet), contextlib.redirect_stdout(quiet):
            args = get_args_parser().parse_args(argv)
    except SystemExit:  # --version, or bad flags: Hydra's own parser answers them
        return None
    special = (
        args.help,
        args.hydra_help,
        args.info,
        args.multirun,
        args.shell_completion,
        args.config_path,
        args.config_name,
        args.config_dir,
        args.experimental_rerun,
    )
    return None if any(special) else list(args.overrides)


def check_overrides(config_name: str, overrides: list[str]) -> None:
    """Refuse a bad override up front with one line on stderr, not Hydra's report.

    Catches syntax errors (saying how to quote), keys that are not in the composed config,
    even with ``+`` or ``++`` (naming the closest known key), unknown config groups or
    options (``source=foo``), and values Hydra cannot apply. ``hydra.*`` keys, config groups
    (``source=voxceleb2``, ``+group=option``), their nested keys (``source.csv=...``) and
    ``~key`` deletions of keys that exist pass.
    """
    parsed = [_parse_override(text) for text in overrides]
    structural = [_is_structural(override) for override in parsed]
    base = _compose_or_fail(
        config_name, [text for text, chosen in zip(overrides, structural, strict=True) if chosen]
    )
    for override, is_structural in zip(parsed, structural, strict=True):
        if not is_structural and not _may_set(base, override):
            fail(_unknown_key(override.key_or_group, base))
    _compose_or_fail(config_name, overrides)


def _parse_override(text: str) -> Any:
    """One Hydra override, or a one-line error that says how to quote its value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        override = OverridesParser.create().parse_overrides([text])[0]
    except OverrideParseException:
        if "=" not in text:
            fail(f"cannot parse {text!r}: overrides are key=value (or ~key to delete one)")
        fail(
            f"cannot parse {text!r}: quote a value with special characters: {quoted_override(text)}"
        )
    if override.is_sweep_override():
        fail(
            f"ambiguous value in {text!r}: to use it as one name, quote it: "
            f"{quoted_override(text)}; for a list write [a,b]; to sweep, add --multirun"
        )
    return override


def hydra_override(key: str, value: object) -> str:
    """``key='value'``: any value (a path with spaces, commas, brackets, quotes) as one Hydra
    string, for a command line given to a subprocess as a list (no shell)."""
    value = str(value)
    quote = '"' if "'" in value and '"' not in value else "'"
    value = re.sub(rf"(\\+)(?=$|{quote})", lambda m: m.group(1) * 2, value)  # Hydra's escapes
    value = value.replace(quote, "\\" + quote)
    return f"{key}={quote}{value}{quote}"


def quoted_override(text: str) -> str:
    """``key=value`` with the value quoted for Hydra, then the whole for a POSIX shell.

    ``input=a(1).wav`` -> ``"input='a(1).wav'"``; ``input=it's.wav`` ->
    ``"input=\\"it's.wav\\""``.
    """
    key, _, value = text.partition("=")
    override = hydra_override(key, value)
    return '"' + re.sub(r'(["$`\\])', r"\\\1", override) + '"'


def _is_structural(override: Any) -> bool:
    """``hydra.*`` settings and config-group choices: Hydra itself validates those."""
    from speech2face.config import config_dir

    if override.is_hydra_override():
        return True
    return (config_dir() / override.key_or_group).is_dir()


def _may_set(cfg: Any, override: Any) -> bool:
    """Whether ``override`` names a key of ``cfg``, or adds one to an empty mapping."""
    from hydra.core.override_parser.types import OverrideType
    from omegaconf import DictConfig

    key = override.key_or_group
    if _node(cfg, key) is not None:
        return True
    parent, _, _ = key.rpartition(".")
    node = _node(cfg, parent) if parent else None
    adding = override.type in (OverrideType.ADD, OverrideType.FORCE_ADD)
    return adding and isinstance(node, DictConfig) and len(node.keys()) == 0


def _node(cfg: Any, key: str) -> Any:
    """The node at dotted ``key`` in ``cfg`` (missing ``???`` values included), or None."""
    from omegaconf import DictConfig, ListConfig

    node = cfg
    for part in key.split("."):
        if isinstance(node, DictConfig) and part in node.keys():  # noqa: SIM118 (`in` skips ???)
            node = node._get_node(part)
        elif isinstance(node, ListConfig) and part.isdigit() and int(part) < len(node):
            node = node._get_node(int(part))
        else:
            return None
    return node


def _known_keys(node: Any, prefix: str = "") -> list[str]:
    """Every dotted key in ``node``, inner ones included."""
    from omegaconf import DictConfig

    keys: list[str] = []
    if isinstance(node, DictConfig):
        for key in node.keys():  # noqa: SIM118
            name = f"{prefix}{key}"
            keys += [name, *_known_keys(node._get_node(key), f"{name}.")]
    return keys


def _unknown_key(key: str, cfg: Any) -> str:
    """``unknown key 'ouput' (did you mean 'output'?)``."""
    import difflib

    known = _known_keys(cfg)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"unknown key '{key}' (did you mean '{close[0]}'?)"
    top = [k for k in known if "." not in k]
    return f"unknown key '{key}' (known keys: {', '.join(top)})"


def _compose_or_fail(config_name: str, overrides: list[str]) -> Any:
    """The composed config, or Hydra's complaint as one line."""
    from speech2face.config import compose

    try:
        return compose(config_name, overrides)
    except Exception as error:  # Hydra raises several unrelated types here
        fail(_hydra_message(error, config_name))


def _hydra_message(error: Exception, config_name: str) -> str:
    from speech2face.config import compose

    text = str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    message = lines[0] if lines else type(error).__name__
    missing_group = re.match(r"Could not override '([^']+)'\. No match in the defaults list", text)
    if missing_group:
        return _unknown_key(missing_group.group(1), compose(config_name, []))
    if "Available options" in text:
        start = next(i for i, line in enumerate(lines) if line.startswith("Available"))
        options = [
            line for line in lines[start + 1 :] if not line.startswith(("Config", "provider"))
        ]
        message += f" (available: {', '.join(options)})"
    return message
