"""Model throughput: forward+backward samples/s of the voice encoder and the face decoder.

Reference, timed in the same run: a plain torchvision VGG-16 (2,622 classes) forward+backward
at batch 8 on 224x224 crops, a well-understood compute-bound CNN. FLOPs are counted once per
model with ``torch.utils.flop_counter.FlopCounterMode`` (during the warm-up step), so every
line also reports the achieved GFLOP/s. On a GPU the same steps run in float32 and in bfloat16
autocast with channels_last memory format, reported in TFLOP/s.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from speech2face.audio import N_FRAMES, N_FREQ
from speech2face.models import FaceDecoder, VoiceEncoder

BATCH = 8  # the paper's batch size
GPU_BATCHES = (8, 32)
CROP = 224
FEATURE_DIM = 4096


@dataclass
class Case:
    """One model to time: how to build it and its input for a batch size."""

    name: str
    build: Callable[[], nn.Module]
    make_input: Callable[[int], Tensor]
    image_input: bool  # 4-D input that can take channels_last


def _vgg16() -> nn.Module:
    import torchvision

    return torchvision.models.vgg16(num_classes=2622)


CASES = [
    Case("VGG-16 (reference)", _vgg16, lambda b: torch.rand(b, 3, CROP, CROP), True),
    Case("voice encoder, 6 s", VoiceEncoder, lambda b: torch.randn(b, 2, N_FRAMES, N_FREQ), True),
    Case("face decoder", FaceDecoder, lambda b: torch.randn(b, FEATURE_DIM), False),
]


def _output_tensor(out) -> Tensor:
    """The voice encoder's features, or the decoder's portrait (its texture when the
    decoder ran without its warp)."""
    if not hasattr(out, "image"):
        return out
    return out.image if out.image is not None else out.texture


def train_step(model: nn.Module, inputs: Tensor, autocast_dtype: torch.dtype | None) -> None:
    """Forward, a scalar loss, backward; gradients are dropped afterwards."""
    context = (
        torch.autocast(inputs.device.type, dtype=autocast_dtype)
        if autocast_dtype is not None
        else contextlib.nullcontext()
    )
    with context:
        out = _output_tensor(model(inputs))
    out.float().square().mean().backward()
    for parameter in model.parameters():
        parameter.grad = None


@dataclass
class Timing:
    seconds: float  # best time of one step
    flops: int  # counted FLOPs of one step

    def samples_per_s(self, batch: int) -> float:
        return batch / self.seconds

    def flop_rate(self) -> float:
        return self.flops / self.seconds


def time_step(step: Callable[[], None], repeats: int, sync: Callable[[], None]) -> Timing:
    """Count FLOPs during a warm-up step, then keep the best of ``repeats`` timed steps."""
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        sync()
        best = min(best, time.perf_counter() - start)
    return Timing(best, counter.get_total_flops())


def bench_cpu(quick: bool) -> None:
    repeats = 1 if quick else 2
    print(f"CPU, batch {BATCH}, forward+backward ({torch.get_num_threads()} threads):")
    results: dict[str, Timing] = {}
    for case in CASES:
        torch.manual_seed(0)
        model = case.build().train()
        inputs = case.make_input(BATCH)
        results[case.name] = time_step(
            lambda m=model, x=inputs: train_step(m, x, None), repeats, lambda: None
        )
        del model
    reference = results[CASES[0].name]
    for name, timing in results.items():
        print(
            f"  {name:<20} {timing.samples_per_s(BATCH):8.2f} samples/s"
            f"  {timing.seconds:7.2f} s/step  {timing.flops / BATCH / 1e9:7.1f} GFLOP/sample"
            f"  {timing.flop_rate() / 1e9:6.1f} GFLOP/s"
            f"  samples/s vs VGG-16 {timing.samples_per_s(BATCH) / reference.samples_per_s(BATCH):6.3f}x"
            f"  FLOP/s vs VGG-16 {timing.flop_rate() / reference.flop_rate():5.2f}x"
        )


def bench_gpu(quick: bool) -> None:
    device = torch.device("cuda")
    repeats = 3 if quick else 10
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = False  # float32 means float32 here
    torch.backends.cudnn.allow_tf32 = False
    print(f"GPU ({torch.cuda.get_device_name()}), forward+backward:")
    modes = [("float32", None, False), ("bf16 + channels_last", torch.bfloat16, True)]
    for batch in GPU_BATCHES[:1] if quick else GPU_BATCHES:
        reference: dict[str, Timing] = {}
        for case in CASES:
            torch.manual_seed(0)
            model = case.build().to(device).train()
            for label, dtype, channels_last in modes:
                inputs = case.make_input(batch).to(device)
                if channels_last:
                    model = model.to(memory_format=torch.channels_last)
                    if case.image_input:
                        inputs = inputs.contiguous(memory_format=torch.channels_last)

                def step(m=model, x=inputs, d=dtype) -> None:
                    train_step(m, x, d)

                timing = time_step(step, repeats, torch.cuda.synchronize)
                if case is CASES[0]:
                    reference[label] = timing
                ratio = timing.flop_rate() / reference[label].flop_rate()
                print(
                    f"  batch {batch:<3} {case.name:<20} {label:<21}"
                    f" {timing.samples_per_s(batch):9.1f} samples/s"
                    f"  {timing.flop_rate() / 1e12:7.2f} TFLOP/s"
                    f"  (FLOP/s vs VGG-16 {ratio:4.2f}x)"
                )
            del model
            torch.cuda.empty_cache()


def run(quick: bool = False) -> None:
    bench_cpu(quick)
    if torch.cuda.is_available():
        bench_gpu(quick)


def main() -> None:
    run(quick=False)


if __name__ == "__main__":
    main()
