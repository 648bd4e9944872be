"""Where the Hydra configs live, and composing them from Python."""

from __future__ import annotations

import math
import os
from pathlib import Path

from speech2face.errors import ConfigError

CONFIG_DIR_ENV = "S2F_CONFIG_DIR"


def config_dir() -> Path:
    """Absolute path of the ``configs/`` directory (``$S2F_CONFIG_DIR`` overrides it).

    An absolute path lets every entry point compose its config from any working directory.
    """
    override = os.environ.get(CONFIG_DIR_ENV)
    package = Path(__file__).resolve().parent
    if override:
        path = Path(override)
    elif (package.parent / "pyproject.toml").is_file():  # a source checkout (editable install)
        path = package.parent / "configs"
    else:  # an installed wheel carries them as speech2face/configs
        path = package / "configs"
    if not path.is_dir():
        raise ConfigError(
            f"config directory {path} not found; set {CONFIG_DIR_ENV} to the project's configs/"
        )
    return path


def compose(config_name: str, overrides: list[str] | None = None):
    """Compose ``configs/<config_name>.yaml`` with command-line style overrides.

    Returns an ``omegaconf.DictConfig``; handy in notebooks and tests.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides or []))


def require_number(value: object, name: str, minimum: float | None = None, strict: bool = False):
    """``value`` as a finite int/float, else a one-line :class:`ConfigError`.

    ``minimum`` bounds it from below (``strict``: ``value > minimum``).
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        bound = ">" if strict else ">="
        raise ConfigError(f"{name} must be {bound} {minimum}, got {value!r}")
    return value


def require_bool(value: object, name: str) -> bool:
    """``value`` if it is ``true`` or ``false``, else a one-line :class:`ConfigError`."""
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return value


def require_file_name(value: object, name: str, what: str = "a file") -> str:
    """``value`` as a non-empty path string, else a one-line :class:`ConfigError`.

    Hydra turns ``key=`` into ``''``, ``key=null`` into ``None`` and ``key=12`` into an int;
    a name that Hydra reads as a number or a list must be quoted: ``key='12'``.
    """
    if value is None or value == "":
        shown = "null" if value is None else "''"
        raise ConfigError(f"{name} must name {what}, got {shown}")
    if not isinstance(value, str):
        raise ConfigError(
            f"{name} must name {what}, got {value!r}; quote a name that looks like a number "
            f"or a list: \"{name}='...'\""
        )
    return value
