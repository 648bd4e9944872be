"""``s2f-weights``: list the pretrained weight files, download one, or verify the cached ones.

``action=list`` (the default) prints the cache directory, a header, then per file a row
(name, state, checksum, registered size, size on disk, path), a line with its description
and URL, and a note on the states. Listing reads sizes and the ``<file>.sha256`` records
only, never a file's contents, so it is instant; ``action=verify`` hashes the cached files
now. ``name=...`` limits either to one file; ``action=fetch name=... [force=true]``
downloads one.
"""

from __future__ import annotations

from omegaconf import DictConfig

from speech2face.cli import hydra_entry

ACTIONS = ("list", "fetch", "verify")
HEADER = ("name", "state", "checksum", "size", "on disk", "path")
STATES_NOTE = (
    "states come from the sizes and each file's <file>.sha256 record, without hashing: "
    "'unverified (not hashed)' = no record for the file as it is now, "
    "'unverified (no checksum)' = none is published; "
    "s2f-weights action=verify [name=...] checks the cached files now"
)


@hydra_entry("weights")
def main(cfg: DictConfig) -> dict:
    from speech2face import weights
    from speech2face.errors import ConfigError

    cache_dir = cfg.cache_dir or None
    names = [weights.get_entry(str(cfg.name)).name] if cfg.name else None
    if cfg.action == "list":
        return list_entries(cache_dir, names)
    if cfg.action == "verify":
        return verify_entries(cache_dir, names)
    if cfg.action == "fetch":
        if not names:
            known = ", ".join(weights.REGISTRY)
            raise ConfigError(f"action=fetch needs name=<one of: {known}>")
        if not isinstance(cfg.force, bool):
            raise ConfigError(f"force must be true or false, got '{cfg.force}'")
        path = weights.fetch(names[0], cache_dir=cache_dir, download=cfg.download, force=cfg.force)
        print(f"{cfg.name}: {path}")
        return {"path": str(path)}
    raise ConfigError(f"unknown action '{cfg.action}' (choose from: {', '.join(ACTIONS)})")


def list_entries(cache_dir: str | None, names: list[str] | None) -> dict:
    """Print the table of weight files (all, or ``names``); never reads their contents."""
    from speech2face import weights

    rows = weights.listing(cache_dir, names)
    print(f"weights cache: {weights.local_path(next(iter(weights.REGISTRY)), cache_dir).parent}")
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
    print(STATES_NOTE)
    return {"entries": rows}


def verify_entries(cache_dir: str | None, names: list[str] | None) -> dict:
    """Check the cached files now (all, or ``names``): one line each, an error if any fails.

    A file that is not cached is reported, and is an error only when it was named.
    """
    from speech2face import weights

    results = {}
    problems = []
    for name in names or list(weights.REGISTRY):
        state, detail = weights.verify(name, cache_dir)
        results[name] = state
        if state in weights.BAD_STATES:
            print(f"{name}: {state}")
            problems.append(detail)
            continue
        print(f"{name}: {state}: {detail}")
        if names and not weights.local_path(name, cache_dir).is_file():
            problems.append(f"{name} is not cached: s2f-weights action=fetch name={name}")
    if problems:
        raise weights.WeightsError("; ".join(problems))
    return {"states": results}
