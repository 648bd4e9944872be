"""Audio windows cut from one waveform: the paper's fixed-length window and the windows that
cover a whole segment, as ``s2f-eval`` and ``s2f-infer`` both cut them."""

from __future__ import annotations

import torch
from torch import Tensor

from speech2face.audio import fit_to_length


def fixed_window(wav: Tensor, samples: int) -> Tensor:  # (L,) -> (samples,)
    """The first ``samples`` of ``wav``, tiled when it is shorter (the paper's short audio)."""
    return fit_to_length(wav[:samples], samples)


def clip_windows(wav: Tensor, samples: int) -> Tensor:  # (L,) -> (W, samples)
    """Windows of ``samples`` covering ``wav`` with a hop of half a window, the last one
    flush with its end; one tiled window when ``wav`` is shorter."""
    length = wav.numel()
    if length <= samples:
        return fixed_window(wav, samples)[None]
    hop = max(samples // 2, 1)
    starts = list(range(0, length - samples + 1, hop))
    if starts[-1] != length - samples:
        starts.append(length - samples)
    return torch.stack([wav[start : start + samples] for start in starts])
