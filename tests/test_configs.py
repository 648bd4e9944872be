"""Every config composes, and every ``_target_`` in it instantiates."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from speech2face.config import compose, config_dir

CONFIGS = config_dir()
ROOTS = sorted(path.stem for path in CONFIGS.glob("*.yaml"))
GROUP_OPTIONS = sorted(
    (path.parent.relative_to(CONFIGS).as_posix(), path.stem)
    for path in CONFIGS.glob("*/**/*.yaml")
    if path.relative_to(CONFIGS).parts[0] != "hydra"
)


def instantiate_targets(node, found: list[str]) -> None:
    """Instantiate each outermost ``_target_`` node that has no ``???`` value left in it."""
    if isinstance(node, DictConfig):
        if "_target_" in node:
            if not OmegaConf.missing_keys(node):
                instantiate(node)
                found.append(str(node._target_))
            return
        for key in node:
            instantiate_targets(node._get_node(key), found)
    elif isinstance(node, ListConfig):
        for item in node:
            instantiate_targets(item, found)


def root_for(group: str) -> str | None:
    """The first root config whose defaults list names ``group``."""
    for root in ROOTS:
        text = (CONFIGS / f"{root}.yaml").read_text()
        if f"- {group}:" in text or f"- optional {group}:" in text:
            return root
    return None


def test_there_are_configs():
    assert "spectrogram" in ROOTS


@pytest.mark.parametrize("root", ROOTS)
def test_root_config_composes_and_instantiates(root):
    cfg = compose(root)
    instantiate_targets(cfg, [])


@pytest.mark.parametrize("group, option", GROUP_OPTIONS)
def test_group_option_composes_and_instantiates(group, option):
    root = root_for(group)
    if root is None:
        cfg = OmegaConf.load(CONFIGS / group / f"{option}.yaml")
    else:
        cfg = compose(root, [f"{group.replace('/', '.')}={option}"])
    found: list[str] = []
    instantiate_targets(cfg, found)
    assert isinstance(cfg, DictConfig)


def test_config_dir_is_absolute():
    assert Path(CONFIGS).is_absolute()
