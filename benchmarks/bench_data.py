"""Data pipeline throughput on a synthetic corpus (256x256 10 fps clips, 3.5-5 s).

1. Preprocessing on one core (one process, one torch thread): clips/s for
   decode + detect + crop (+ 68 landmarks), with the time split per stage, then the face
   feature (dlib) on top. Reference in the same run: decoding alone (the segment's audio and
   the same frames), the floor any pipeline pays.
2. Loading: samples/s of :class:`ShardDataset` through a DataLoader with 2 workers
   (waveform windows, features, collate). Reference in the same run: reading the same tar
   files' bytes with ``tarfile`` in one process.
"""

from __future__ import annotations

import tarfile
import tempfile
import time
from functools import partial
from pathlib import Path

from speech2face.data import ShardDataset, build_loader
from speech2face.data.media import MediaError, frame_times, read_frames, read_pcm16
from speech2face.data.preprocess import (
    PreprocessOptions,
    SegmentProcessor,
    torch_threads,
)
from speech2face.data.shards import iter_tar_samples, write_tar
from speech2face.data.sources import AVSpeechSource, Segment
from speech2face.data.synthetic import make_corpus

SPEAKERS = 8
CLIPS_PER_SPEAKER = 2
FRAMES_PER_CLIP = 5  # the preprocessing default
LOADER_WORKERS = 2
LOADER_BATCH = 16
LOADER_COPIES = 40  # the corpus' samples are repeated into this many shards for loading


def bench_preprocess(root: Path, source: AVSpeechSource) -> list[Segment]:
    from speech2face.models import build_face_encoder

    segments = [s for s in source.segments() if isinstance(s, Segment)]
    options = PreprocessOptions(frames_per_clip=FRAMES_PER_CLIP)
    processor = SegmentProcessor(
        source, options, partial(build_face_encoder, "dlib"), "dlib", device="cpu"
    )
    with torch_threads(1):
        processor.process(segments[0])  # load the models
        processor.features([processor.process(segments[0]).crop])
        processor.timings.clear()

        def decode_only() -> None:
            for seg in segments:
                media = source.locate(seg)
                pcm = read_pcm16(media.video, media.offset, seg.end - seg.start, 3.0)
                times = frame_times(media.offset, media.offset + pcm.size / 16_000, FRAMES_PER_CLIP)
                read_frames(media.video, times)

        start = time.perf_counter()
        decode_only()
        t_decode = time.perf_counter() - start
        start = time.perf_counter()
        kept, skipped = [], []
        for seg in segments:
            try:
                kept.append(processor.process(seg))
            except MediaError as error:  # as s2f-preprocess: recorded and skipped
                skipped.append(error.reason)
        t_pipeline = time.perf_counter() - start
        stages = dict(processor.timings)
        start = time.perf_counter()
        processor.features([k.crop for k in kept])
        t_features = time.perf_counter() - start
    n = len(segments)
    print(f"preprocessing, {n} clips, {FRAMES_PER_CLIP} frames each, 1 process x 1 thread, CPU:")
    if skipped:
        print(f"  ({len(skipped)} skipped as s2f-preprocess skips them: {', '.join(skipped)})")
    print(f"  decode + detect + track + crop + landmarks  {n / t_pipeline:7.2f} clips/s per core")
    for stage in ("locate", "audio", "video", "detect", "track", "align"):
        share = stages.get(stage, 0.0) / t_pipeline
        print(f"    {stage:<8} {1000 * stages.get(stage, 0.0) / n:7.1f} ms/clip  ({share:5.1%})")
    print(
        f"  + dlib face feature                 {n / (t_pipeline + t_features):7.2f} clips/s per core"
    )
    print(f"    features {1000 * t_features / n:7.1f} ms/clip")
    print(f"  decoding alone (reference)          {n / t_decode:7.2f} clips/s per core")
    print(f"  ratio (full pipeline / decoding)    {t_decode / (t_pipeline + t_features):7.3f}")
    return segments


def bench_loader(root: Path) -> None:
    shards = sorted((root / "out" / "shards").glob("*.tar"))
    samples = []
    for path in shards:
        with open(path, "rb") as f:
            samples += list(iter_tar_samples(f))
    big = root / "big"
    (big / "shards").mkdir(parents=True)
    for copy in range(LOADER_COPIES):
        renamed = [(f"{key}-c{copy:03d}", members) for key, members in samples]
        write_tar(big / "shards" / f"train-{copy:06d}.tar", renamed)
    total = LOADER_COPIES * len(samples)

    start = time.perf_counter()
    for path in sorted((big / "shards").glob("*.tar")):
        with tarfile.open(path) as tar:
            for member in tar:
                tar.extractfile(member).read()
    t_raw = time.perf_counter() - start

    dataset = ShardDataset(str(big), "train", shuffle_buffer=64)
    loader = build_loader(dataset, batch_size=LOADER_BATCH, num_workers=LOADER_WORKERS)
    next(iter(loader))  # start the workers
    start = time.perf_counter()
    count = sum(len(batch["key"]) for batch in loader)
    t_loader = time.perf_counter() - start
    mb = sum(p.stat().st_size for p in (big / "shards").glob("*.tar")) / 1e6
    print(
        f"loading, {total} samples in {LOADER_COPIES} shards ({mb:.0f} MB), batch {LOADER_BATCH}:"
    )
    print(
        f"  ShardDataset + DataLoader, {LOADER_WORKERS} workers  {count / t_loader:8.0f} samples/s"
    )
    print(f"  raw tar read, 1 process (reference)  {total / t_raw:8.0f} samples/s")
    print(f"  ratio (loader / raw read)            {t_raw / t_loader * count / total:8.2f}")


def main() -> None:
    from speech2face.data.preprocess import preprocess
    from speech2face.models import build_face_encoder

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clips = make_corpus(root / "corpus", SPEAKERS, CLIPS_PER_SPEAKER, seed=0)
        source = AVSpeechSource(clips, root / "corpus" / "videos")
        bench_preprocess(root, source)
        preprocess(
            source,
            root / "out",
            partial(build_face_encoder, "dlib"),
            "dlib",
            PreprocessOptions(frames_per_clip=2),
            shard_size=4,
            progress=False,
        )
        bench_loader(root)


if __name__ == "__main__":
    main()
