"""What a training run reports: TensorBoard scalars and image grids, a progress bar, a summary.

Scalars are named hierarchically: ``loss/<term>`` (training), ``val/loss/<term>`` and
``val/recall@K`` (validation), ``lr``, ``perf/samples_per_s`` and ``perf/data_wait_share``
(the share of wall time spent waiting for the data loader). Image grids hold one row per
sample: the true face, the decoder on the true feature and, for a voice encoder, the
decoder on the voice's prediction. Only rank 0 writes; other ranks get a silent logger.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

TENSORBOARD_DIR = "tensorboard"


class RunLogger:
    """TensorBoard writer, tqdm bar and plain lines on stderr for one run (rank 0 only).

    Args:
        output_dir: the run's directory (events go to ``<output_dir>/tensorboard``).
        total_steps: the run's last step, for the bar.
        first_step: the step the run starts after (a resumed run's checkpoint step).
        enabled: ``False`` on ranks other than 0: every method does nothing.
        progress: show a tqdm bar.
    """

    def __init__(
        self,
        output_dir: str | Path,
        total_steps: int,
        first_step: int = 0,
        enabled: bool = True,
        progress: bool = True,
    ) -> None:
        self.enabled = enabled
        self.writer = None
        self.bar = None
        self.started = time.perf_counter()
        self.first_step = first_step
        self.last_scalars: dict[str, float] = {}
        self.best: dict[str, float] = {}
        if not enabled:
            return
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(
            str(Path(output_dir) / TENSORBOARD_DIR), purge_step=first_step + 1
        )
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total_steps,
                initial=first_step,
                unit="step",
                dynamic_ncols=True,
                file=sys.stderr,
                leave=False,
            )

    def message(self, text: str) -> None:
        """One line on stderr (above the bar)."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def scalars(self, values: dict[str, float], step: int) -> None:
        if not self.enabled or self.writer is None:
            return
        for name, value in values.items():
            self.writer.add_scalar(name, float(value), step)
            self.last_scalars[name] = float(value)

    def images(self, name: str, rows: list[Tensor], step: int) -> None:
        """A grid with one row per sample: ``rows[c]`` is column ``c``, ``(B, 3, H, W)`` in
        [0, 1] (columns of other sizes are resized to the first's)."""
        if not self.enabled or self.writer is None or not rows:
            return
        from torchvision.utils import make_grid

        size = rows[0].shape[-2:]
        columns = [
            torch.nn.functional.interpolate(c.float(), size=size, mode="bilinear")
            if c.shape[-2:] != size
            else c.float()
            for c in rows
        ]
        tiles = torch.stack(columns, dim=1).flatten(0, 1).clamp(0, 1).cpu()  # (B * C, 3, H, W)
        self.writer.add_image(name, make_grid(tiles, nrow=len(columns), padding=2), step)

    def audio(self, name: str, wavs: Tensor, sample_rate: int, step: int) -> None:
        """Each waveform of ``wavs`` ``(B, T)`` as ``name/<row>`` (clipped to [-1, 1])."""
        if not self.enabled or self.writer is None:
            return
        for row, wav in enumerate(wavs.detach().float().cpu()):
            self.writer.add_audio(f"{name}/{row}", wav.clamp(-1, 1)[None], step, sample_rate)

    def advance(self, step: int, postfix: dict[str, Any] | None = None) -> None:
        if self.bar is not None:
            self.bar.n = step
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
            self.writer = None

    def summary(self, step: int, output_dir: str | Path, extra: dict[str, float]) -> str:
        """The end-of-run lines: steps, time, last losses, best validation, where files are."""
        seconds = time.perf_counter() - self.started
        parts = [f"{output_dir}: step {step} ({step - self.first_step} this run, {seconds:.0f} s)"]
        shown = {k: v for k, v in {**self.last_scalars, **extra}.items() if _summarised(k)}
        if shown:
            parts.append(", ".join(f"{k} {v:.4g}" for k, v in sorted(shown.items())))
        return "; ".join(parts)


def _summarised(name: str) -> bool:
    return name.startswith(("loss/total", "val/")) or name == "best"


class Meter:
    """Running means of named scalars between two log points, and throughput."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.count = 0
        self.samples = 0
        self.wait = 0.0
        self.paused = 0.0  # seconds of validation, checkpoints and images: not training
        self.started = time.perf_counter()

    @contextlib.contextmanager
    def pause(self) -> Iterator[None]:
        """Leave the time spent inside out of the throughput and the data-wait share."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.paused += time.perf_counter() - start

    def add(self, terms: dict[str, float], samples: int, wait: float) -> None:
        for name, value in terms.items():
            self.sums[name] += value
        self.count += 1
        self.samples += samples
        self.wait += wait

    def means(self) -> dict[str, float]:
        return {name: total / max(self.count, 1) for name, total in self.sums.items()}

    def perf(self, world_size: int = 1) -> dict[str, float]:
        elapsed = max(time.perf_counter() - self.started - self.paused, 1e-9)
        return {
            "perf/samples_per_s": self.samples * world_size / elapsed,
            "perf/data_wait_share": min(self.wait / elapsed, 1.0),
        }
