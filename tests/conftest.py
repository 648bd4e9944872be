import pytest

# Session fixtures shared by several directories, each built once per run.
pytest_plugins = ["tests.fixtures"]


def pytest_collection_modifyitems(config, items):
    """GPU tests skip cleanly on machines without CUDA even when selected with -m gpu."""
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover - torch is a hard dependency
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
