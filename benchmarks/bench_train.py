"""Training throughput: samples/s of ``s2f-train`` and the share of step time spent waiting
for the data loader, for both tasks (decoder, then voice against that decoder).

CPU: the ``debug=cpu`` preset's tiny models (loader in the main process, as the preset has
it) on a synthetic corpus built here and preprocessed by the real ``s2f-preprocess``
(dlib features, 2 frames per clip). The trainer runs through :func:`speech2face.training.train`
with ``log_every`` small; its ``perf/samples_per_s`` and ``perf/data_wait_share`` are read
from TensorBoard, leaving out the first (warm-up) window. References, on one batch of the
same shape held in memory, timed in the same run just before and just after the trainer
(best of a few steps each; the mean of the two is used, since a shared CPU's speed drifts):

- the model alone, as the task runs it: forward + backward with a plain loss
  (:func:`bench_models.train_step`; the decoder without its spline warp when, as with
  dlib, its loss has no identity term), the figure the trainer is divided by;
- the task's whole step without the loader: the task's loss (spectrogram, target warp),
  backward and the optimiser step, which splits the gap into loader and step costs.

GPU (when present): the paper's voice encoder (default config, 6 s input) forward+backward in
bfloat16 autocast with channels_last, eager and ``torch.compile``d, at batch 32 and 64:
samples/s, achieved TFLOP/s (FLOPs counted once, eagerly) and the share of the GPU's dense
bf16 peak.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchmarks.bench_models import Timing, time_step, train_step
from benchmarks.common import best_time
from speech2face.audio import N_FRAMES, N_FREQ, spectrogram
from speech2face.config import compose

SPEAKERS = 6
CLIPS_PER_SPEAKER = 2
FRAMES_PER_CLIP = 2
LOG_EVERY = 5
WINDOWS = 3  # log windows per run; the first is warm-up and left out
STEPS = LOG_EVERY * WINDOWS
REFERENCE_REPEATS = 3
SPREAD_WARNING = 1.25  # before / after references further apart than this get a note
GPU_BATCHES = (32, 64)
GPU_REPEATS = 10
COMPILE_WARMUP = 3

# Dense (no sparsity) bfloat16 tensor-core peaks in TFLOP/s, by a part of the device name;
# the first match wins, so specific names come before general ones.
PEAK_BF16_TFLOPS = {
    "H200": 989.0,
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "H100": 989.0,  # SXM
    "A100": 312.0,
}


def peak_tflops(device_name: str) -> float | None:
    for part, peak in PEAK_BF16_TFLOPS.items():
        if part in device_name:
            return peak
    return None


# --------------------------------------------------------------------------- data


def preprocessed_corpus(root: Path) -> Path:
    """A synthetic corpus in ``root``, run through ``python -m speech2face preprocess``."""
    from speech2face.data.synthetic import make_corpus

    clips = make_corpus(root / "corpus", SPEAKERS, CLIPS_PER_SPEAKER, seed=0)
    out = root / "shards"
    command = [
        sys.executable,
        "-m",
        "speech2face",
        "preprocess",
        "source=avspeech",
        f"source.csv={clips}",
        f"source.video_dir={root / 'corpus' / 'videos'}/",
        "source.split=train",
        "face_encoder=dlib",
        f"frames_per_clip={FRAMES_PER_CLIP}",
        "device=cpu",
        "progress=false",
        f"output_dir={out}/",
    ]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"s2f-preprocess failed:\n{result.stderr[-3000:]}")
    seconds = time.perf_counter() - start
    print(
        f"corpus: {SPEAKERS} speakers x {CLIPS_PER_SPEAKER} clips, s2f-preprocess (dlib,"
        f" {FRAMES_PER_CLIP} frames/clip) in {seconds:.1f} s"
    )
    return out


# --------------------------------------------------------------------------- trainer


def run_config(task: str, data_root: Path, output_dir: Path, *extra: str) -> Any:
    return compose(
        "train",
        [
            f"task={task}",
            f"data.root={data_root}/",
            "face_encoder=dlib",
            "debug=cpu",
            f"output_dir={output_dir}/",
            f"trainer.max_steps={STEPS}",
            f"trainer.log_every={LOG_EVERY}",
            # validation, checkpoints and pictures only after the last logged window
            f"trainer.val_every={STEPS}",
            f"trainer.ckpt_every={STEPS}",
            f"trainer.image_every={STEPS}",
            "trainer.num_images=0",
            "trainer.val_batches=1",
            "trainer.progress=false",
            *extra,
        ],
    )


def steady_perf(output_dir: Path) -> tuple[float, float]:
    """``(samples/s, data-wait share)`` over the logged windows after the first.

    Each window holds the same number of samples, so its time is proportional to
    ``1 / rate``: the overall rate is the harmonic mean, the wait share a time-weighted mean.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from speech2face.training.logging import TENSORBOARD_DIR

    events = EventAccumulator(str(output_dir / TENSORBOARD_DIR))
    events.Reload()
    rates = [e.value for e in events.Scalars("perf/samples_per_s")][1:]
    waits = [e.value for e in events.Scalars("perf/data_wait_share")][1:]
    times = [1.0 / rate for rate in rates]
    rate = len(rates) / sum(times)
    wait = sum(w * t for w, t in zip(waits, times, strict=True)) / sum(times)
    return rate, wait


def run_trainer(cfg: Any) -> tuple[float, float, float]:
    """Train ``cfg``; ``(samples/s, data-wait share, seconds)`` (the run's lines hidden)."""
    from speech2face.training import train

    stderr = io.StringIO()
    start = time.perf_counter()
    try:
        with contextlib.redirect_stderr(stderr):
            train(cfg)
    except Exception:
        print(stderr.getvalue()[-3000:], file=sys.stderr)
        raise
    seconds = time.perf_counter() - start
    rate, wait = steady_perf(Path(cfg.output_dir))
    return rate, wait, seconds


# --------------------------------------------------------------------------- references


def model_input(cfg: Any, batch: int) -> torch.Tensor:
    """What the task's model takes, for ``batch`` samples."""
    if cfg.task == "voice":
        frames = spectrogram(torch.zeros(1, int(cfg.data.clip_samples))).shape[-2]
        return torch.randn(batch, 2, frames, N_FREQ)  # (B, 2, T, 257)
    return torch.randn(batch, int(cfg.face_encoder.dim))  # (B, D)


@dataclass
class References:
    """The in-memory steps of one task, timed before and after its trainer run."""

    model_step: Callable[[], None]  # the model alone: forward + backward, plain loss
    task_step: Callable[[], None]  # the task's loss, backward and optimiser step
    model: list[Timing] = field(default_factory=list)
    task: list[float] = field(default_factory=list)  # seconds per step

    def measure(self) -> None:
        self.model.append(time_step(self.model_step, REFERENCE_REPEATS, lambda: None))
        self.task.append(best_time(self.task_step, repeats=REFERENCE_REPEATS, warmup=1))


def references(cfg: Any) -> References:
    """The task's model on a random batch of its input shape, and the task's whole step on
    one batch read once from the shards (a Trainer of its own, never fitted)."""
    from speech2face.data import build_loader
    from speech2face.training import Trainer
    from speech2face.training.instantiate import build

    torch.manual_seed(0)
    alone = build(cfg.model.voice if cfg.task == "voice" else cfg.model.decoder).train()
    inputs = model_input(cfg, int(cfg.trainer.batch_size))

    with contextlib.redirect_stderr(io.StringIO()):
        trainer = Trainer(cfg)
    dataset = trainer.dataset("train", train=True)
    batch = next(iter(build_loader(dataset, trainer.tcfg.batch_size, num_workers=0)))
    model = trainer.model.train()
    optimizer = build(cfg.optim.optimizer)([p for p in model.parameters() if p.requires_grad])

    def task_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        trainer.task.step(model, batch)["total"].backward()
        optimizer.step()

    if cfg.task == "decoder" and not trainer.task.loss.needs_image:
        alone = _WithoutWarp(alone)
    return References(lambda: train_step(alone, inputs, None), task_step)


class _WithoutWarp(torch.nn.Module):
    """The face decoder as training runs it when its loss reads no portrait."""

    def __init__(self, decoder: torch.nn.Module) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, features: torch.Tensor):  # (B, D) -> DecoderOutput without image
        return self.decoder(features, warp=False)


def _rates(batch: int, seconds: list[float]) -> tuple[float, str]:
    """Mean samples/s of the measurements, and them as text (before / after)."""
    rates = [batch / s for s in seconds]
    return sum(rates) / len(rates), " / ".join(f"{r:.2f}" for r in rates)


def bench_task(cfg: Any, reference_cfg: Any) -> None:
    batch = int(cfg.trainer.batch_size)
    refs = references(reference_cfg)
    refs.measure()
    rate, wait, seconds = run_trainer(cfg)
    refs.measure()
    model_rate, model_text = _rates(batch, [t.seconds for t in refs.model])
    step_rate, step_text = _rates(batch, refs.task)
    flops = refs.model[0].flops
    shape = tuple(model_input(cfg, batch).shape)
    print(f"task={cfg.task}, batch {batch}, model input {shape}, {STEPS} steps in {seconds:.1f} s:")
    print(f"  trainer                         {rate:8.2f} samples/s  data wait {wait:6.1%}")
    print(f"  trainer, waits left out         {rate / max(1.0 - wait, 1e-9):8.2f} samples/s")
    print(
        f"  task step in memory (no loader) {step_rate:8.2f} samples/s  (before / after: {step_text})"
    )
    print(
        f"  model fwd+bwd (reference)       {model_rate:8.2f} samples/s  (before / after:"
        f" {model_text})  {flops / batch / 1e9:.2f} GFLOP/sample,"
        f" {flops / batch * model_rate / 1e9:.1f} GFLOP/s"
    )
    print(f"  ratio (trainer / reference)     {rate / model_rate:8.3f}")
    low, high = sorted(t.seconds for t in refs.model)
    if high > SPREAD_WARNING * low:
        print(
            f"  note: the reference changed {high / low:.1f}x between before and after"
            " (a shared CPU): the ratio is rough"
        )


def bench_cpu() -> None:
    print(f"CPU, debug=cpu tiny models ({torch.get_num_threads()} threads):")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shards = preprocessed_corpus(root)
        decoder = run_config("decoder", shards, root / "decoder")
        bench_task(decoder, run_config("decoder", shards, root / "decoder-ref"))
        last = root / "decoder" / "checkpoints" / "last.pt"
        voice = run_config("voice", shards, root / "voice", f"decoder_checkpoint={last}")
        reference = run_config("voice", shards, root / "voice-ref", f"decoder_checkpoint={last}")
        bench_task(voice, reference)


# --------------------------------------------------------------------------- GPU


def voice_encoder_timings(
    batch: int, device: torch.device, sync: Callable[[], None]
) -> tuple[Timing, Timing | str]:
    """The paper's voice encoder, forward + backward in bf16 autocast with channels_last:
    eager (FLOPs counted here), then ``torch.compile``d (its timing, or why it failed)."""
    from speech2face.models import VoiceEncoder

    torch.manual_seed(0)
    model = VoiceEncoder().to(device).to(memory_format=torch.channels_last).train()
    inputs = torch.randn(batch, 2, N_FRAMES, N_FREQ, device=device)  # (B, 2, 598, 257)
    inputs = inputs.contiguous(memory_format=torch.channels_last)
    eager = time_step(lambda: train_step(model, inputs, torch.bfloat16), GPU_REPEATS, sync)

    torch._dynamo.reset()  # a fresh graph per batch size, not a dynamic-shape one
    compiled = torch.compile(model)

    def compiled_step() -> None:
        train_step(compiled, inputs, torch.bfloat16)
        sync()

    try:
        seconds = best_time(compiled_step, repeats=GPU_REPEATS, warmup=COMPILE_WARMUP)
    except Exception as error:  # noqa: BLE001 (a compiler failure is a result to report)
        lines = str(error).strip().splitlines()
        return eager, f"{type(error).__name__}: {lines[0][:200] if lines else ''}"
    return eager, Timing(seconds, eager.flops)


def bench_gpu() -> None:
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name()
    peak = peak_tflops(name)
    peak_text = f"dense bf16 peak {peak:.0f} TFLOP/s" if peak else "unknown peak"
    print(
        f"GPU ({name}, {peak_text}), voice encoder (paper), 6 s input (2, {N_FRAMES}, {N_FREQ}),"
        " forward+backward, bf16 autocast + channels_last:"
    )
    for batch in GPU_BATCHES:
        eager, compiled = voice_encoder_timings(batch, device, torch.cuda.synchronize)
        torch.cuda.empty_cache()
        for label, timing in (("eager", eager), ("compile", compiled)):
            if isinstance(timing, str):
                print(f"  batch {batch:<3} {label:<8} failed: {timing}")
                continue
            tflops = timing.flop_rate() / 1e12
            share = f"{tflops / peak:6.1%} of peak" if peak else "unknown peak"
            print(
                f"  batch {batch:<3} {label:<8} {timing.samples_per_s(batch):8.1f} samples/s"
                f"  {tflops:7.1f} TFLOP/s  {share}"
            )
        if not isinstance(compiled, str):
            print(f"  batch {batch:<3} compile / eager {eager.seconds / compiled.seconds:6.2f}x")


def main() -> None:
    bench_cpu()
    if torch.cuda.is_available():
        bench_gpu()


if __name__ == "__main__":
    main()
