"""``s2f-weights``: list the pretrained weight files, or download one into the cache."""

from __future__ import annotations

from omegaconf import DictConfig

from speech2face.cli import hydra_entry

ACTIONS = ("list", "fetch")


@hydra_entry("weights")
def main(cfg: DictConfig) -> dict:
    from speech2face import weights
    from speech2face.errors import ConfigError

    cache_dir = cfg.cache_dir or None
    if cfg.action == "list":
        rows = weights.listing(cache_dir)
        width = max(len(row["name"]) for row in rows)
        print(
            f"weights cache: {weights.local_path(next(iter(weights.REGISTRY)), cache_dir).parent}"
        )
        for row in rows:
            print(
                f"{row['name']:<{width}}  {row['state']:<8}  {row['checksum']:<22}  {row['path']}"
            )
            print(f"{'':<{width}}  {row['description']}; from {row['url']}")
        return {"entries": rows}
    if cfg.action == "fetch":
        if not cfg.name:
            known = ", ".join(weights.REGISTRY)
            raise ConfigError(f"action=fetch needs name=<one of: {known}>")
        path = weights.fetch(str(cfg.name), cache_dir=cache_dir, download=cfg.download)
        print(f"{cfg.name}: {path}")
        return {"path": str(path)}
    raise ConfigError(f"unknown action '{cfg.action}' (choose from: {', '.join(ACTIONS)})")
