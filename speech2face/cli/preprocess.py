"""``s2f-preprocess``: source segments -> shards, manifest, failures and stats (resumable)."""

from __future__ import annotations

import os

from omegaconf import DictConfig

from speech2face.cli import hydra_entry

ACTIONS = ("preprocess", "features", "merge")


@hydra_entry("preprocess")
def main(cfg: DictConfig) -> dict:
    from speech2face.data.preprocess import (
        PreprocessOptions,
        encoder_from_config,
        merge_outputs,
        preprocess,
        recompute_features,
        source_from_config,
    )
    from speech2face.errors import ConfigError, S2FError

    if cfg.action not in ACTIONS:
        raise ConfigError(f"action must be one of {', '.join(ACTIONS)}, got '{cfg.action}'")
    out = str(cfg.output_dir)
    jobs = {k: _int(cfg, k) for k in ("shard_index", "num_shards", "threads")}
    if cfg.action == "merge":
        from speech2face.runlock import hold_directory

        with hold_directory(out, "s2f-preprocess action=merge", name=".s2f.lock"):
            result = merge_outputs(out)
    else:
        if not isinstance(cfg.progress, bool):
            raise ConfigError(f"progress must be true or false, got {cfg.progress!r}")
        batch = _int(cfg, "feature_batch_size", minimum=1)
        options = None
        if cfg.action == "preprocess":  # checked before any model is built
            names = PreprocessOptions.__dataclass_fields__
            options = PreprocessOptions(**{k: _value(cfg, k) for k in names})
        factory, name = encoder_from_config(cfg.face_encoder)
        common = dict(device=str(cfg.device), progress=cfg.progress, **jobs)
        if cfg.action == "features":
            result = recompute_features(out, factory, name, batch_size=batch, **common)
        else:
            result = preprocess(
                source_from_config(cfg.source), out, factory, name, options,
                shard_size=_int(cfg, "shard_size"), workers=_int(cfg, "workers"),
                feature_batch_size=batch, **common,
            )  # fmt: skip
    print(summary(out, cfg.action, result))
    if cfg.action != "features" and result.get("complete") is not False and not result["kept"]:
        failures = os.path.join(out, "failures.jsonl")
        raise S2FError(f"no segment was kept: {_reasons(result)} (see {failures})")
    return result


def _int(cfg: DictConfig, key: str, minimum: int | None = None) -> int:
    from speech2face.errors import ConfigError

    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key} must be >= {minimum}, got {value}")
    return value


def _value(cfg: DictConfig, key: str):
    """A plain value (lists and mappings as Python containers, for the error message)."""
    from omegaconf import OmegaConf

    value = cfg[key]
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def summary(out: str, action: str, result: dict) -> str:
    if action == "features":
        return f"{out}: features of {result['samples']} samples ({result['rewritten']} shards rewritten)"
    if result.get("complete") is False:
        return (
            f"{out}: {result['chunks_done']} of {result['chunks']} chunks done (other jobs pending)"
        )
    reasons = _reasons(result)
    failed = f"{result['failed']} failed ({reasons})" if result["failed"] else "0 failed"
    return f"{out}: kept {result['kept']} of {result['segments']} segments, {failed}; {result['shards']} shards"


def _reasons(result: dict) -> str:
    """``no_face 3, decode_error 1``: the failures of a finished run, by reason."""
    return ", ".join(f"{k} {v}" for k, v in result["failures_by_reason"].items()) or "no segments"
