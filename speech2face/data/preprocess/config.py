"""Sources and face encoders built from their Hydra config nodes, with plain, picklable
factories whose errors stay one-line messages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from speech2face.data.sources import Source
from speech2face.errors import ConfigError

__all__ = ["build_target", "encoder_from_config", "source_from_config"]


def build_target(spec: dict[str, Any]) -> Any:
    """Call ``spec["_target_"]`` with the other keys (a plain, picklable instantiate whose
    errors pass through unwrapped, so user errors stay one-line messages)."""
    from hydra.utils import get_object

    spec = dict(spec)
    target = spec.pop("_target_", None)
    if not isinstance(target, str):
        raise ConfigError("a config to build needs a _target_")
    try:
        factory = get_object(target)
    except Exception:
        raise ConfigError(f"cannot import {target}") from None
    try:
        return factory(**spec)
    except TypeError as error:
        raise ConfigError(f"{target}: {error}") from None


def _missing(key: str) -> Exception:
    return ConfigError(f"missing required value '{key}': pass {key}=...")


def source_from_config(node: Any) -> Source:
    """The source a ``configs/source/*.yaml`` node describes."""
    missing = sorted(_missing_keys(node))
    if missing:
        raise _missing(missing[0])  # the full key, e.g. source.csv
    return build_target(_container(node))


def encoder_from_config(node: Any) -> tuple[Callable[[], Any], str]:
    """``(factory, name)`` for a ``configs/face_encoder/*.yaml`` node; the factory builds
    the encoder in each worker, the name (the config choice) is recorded with features."""
    import functools

    from hydra.core.hydra_config import HydraConfig

    missing = sorted(_missing_keys(node))
    if missing:
        raise _missing(missing[0])
    spec = _container(node)
    name = None
    if HydraConfig.initialized():
        name = HydraConfig.get().runtime.choices.get("face_encoder")
    name = name or str(spec.get("_target_", "encoder")).rsplit(".", 1)[-1]
    factory = functools.partial(build_target, spec)
    factory()  # fail now, in one line, rather than in every worker
    return factory, str(name)


def _missing_keys(node: Any) -> set[str]:
    from omegaconf import OmegaConf

    return set(OmegaConf.missing_keys(node))


def _container(node: Any) -> dict[str, Any]:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]
