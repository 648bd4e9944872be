"""Every config composes, and every ``_target_`` in it instantiates."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from hydra.utils import get_object, instantiate
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
    """Instantiate each outermost ``_target_`` node.

    A node still holding required ``???`` values cannot be built without user input; its
    target must then at least import and accept every key the node sets.
    """
    if isinstance(node, DictConfig):
        if "_target_" in node:
            if OmegaConf.missing_keys(node):
                check_signature(node)
            else:
                instantiate(node)
            found.append(str(node._target_))
            return
        for key in node:
            instantiate_targets(node._get_node(key), found)
    elif isinstance(node, ListConfig):
        for item in node:
            instantiate_targets(item, found)


def check_signature(node: DictConfig) -> None:
    target = get_object(str(node._target_))
    parameters = inspect.signature(target).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    unknown = [key for key in node if not str(key).startswith("_") and key not in parameters]
    assert not unknown, f"{node._target_} does not take {unknown}"


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
    text = (CONFIGS / group / f"{option}.yaml").read_text()
    if root is not None and text.lstrip().startswith("# @package _global_"):
        # A preset (experiment=, debug=) edits the whole config: it must change something,
        # and everything it may have swapped in must still build.
        assert cfg != compose(root), f"{group}/{option} changes nothing"
        instantiate_targets(cfg, found)
        return
    instantiate_targets(cfg[group.split("/")[0]] if root else cfg, found)
    assert found, f"{group}/{option} builds nothing"


def test_config_dir_is_absolute():
    assert Path(CONFIGS).is_absolute()
