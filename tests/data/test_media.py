"""Frame times and int16 audio written by the preprocessing."""

from __future__ import annotations

import numpy as np
import pytest

from speech2face.data.dataset import PCM_SCALE as READ_SCALE
from speech2face.data.media import frame_times, to_pcm16


def test_frame_times_start_at_the_segment_start_and_spread_through_it():
    assert frame_times(2.0, 6.0, 5) == pytest.approx([2.0, 2.8, 3.6, 4.4, 5.2])
    assert frame_times(2.0, 6.0, 1) == [2.0]
    times = frame_times(0.5, 4.13, 3)
    assert times[0] == 0.5 and all(0.5 <= t < 4.13 for t in times)
    assert np.allclose(np.diff(times), (4.13 - 0.5) / 3)
    with pytest.raises(ValueError):
        frame_times(0.0, 1.0, 0)


def test_pcm16_is_the_inverse_of_the_dataset_scale():
    """x -> round(x * 32768) clipped to int16; the dataset reads int16 / 32768."""
    x = np.array([0.0, 0.5, -0.5, -1.0, 1.0, 1.5, -1.5, 1 / 32768, 0.25 + 0.4 / 32768])
    pcm = to_pcm16(x)
    assert pcm.dtype == np.int16
    assert pcm.tolist() == [0, 16384, -16384, -32768, 32767, 32767, -32768, 1, 8192]
    assert READ_SCALE == 32768
    inside = np.linspace(-1.0, 1.0 - 1 / 32768, 1001)
    back = to_pcm16(inside).astype(np.float64) / READ_SCALE
    assert np.abs(back - inside).max() <= 0.5 / 32768 + 1e-12  # half a step: exact rounding
