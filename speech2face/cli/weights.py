"""``s2f-weights``: list the pretrained weight files, or download one into the cache.

The listing prints the cache directory, a header, then per file a row (name, state,
checksum, registered size, size on disk, path) and a line with its description and URL.
"""

from __future__ import annotations

from omegaconf import DictConfig

from speech2face.cli import hydra_entry

ACTIONS = ("list", "fetch")
HEADER = ("name", "state", "checksum", "size", "on disk", "path")


@hydra_entry("weights")
def main(cfg: DictConfig) -> dict:
    from speech2face import weights
    from speech2face.errors import ConfigError

    cache_dir = cfg.cache_dir or None
    if cfg.action == "list":
        rows = weights.listing(cache_dir)
        print(
            f"weights cache: {weights.local_path(next(iter(weights.REGISTRY)), cache_dir).parent}"
        )
        table = [HEADER] + [
            (
                str(row["name"]),
                str(row["state"]),
                str(row["checksum"]),
                weights.format_size(row["size"]),
                weights.format_size(row["on_disk"], unknown="-"),
                str(row["path"]),
            )
            for row in rows
        ]
        widths = [max(len(line[column]) for line in table) for column in range(len(HEADER) - 1)]
        for index, line in enumerate(table):
            cells = [cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=True)]
            print("  ".join([*cells, line[-1]]))
            if index:
                row = rows[index - 1]
                print(f"{'':<{widths[0]}}  {row['description']}; from {row['url']}")
        return {"entries": rows}
    if cfg.action == "fetch":
        if not cfg.name:
            known = ", ".join(weights.REGISTRY)
            raise ConfigError(f"action=fetch needs name=<one of: {known}>")
        path = weights.fetch(str(cfg.name), cache_dir=cache_dir, download=cfg.download)
        print(f"{cfg.name}: {path}")
        return {"path": str(path)}
    raise ConfigError(f"unknown action '{cfg.action}' (choose from: {', '.join(ACTIONS)})")
