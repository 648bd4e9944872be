"""The voice encoder's time pooling against torch's own ``max_pool2d``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from speech2face.models.layers import TimeMaxPool


def _activations(rows: int, channels_last: bool) -> torch.Tensor:
    """``(2, 3, rows, 5)`` values with many ties (rectified, then rounded) and a NaN."""
    torch.manual_seed(rows)
    x = torch.randn(2, 3, rows, 5).relu().mul(2).round()
    x[0, 1, 2, 3] = float("nan")  # a NaN beside a number
    x[1, 2, 4:6, 0] = float("nan")  # two NaNs in one window
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@pytest.mark.parametrize("rows", [8, 9])
@pytest.mark.parametrize("channels_last", [False, True])
def test_time_pooling_gives_max_pool2d_values_and_gradients(rows, channels_last):
    x = _activations(rows, channels_last)
    assert (x[:, :, 0 : rows // 2 * 2 : 2] == x[:, :, 1 : rows // 2 * 2 : 2]).float().mean() > 0.3
    ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = TimeMaxPool(2)(ours)
    expected = F.max_pool2d(theirs, (2, 1), (2, 1))
    assert out.shape == expected.shape == (2, 3, rows // 2, 5)
    torch.testing.assert_close(out, expected, equal_nan=True, rtol=0, atol=0)
    weights = torch.randn(expected.shape)
    (out.nan_to_num() * weights).sum().backward()
    (expected.nan_to_num() * weights).sum().backward()
    # The same element of every window gets the gradient: the first of a tie, a NaN.
    torch.testing.assert_close(ours.grad, theirs.grad, rtol=0, atol=0)
    with torch.no_grad():  # the path of inference and evaluation
        torch.testing.assert_close(TimeMaxPool(2)(ours), expected, equal_nan=True, rtol=0, atol=0)


def test_time_pooling_other_factors_are_max_pool2d():
    x = torch.randn(1, 2, 9, 4)
    torch.testing.assert_close(TimeMaxPool(3)(x), F.max_pool2d(x, (3, 1), (3, 1)))
