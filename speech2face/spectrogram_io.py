"""File-level helpers around :mod:`speech2face.audio`: file -> spectrogram -> .npy / .png."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from speech2face.audio import SAMPLE_RATE, fit_to_length, load_audio, spectrogram


def spectrogram_of_file(path: str | os.PathLike, seconds: float = 6.0, offset: float = 0.0):
    """Load ``path``, apply the tile/cut rule to ``seconds``, return ``(2, F, 257)``."""
    num_samples = int(round(seconds * SAMPLE_RATE))
    wav = load_audio(path, max_seconds=seconds, offset_seconds=offset)  # (T,)
    return spectrogram(fit_to_length(wav, num_samples))


def save_spectrogram(spec: torch.Tensor, path: Path) -> None:
    """``spec``: ``(2, F, 257)``; written as float32 .npy."""
    with open(path, "wb") as f:
        np.save(f, spec.detach().cpu().numpy().astype(np.float32))


def save_preview(spec: torch.Tensor, path: Path, image_format: str = "png") -> None:
    """``spec``: ``(2, F, 257)``; real and imaginary channels stacked, time on x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    for ax, channel, name in zip(axes, spec.cpu().numpy(), ("real", "imaginary"), strict=True):
        ax.imshow(channel.T, origin="lower", aspect="auto", cmap="RdBu_r")
        ax.set_ylabel(f"{name}\nfrequency bin")
    axes[-1].set_xlabel("frame (10 ms)")
    fig.tight_layout()
    try:
        fig.savefig(path, format=image_format)
    finally:
        plt.close(fig)
