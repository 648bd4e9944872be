"""GPU acceptance run (by hand: ``python -m benchmarks gpu``; sized for under 8 minutes on one
H100, not yet run on one).

Trains the paper's voice encoder (``task=voice``, batch 8, 6 s windows, Adam as the paper)
against the paper's face decoder (untrained; frozen, as in the paper) and VGG-Face's
classifier (random weights: no download) on generated shards (512 samples of 7 s audio with
4,096-D features, in a temporary folder), through the real trainer:

- on the CPU for the first steps: the reference loss curve (same seed, same data);
- on the GPU in fp32 and bf16, each with and without ``torch.compile``, a few hundred
  steps: samples/s and the share of time waiting for data over the last 100 steps, the
  share of the card's dense bf16 peak those samples/s reach (FLOPs of one training step
  counted by ``torch.utils.flop_counter``), peak memory, and the largest relative
  difference of the first steps' losses from the CPU's;
- a run killed with SIGKILL after its first checkpoint and started again: it must resume
  from that checkpoint and finish;
- with two GPUs or more: two processes under ``torchrun`` (NCCL), their samples/s together.

Prints one table. Without a CUDA device it refuses in one line (exit status 2).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

SAMPLES = 512
SECONDS = 7.0
STEPS = 300
WINDOW = 100  # steps the speed is measured over (the last ones: compiling is done by then)
CPU_STEPS = 5  # steps the loss curves are compared over
KILL_STEPS = 40  # the killed run: checkpoints every 20 steps
BATCH = 8
# Dense bfloat16 peak (no sparsity) in FLOP/s, by a name in torch.cuda.get_device_name().
BF16_PEAK = {
    "H100 PCIe": 756e12,
    "H100 NVL": 835e12,
    "H100": 989e12,  # SXM
    "H200": 989e12,
    "GH200": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
}


def write_shards(root: Path, dim: int, samples: int) -> None:
    from speech2face.audio import SAMPLE_RATE
    from speech2face.data.shards import encode_wav, json_bytes, npy_bytes, write_tar

    (root / "shards").mkdir(parents=True)
    rng = np.random.default_rng(0)
    entries = []
    for s in range(samples // 64):
        rows = []
        for i in range(64):
            n = s * 64 + i
            pcm = (rng.normal(0, 3000, int(SECONDS * SAMPLE_RATE))).astype(np.int16)
            feature = rng.normal(0, 1, dim).astype(np.float16)
            meta = {"key": f"s{n:05d}", "speaker": f"p{n}", "split": "train", "feature_dim": dim}
            members = {
                "json": json_bytes(meta),
                "wav": encode_wav(pcm),
                "feat.npy": npy_bytes(feature),
            }
            rows.append((f"s{n:05d}", members))
        path = f"shards/train-{s:06d}.tar"
        write_tar(root / path, rows)
        entries.append({"path": path, "samples": 64})
    (root / "shards.json").write_text(json.dumps({"train": entries}))


def paper_decoder(folder: Path, dim: int, smoke: bool) -> Path:
    from speech2face.models import FaceDecoder, save_checkpoint

    torch.manual_seed(0)
    kwargs: dict[str, Any] = {"feature_dim": dim}
    if smoke:
        kwargs.update(landmark_hidden=[16], image_size=56, texture_channels=16, min_channels=8)
    return save_checkpoint(FaceDecoder(**kwargs), folder / "decoder.pt")


def overrides(root: Path, decoder: Path, out: Path, device: str, steps: int, smoke: bool):
    common = [
        "task=voice", f"data.root={root}/", f"decoder_checkpoint={decoder}", f"output_dir={out}/",
        "optim=adam_paper", "data.window=first", f"trainer.batch_size={BATCH}",
        f"trainer.max_steps={steps}", f"trainer.ckpt_every={steps}", f"trainer.val_every={steps}",
        f"trainer.log_every={min(WINDOW, steps)}", "trainer.num_images=0", "trainer.progress=false",
        f"trainer.device={device}", "trainer.seed=0",
    ]  # fmt: skip
    if smoke:
        return [*common, "face_encoder=dlib", "debug=cpu", f"trainer.batch_size={BATCH}",
                "model.decoder.image_size=56", "trainer.num_workers=0"]  # fmt: skip
    return [*common, "face_encoder=vggface", "face_encoder.weights=null",
            "data.clip_samples=96000",
            "trainer.num_workers=4"]  # fmt: skip


def train(args: list[str]) -> dict[str, Any]:
    """One run in this process: its per-step losses, last speed figures and peak memory."""
    from speech2face.config import compose
    from speech2face.training import Trainer

    cfg = compose("train", args)
    trainer = Trainer(cfg)
    losses: list[float] = []
    step = trainer.task.step

    def recorded(model, batch):
        terms = step(model, batch)
        losses.append(float(terms["total"].detach()))
        return terms

    trainer.task.step = recorded
    cuda = trainer.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(trainer.device)
    started = time.perf_counter()
    results = trainer.fit()
    return {
        "losses": losses,
        "seconds": time.perf_counter() - started,
        "samples_per_s": results.get("perf/samples_per_s"),
        "wait": results.get("perf/data_wait_share"),
        "memory": torch.cuda.max_memory_allocated(trainer.device) / 2**30 if cuda else None,
        "precision": trainer.precision,
        "model": trainer.task.model,
        "device": trainer.device,
    }


def step_flops(model: torch.nn.Module, device: torch.device, clip: int) -> float:
    """FLOPs of one training step's forward and backward pass of the voice encoder on a
    batch of ``BATCH`` spectrograms."""
    from torch.utils.flop_counter import FlopCounterMode

    from speech2face.audio import spectrogram

    spec = spectrogram(torch.zeros(BATCH, clip, device=device))
    counter = FlopCounterMode(display=False)
    with counter:
        model(spec).float().sum().backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def killed_and_resumed(root: Path, decoder: Path, out: Path, device: str, smoke: bool) -> str:
    """Kill a run after its first checkpoint, start it again; what happened, in words."""
    args = overrides(root, decoder, out, device, KILL_STEPS, smoke)
    args = [*args, f"trainer.ckpt_every={KILL_STEPS // 2}"]
    command = [sys.executable, "-m", "speech2face", "train", *args]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    first = out / "checkpoints" / f"step-{KILL_STEPS // 2:08d}.pt"
    deadline = time.monotonic() + 300
    while not first.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    if not first.exists():
        return "failed: no checkpoint before the kill"
    started = time.perf_counter()
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - started
    if again.returncode != 0:
        return f"failed: {again.stderr.strip().splitlines()[-1:]}"
    resumed = [line for line in again.stderr.splitlines() if "resuming from step" in line]
    return (
        f"{resumed[0].split(' (')[0] if resumed else 'did not resume'}, finished in {seconds:.0f} s"
    )


def two_processes(root: Path, decoder: Path, out: Path) -> dict[str, Any] | None:
    if torch.cuda.device_count() < 2:
        return None
    args = overrides(root, decoder, out, "cuda", STEPS, smoke=False)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               "-m", "speech2face", "train", *args]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:]}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    speed = events.Scalars("perf/samples_per_s")[-1].value
    wait = events.Scalars("perf/data_wait_share")[-1].value
    return {"samples_per_s": speed, "wait": wait}


def peak_of(name: str) -> float | None:
    for key, value in BF16_PEAK.items():  # the first match: more specific names first
        if key in name:
            return value
    return None


def main(smoke: bool = False) -> int:
    """The acceptance table; ``smoke``: the same code on the CPU with tiny models and a few
    steps (to check the script itself; its figures say nothing about a GPU)."""
    if not smoke and not torch.cuda.is_available():
        print(
            "gpu: no CUDA device on this machine: run `python -m benchmarks gpu` on one with a GPU"
        )
        return 2
    device = "cpu" if smoke else "cuda"
    steps = 6 if smoke else STEPS
    cpu_steps = 2 if smoke else CPU_STEPS
    dim = 128 if smoke else 4096
    clip = 48_000 if smoke else 96_000
    name = "CPU (smoke run)" if smoke else torch.cuda.get_device_name()
    peak = None if smoke else peak_of(name)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        write_shards(base / "data", dim, 128 if smoke else SAMPLES)
        decoder = paper_decoder(base, dim, smoke)
        reference = train(overrides(base / "data", decoder, base / "cpu", "cpu", cpu_steps, smoke))
        flops = None
        variants = [("fp32", False), ("bf16", False)]
        if not smoke:
            variants += [("fp32", True), ("bf16", True)]
        for precision, compiled in variants:
            out = base / f"{precision}-{compiled}"
            args = overrides(base / "data", decoder, out, device, steps, smoke)
            result = train([*args, f"trainer.precision={precision}",
                            f"trainer.compile={str(compiled).lower()}"])  # fmt: skip
            if flops is None:
                flops = step_flops(result["model"], result["device"], clip)
            first = np.array(result["losses"][:cpu_steps])
            ref = np.array(reference["losses"][:cpu_steps])
            rows.append(
                {
                    "run": f"{precision}{' + compile' if compiled else ''}",
                    "steps": steps,
                    "samples_per_s": result["samples_per_s"],
                    "wait": result["wait"],
                    "peak_share": (
                        flops / BATCH * result["samples_per_s"] / peak
                        if peak and result["samples_per_s"]
                        else None
                    ),
                    "memory": result["memory"],
                    "loss_diff": float(np.max(np.abs(first - ref) / np.abs(ref))),
                    "seconds": result["seconds"],
                }
            )
        resume = killed_and_resumed(base / "data", decoder, base / "killed", device, smoke)
        pair = None if smoke else two_processes(base / "data", decoder, base / "ddp")

    print(f"device: {name}; dense bf16 peak: {f'{peak / 1e12:.0f} TFLOP/s' if peak else 'unknown'}; "
          f"one training step: {flops / 1e9:.1f} GFLOP (forward + backward, batch {BATCH})")  # fmt: skip
    print(f"CPU reference losses, first {cpu_steps} steps: "
          + ", ".join(f"{x:.4g}" for x in reference["losses"][:cpu_steps]))  # fmt: skip
    header = (f"{'run':<16} {'steps':>5} {'samples/s':>10} {'data wait':>9} {'bf16 peak':>9} "
              f"{'peak mem':>9} {'loss vs CPU':>11} {'wall':>6}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for row in rows:
        share = f"{row['peak_share']:.1%}" if row["peak_share"] is not None else "n/a"
        memory = f"{row['memory']:.2f} GiB" if row["memory"] is not None else "n/a"
        print(
            f"{row['run']:<16} {row['steps']:>5} {row['samples_per_s']:>10.1f} "
            f"{row['wait']:>9.1%} {share:>9} {memory:>9} {row['loss_diff']:>11.2e} "
            f"{row['seconds']:>5.0f}s"
        )
    if pair is not None:
        if "error" in pair:
            print(f"{'2 x NCCL':<16} failed: {pair['error']}")
        else:
            print(
                f"{'2 x NCCL (bf16)':<16} {steps:>5} {pair['samples_per_s']:>10.1f} {pair['wait']:>9.1%}"
            )
    print(f"kill and resume: {resume}")
    return 0


if __name__ == "__main__":
    sys.exit(main(smoke="--smoke" in sys.argv))
