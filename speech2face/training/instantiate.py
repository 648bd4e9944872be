"""Building a run's parts from its Hydra config: ``instantiate`` with the library's own
one-line errors, a factory called with the settings it accepts, and the options chosen."""

from __future__ import annotations

from typing import Any

from speech2face.errors import ConfigError, S2FError


def build(node: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate(node, **kwargs)``, with the library's own one-line errors
    (:class:`S2FError`) raised as themselves rather than wrapped by Hydra."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    kwargs.setdefault("_convert_", "all")
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        while cause is not None and not isinstance(cause, S2FError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        raise


def call_with_accepted(factory: Any, what: str, **kwargs: Any) -> Any:
    """Call ``factory`` (a class or a partial from the config node ``what``) with those of
    ``kwargs`` its signature accepts: config-chosen losses take different parts of the
    models. A setting the target does not take is a :class:`ConfigError`."""
    import inspect

    try:
        signature = inspect.signature(factory)
        params = signature.parameters
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            kwargs = {name: value for name, value in kwargs.items() if name in params}
        signature.bind(**kwargs)
    except (TypeError, ValueError) as error:
        cause = error.__cause__ or error
        raise ConfigError(f"{what}: {cause}") from None
    return factory(**kwargs)


def face_encoder_name(cfg: Any) -> str:
    """The ``face_encoder=<name>`` choice (from Hydra, else from the target class)."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        name = HydraConfig.get().runtime.choices.get("face_encoder")
        if name:
            return str(name)
    from hydra.utils import get_class

    from speech2face.models import FACE_ENCODERS

    cls = get_class(str(cfg.face_encoder._target_))
    for name, known in FACE_ENCODERS.items():
        if known is cls:
            return name
    return cls.__name__


def missing(cfg: Any, key: str) -> bool:
    """Whether ``cfg.key`` is absent or still the required ``???``."""
    from omegaconf import OmegaConf

    return key not in cfg or OmegaConf.is_missing(cfg, key)


def choice(group: str) -> str | None:
    """The option chosen for a config group in this Hydra run, if any."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return HydraConfig.get().runtime.choices.get(group)
    return None
