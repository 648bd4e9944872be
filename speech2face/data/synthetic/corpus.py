"""The synthetic corpus on disk: talking segments planned per speaker, written as mp4 files
(H.264 + AAC) with an AVSpeech-style CSV and the speakers' attributes."""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from speech2face.data.sources.common import speaker_split
from speech2face.data.speech import engine, load_sentences
from speech2face.data.synthetic.faces import draw_background, render_frame
from speech2face.data.synthetic.people import Identity, random_id, random_identity
from speech2face.data.synthetic.voices import AUDIO_RATE, CONTROL_RATE, record, synthesize_voice

__all__ = ["FPS", "VIDEO_SIZE", "make_corpus"]

VIDEO_SIZE = 256  # square frames, pixels
FPS = 10  # video frame rate (make_corpus's default)
SEGMENT_SECONDS = (3.5, 5.0)  # each talking segment's length is drawn from this range
GAP_SECONDS = 0.8  # silence (and no labelled segment) between segments
LEAD_SECONDS = 0.5  # before the first segment
AAC_BIT_RATES = (32_000, 48_000, 64_000, 96_000)  # each video's audio bit rate is one of these


@dataclass(frozen=True)
class _Segment:
    start: float
    end: float
    x: float  # face centre at the segment's start, pixels
    y: float
    height: float  # face height, pixels
    distractor: bool


def _plan_segments(identity: Identity, rng: np.random.Generator, count: int) -> list[_Segment]:
    segments = []
    t = LEAD_SECONDS
    for _ in range(count):
        dur = round(float(rng.uniform(*SEGMENT_SECONDS)), 2)
        height = VIDEO_SIZE * float(rng.uniform(0.36, 0.46)) * identity.head_scale
        margin = height * 0.8
        x = float(rng.uniform(margin, VIDEO_SIZE - margin))
        y = float(rng.uniform(margin * 0.9, VIDEO_SIZE - margin * 0.9))
        segments.append(_Segment(round(t, 2), round(t + dur, 2), x, y, height, rng.random() < 0.3))
        t += dur + GAP_SECONDS
    return segments


def _write_video(
    path: Path,
    identity: Identity,
    other: Identity,
    segments: list[_Segment],
    rng: np.random.Generator,
    fps: int = FPS,
    sentences: list[str] | None = None,
) -> None:
    """Render and encode the speaker's whole video: H.264 + AAC, one talking face."""
    import av

    total = segments[-1].end + GAP_SECONDS / 2
    audio = np.zeros(int(round(total * AUDIO_RATE)), dtype=np.float32)
    audio += (0.001 * rng.standard_normal(audio.size)).astype(np.float32)
    env = np.zeros(int(math.ceil(total * CONTROL_RATE)) + 1)
    sentences = sentences if sentences is not None else load_sentences()
    for seg in segments:
        wav, seg_env = synthesize_voice(identity, seg.end - seg.start, rng, sentences=sentences)
        a0 = int(round(seg.start * AUDIO_RATE))
        audio[a0 : a0 + wav.size] += wav[: audio.size - a0]
        c0 = int(round(seg.start * CONTROL_RATE))
        env[c0 : c0 + seg_env.size] = seg_env[: env.size - c0]
    audio = record(audio, rng)
    bit_rate = int(rng.choice(AAC_BIT_RATES))

    n_frames = int(math.ceil(total * fps))
    blink_frames = set(
        int(i) for i in rng.choice(n_frames, size=max(1, n_frames // 25), replace=False)
    )
    with av.open(str(path), "w") as container:
        vstream = container.add_stream(
            "libx264", rate=fps, options={"crf": "28", "preset": "veryfast"}
        )
        vstream.width = vstream.height = VIDEO_SIZE
        vstream.pix_fmt = "yuv420p"
        vstream.codec_context.thread_count = 1
        astream = container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        astream.bit_rate = bit_rate
        seg_index = 0
        background = draw_background(rng, VIDEO_SIZE)
        for i in range(n_frames):
            t = i / fps
            while seg_index + 1 < len(segments) and t >= segments[seg_index].end + GAP_SECONDS / 2:
                seg_index += 1
                background = draw_background(rng, VIDEO_SIZE)
            seg = segments[seg_index]
            # the head sways slowly around its position at the segment start
            dt = max(0.0, t - seg.start)
            x = seg.x + 4.0 * math.sin(1.3 * dt + seg_index)
            y = seg.y + 3.0 * math.sin(0.9 * dt + 2 * seg_index)
            yaw = 0.55 * math.sin(0.8 * dt + 1.7 * seg_index) + 0.08 * float(rng.normal())
            mouth = float(env[min(env.size - 1, int(t * CONTROL_RATE))])
            faces = [(identity, x, y, seg.height, yaw, mouth, i in blink_frames)]
            if seg.distractor:  # someone smaller in the background, away from the speaker
                ox = VIDEO_SIZE * (0.18 if seg.x > VIDEO_SIZE / 2 else 0.82)
                faces.insert(0, (other, ox, VIDEO_SIZE * 0.25, seg.height * 0.55, 0.0, 0.0, False))
            frame = av.VideoFrame.from_ndarray(render_frame(background, faces), format="rgb24")
            frame.pts = i
            container.mux(vstream.encode(frame))
        container.mux(vstream.encode(None))
        block = 1024
        for start in range(0, audio.size, block):
            chunk = audio[None, start : start + block]
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(chunk), format="fltp", layout="mono"
            )
            frame.sample_rate = AUDIO_RATE
            frame.pts = start
            container.mux(astream.encode(frame))
        container.mux(astream.encode(None))


def make_corpus(
    out_dir: str | Path,
    num_speakers: int = 16,
    clips_per_speaker: int = 2,
    seed: int = 0,
    workers: int = 1,
    fps: int = FPS,
    sentences: str | Path | None = None,
    held_out_clips: int | None = None,
    val_fraction: float = 0.0,
) -> Path:
    """Write a small AVSpeech-like corpus; returns the path of its ``clips.csv``.

    Layout: ``out_dir/videos/<id>.mp4`` (one video per speaker, 256x256 at ``fps``, AAC
    audio at 24 kHz, ``clips_per_speaker`` talking segments of 3.5-5 s separated by
    0.8 s gaps), ``out_dir/clips.csv`` (``id,start,end,face_x,face_y``, no header, one row
    per segment, face centre normalised to the frame) and ``out_dir/labels.csv`` (one row
    per speaker with a header: ``youtube_id, speaker, gender, age`` and every other
    :class:`Identity` field). The same arguments give the same files, whatever
    ``workers`` (processes that render and encode the videos, about 1.7 s of CPU per
    segment each at 10 fps; drawing the frames is most of it, so ``fps=5`` halves it and
    leaves the voices as they are). ``sentences``: a text file of sentences the speakers
    say, one a line (default: the packaged public-domain list); the speech engine and the
    list are checked before any video is written (:class:`SpeechEngineError`).

    ``held_out_clips``: the number of segments of each speaker that ``s2f-preprocess`` will
    hold out with ``source.val_fraction=val_fraction`` and no test split (the SHA-256 split
    of :func:`~speech2face.data.sources.speaker_split` on the speaker's name), so that the
    evaluation has several segments per unseen speaker while the training speakers keep
    ``clips_per_speaker``. Every other speaker's video and rows are the same as without it.
    """
    if fps < 1:
        raise ValueError(f"make_corpus needs at least one frame per second, got {fps}")
    if num_speakers < 1 or clips_per_speaker < 1:
        raise ValueError("make_corpus needs at least one speaker and one clip per speaker")
    if held_out_clips is not None and held_out_clips < 1:
        raise ValueError(f"held_out_clips must be at least 1, got {held_out_clips}")
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val_fraction must be in [0, 1], got {val_fraction}")
    if workers < 1:
        raise ValueError(f"make_corpus needs at least one worker, got {workers}")
    lines = load_sentences(sentences)  # a missing or empty list fails here, in one line
    engine()  # and so does a missing speech engine
    out = Path(out_dir)
    videos = out / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids: list[str] = []
    while len(ids) < num_speakers:
        vid = random_id(rng)
        if vid not in ids:
            ids.append(vid)
    people = [random_identity(rng, f"spk{i:04d}", vid) for i, vid in enumerate(ids)]

    def clips_of(person: Identity) -> int:
        held_out = speaker_split(person.speaker, val_fraction, 0.0) == "val"
        return held_out_clips if held_out and held_out_clips is not None else clips_per_speaker

    jobs = [
        (videos, person, people[(i + 1) % len(people)], [seed, i], clips_of(person), fps, lines)
        for i, person in enumerate(people)
    ]
    if workers == 1:
        planned = [_speaker_video(*job) for job in jobs]
    else:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
            planned = pool.starmap(_speaker_video, jobs, chunksize=1)
    rows = []
    for person, segments in zip(people, planned, strict=True):
        for seg in segments:
            rows.append(
                (
                    person.video_id,
                    f"{seg.start:.6f}",
                    f"{seg.end:.6f}",
                    f"{seg.x / VIDEO_SIZE:.6f}",
                    f"{seg.y / VIDEO_SIZE:.6f}",
                )
            )
    clips = out / "clips.csv"
    with open(clips, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    fields = list(asdict(people[0]))
    with open(out / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        header = ["youtube_id", *[k for k in fields if k != "video_id"]]
        writer.writerow(header)
        for person in people:
            values = asdict(person)
            writer.writerow(
                [person.video_id] + [_csv_value(values[k]) for k in fields if k != "video_id"]
            )
    return clips


def _speaker_video(
    videos: Path,
    person: Identity,
    other: Identity,
    seed: list[int],
    clips: int,
    fps: int,
    sentences: list[str],
) -> list[_Segment]:
    """Plan one speaker's segments and write their video (``other`` is the second face)."""
    rng = np.random.default_rng(seed)
    segments = _plan_segments(person, rng, clips)
    _write_video(videos / f"{person.video_id}.mp4", person, other, segments, rng, fps, sentences)
    return segments


def _csv_value(value: object) -> str:
    if isinstance(value, tuple):
        return "#" + "".join(f"{int(v):02x}" for v in value)  # colours as hex
    return str(value)
