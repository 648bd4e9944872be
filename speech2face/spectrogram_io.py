"""File-level helpers around :mod:`speech2face.audio`: file -> spectrogram -> .npy / .png."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from speech2face.audio import SAMPLE_RATE, fit_to_length, load_audio, spectrogram
from speech2face.errors import S2FError


def spectrogram_of_file(path: str | os.PathLike, seconds: float = 6.0, offset: float = 0.0):
    """Load ``path``, apply the tile/cut rule to ``seconds``, return ``(2, F, 257)``."""
    num_samples = int(round(seconds * SAMPLE_RATE))
    wav = load_audio(path, max_seconds=seconds, offset_seconds=offset)  # (T,)
    return spectrogram(fit_to_length(wav, num_samples))


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename into ``path``: no half-written file is ever seen."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise S2FError(f"{path}: output directory {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_spectrogram(spec: torch.Tensor, path: Path) -> None:
    """``spec``: ``(2, F, 257)``; written as float32 .npy atomically."""
    array = spec.detach().cpu().numpy().astype(np.float32)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, array)

    atomic_write(path, write)


def save_preview(spec: torch.Tensor, path: Path) -> None:
    """``spec``: ``(2, F, 257)``; real and imaginary channels side by side, time on x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    for ax, channel, name in zip(axes, spec.cpu().numpy(), ("real", "imaginary"), strict=True):
        ax.imshow(channel.T, origin="lower", aspect="auto", cmap="RdBu_r")
        ax.set_ylabel(f"{name}\nfrequency bin")
    axes[-1].set_xlabel("frame (10 ms)")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format=path.suffix.lstrip(".") or "png"))
    plt.close(fig)
