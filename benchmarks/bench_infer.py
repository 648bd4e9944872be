"""Inference speed: the voice encoder's forward, and ``s2f-infer`` from process start to PNG.

1. The paper's voice encoder (default :class:`VoiceEncoder`, random weights), batch 1, one
   6 s clip, on the CPU: plain float32 forward (the reference), channels_last float32, and
   channels_last + bfloat16 autocast where :func:`speech2face.inference.bf16_supported`; the
   last is the fast path :class:`speech2face.inference.Portraitist` takes: seconds,
   the speed-up against float32 and the cosine of the features against float32. The issue's
   targets: at most 1.0 s per 6 s clip, at least 2x float32, cosine >= 0.999.
2. ``s2f-infer voice.wav --checkpoint CKPT -o voice.png`` on a paper-size voice checkpoint
   (VGG-Face widths: the encoder above and the paper's 224x224 face decoder, random weights,
   written here as a training checkpoint) for a 6 s synthetic voice: the wall time of the
   whole process, against the sum of the phases of a fresh process doing the same work with
   a clock around each (imports, checkpoint load, reading the audio with its silence
   detection, the voice encoder's forward, the decoder, the PNG write).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import best_time
from speech2face.audio import N_SAMPLES, SAMPLE_RATE, spectrogram
from speech2face.inference import bf16_supported
from speech2face.models import FaceDecoder, VoiceEncoder

REPEATS = 3
PROCESS_REPEATS = 2
TARGET_SECONDS = 1.0  # forward per 6 s clip
TARGET_SPEEDUP = 2.0  # against float32 in the same run
TARGET_COSINE = 0.999
FEATURE_DIM = 4096  # VGG-Face fc7, the paper's
# A fresh process doing what s2f-infer does for one file, timing each phase (JSON on stdout).
PHASES = """
import json, sys, time
start = time.perf_counter()
import torch, soundfile, av, PIL.Image, numpy
import speech2face.cli.infer, speech2face.inference, speech2face.audio
import speech2face.training.checkpoint, speech2face.evaluation.collect
from speech2face.inference import Portraitist
t = {"imports": time.perf_counter() - start}
checkpoint, source, png = sys.argv[1:]
lap = time.perf_counter()
artist = Portraitist.from_checkpoint(checkpoint, "cpu", fast=True)
t["load"] = time.perf_counter() - lap
lap = time.perf_counter()
wav = speech2face.audio.load_audio(source)
windows = artist.windows(wav, source)
t["audio"] = time.perf_counter() - lap
lap = time.perf_counter()
raw = artist.raw_outputs(windows.clips)
t["forward"] = time.perf_counter() - lap
lap = time.perf_counter()
with torch.no_grad():
    image = artist.bundle.portrait(artist.bundle.place(raw.mean(0, keepdim=True)))
image = speech2face.evaluation.collect.to_uint8(image)[0].permute(1, 2, 0).numpy()
t["decoder"] = time.perf_counter() - lap
lap = time.perf_counter()
PIL.Image.fromarray(image).save(png, format="PNG")
t["png"] = time.perf_counter() - lap
print(json.dumps(t))
"""


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1).min())


def bench_forward() -> None:
    torch.manual_seed(0)
    encoder = VoiceEncoder().eval()
    wav = torch.randn(1, N_SAMPLES) * 0.1
    spec = spectrogram(wav)  # (1, 2, 598, 257)
    bf16 = bf16_supported("cpu")

    def plain() -> torch.Tensor:
        with torch.no_grad():
            return encoder(spec)

    reference = plain()
    fp32 = best_time(plain, REPEATS)
    cl_encoder = VoiceEncoder().eval()
    cl_encoder.load_state_dict(encoder.state_dict())
    cl_encoder.to(memory_format=torch.channels_last)
    cl_spec = spec.contiguous(memory_format=torch.channels_last)

    def channels_last() -> torch.Tensor:
        with torch.no_grad():
            return cl_encoder(cl_spec)

    def fast() -> torch.Tensor:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            return cl_encoder(cl_spec)

    rows = [("float32 (reference)", fp32, reference)]
    rows.append(("channels_last float32", best_time(channels_last, REPEATS), channels_last()))
    if bf16:
        rows.append(("channels_last + bf16 autocast", best_time(fast, REPEATS), fast()))
    print(
        f"voice encoder (paper size), batch 1, one 6 s clip, CPU ({torch.get_num_threads()} "
        f"threads); bf16 on this CPU: {'yes' if bf16 else 'no (oneDNN finds no AVX-512 BF16/AMX)'}"
    )
    for label, seconds, out in rows:
        print(
            f"  {label:<30} {seconds:6.3f} s   {fp32 / seconds:5.2f}x float32"
            f"   cosine to float32 {_cosine(out, reference):.5f}"
        )
    label, seconds, out = rows[-1]  # what Portraitist(fast=True) runs on this CPU
    path = label if bf16 else f"{label}, no bf16 here"
    speedup, cos = fp32 / seconds, _cosine(out, reference)
    print(
        f"  fast path ({path}): {seconds:.3f} s per 6 s clip"
        f" [target <= {TARGET_SECONDS:g} s: {'met' if seconds <= TARGET_SECONDS else 'MISSED'}],"
        f" {speedup:.2f}x float32 [target >= {TARGET_SPEEDUP:g}x:"
        f" {'met' if speedup >= TARGET_SPEEDUP else 'MISSED'}],"
        f" cosine {cos:.5f} [target >= {TARGET_COSINE}: {'met' if cos >= TARGET_COSINE else 'MISSED'}]"
    )


def write_paper_checkpoint(path: Path) -> Path:
    """A voice training checkpoint with the paper's encoder and decoder (random weights)."""
    from speech2face.audio import HOP_LENGTH, N_FFT, POWER_LAW, WIN_LENGTH
    from speech2face.training.checkpoint import FORMAT, VERSION, model_entry

    torch.manual_seed(0)
    voice, decoder = VoiceEncoder().eval(), FaceDecoder(feature_dim=FEATURE_DIM).eval()
    payload = {
        "format": FORMAT,
        "version": VERSION,
        **model_entry(voice),
        "training": {"task": "voice", "step": 0},
        "bundle": {
            "face_encoder": "vggface",
            "feature_dim": FEATURE_DIM,
            "audio": {
                "sample_rate": SAMPLE_RATE,
                "clip_samples": N_SAMPLES,
                "win_length": WIN_LENGTH,
                "hop_length": HOP_LENGTH,
                "n_fft": N_FFT,
                "power_law": POWER_LAW,
            },
            "config": "",
            "decoder": model_entry(decoder),
            "mean_feature": torch.zeros(FEATURE_DIM),
        },
    }
    torch.save(payload, path)
    return path


def _wall(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def bench_process(folder: Path) -> None:
    import soundfile as sf

    from speech2face.data.synthetic import random_identity, synthesize_voice

    rng = np.random.default_rng(0)
    wav, _ = synthesize_voice(random_identity(rng, "s", "AAAAAAAAAAA"), 6.0, rng, SAMPLE_RATE)
    source = folder / "voice.wav"
    sf.write(source, 0.8 * wav[:N_SAMPLES] / np.abs(wav).max(), SAMPLE_RATE, subtype="PCM_16")
    checkpoint = write_paper_checkpoint(folder / "paper.pt")
    script = Path(sys.executable).with_name("s2f-infer")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "speech2face", "infer"]
    command += [str(source), "--checkpoint", str(checkpoint), "-o", str(folder / "out.png"), "-q"]

    total = min(_wall(command) for _ in range(PROCESS_REPEATS))
    runs = []
    for _ in range(PROCESS_REPEATS):
        phases = [sys.executable, "-c", PHASES, str(checkpoint), str(source), str(folder / "p.png")]
        out = subprocess.run(phases, check=True, capture_output=True, text=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    t = min(runs, key=lambda run: sum(run.values()))
    parts = sum(t.values())
    size = checkpoint.stat().st_size / 2**20
    print(f"\ns2f-infer, 6 s voice -> 224x224 PNG, paper-size checkpoint ({size:.0f} MiB):")
    print("  a fresh process, phase by phase (best of 2 runs):")
    labels = {
        "imports": "imports (torch, PyAV, PIL...)",
        "load": "checkpoint load",
        "audio": "read + silence + windows",
        "forward": "voice encoder forward",
        "decoder": "face decoder",
        "png": "PNG write",
    }
    for key, label in labels.items():
        print(f"    {label:<34} {t[key]:6.2f} s")
    print(f"    {'sum of the phases':<34} {parts:6.2f} s")
    print(
        f"  s2f-infer, process start to PNG     {total:6.2f} s   {total / parts:5.2f}x the sum "
        "(1.00: nothing beyond the phases)"
    )


def main() -> None:
    bench_forward()
    with tempfile.TemporaryDirectory(prefix="bench_infer_") as tmp:
        bench_process(Path(tmp))


if __name__ == "__main__":
    main()
