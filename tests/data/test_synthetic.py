"""The synthetic corpus: deterministic, decodable, faces MTCNN finds, informative voices."""

from __future__ import annotations

import csv
from dataclasses import replace

import av
import librosa
import numpy as np
import pytest

from speech2face.data.sources import YOUTUBE_ID
from speech2face.data.synthetic import (
    ACCENT_LANGUAGES,
    AUDIO_RATE,
    FPS,
    VIDEO_SIZE,
    accent_of,
    make_corpus,
    random_identity,
    synthesize_voice,
    voice_of,
)

MIN_DETECTION_RATE = 0.9  # share of sampled frames in which MTCNN finds the speaker


def test_same_seed_same_files(tmp_path):
    a = make_corpus(tmp_path / "a", num_speakers=2, clips_per_speaker=1, seed=3)
    b = make_corpus(tmp_path / "b", num_speakers=2, clips_per_speaker=1, seed=3, workers=2)
    c = make_corpus(tmp_path / "c", num_speakers=2, clips_per_speaker=1, seed=4)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    assert (a.parent / "labels.csv").read_bytes() == (b.parent / "labels.csv").read_bytes()
    for video in (a.parent / "videos").iterdir():
        assert video.read_bytes() == (b.parent / "videos" / video.name).read_bytes()


def test_held_out_speakers_get_their_own_number_of_segments(tmp_path):
    from speech2face.data.sources import speaker_split

    a = make_corpus(tmp_path / "a", num_speakers=2, clips_per_speaker=1, seed=0, fps=5)
    b = make_corpus(tmp_path / "b", 2, 1, seed=0, fps=5, held_out_clips=3, val_fraction=0.5)
    speakers = {
        r["youtube_id"]: r["speaker"] for r in csv.DictReader(b.with_name("labels.csv").open())
    }
    splits = {vid: speaker_split(name, 0.5, 0.0) for vid, name in speakers.items()}
    assert sorted(splits.values()) == ["train", "val"]  # one of each with this seed
    rows_a, rows_b = list(csv.reader(a.open())), list(csv.reader(b.open()))
    for vid, split in splits.items():
        mine = [row for row in rows_b if row[0] == vid]
        assert len(mine) == (3 if split == "val" else 1)
        same = (a.parent / "videos" / f"{vid}.mp4").read_bytes() == (
            b.parent / "videos" / f"{vid}.mp4"
        ).read_bytes()
        # the training speaker's video and row are untouched; the held-out one is new
        assert same == (split == "train")
        if split == "train":
            assert mine == [row for row in rows_a if row[0] == vid]
    with pytest.raises(ValueError, match="held_out_clips"):
        make_corpus(tmp_path / "c", 2, held_out_clips=0, val_fraction=0.5)


def test_fewer_frames_same_voices(tmp_path):
    a = make_corpus(tmp_path / "a", num_speakers=2, clips_per_speaker=1, seed=3)
    b = make_corpus(tmp_path / "b", num_speakers=2, clips_per_speaker=1, seed=3, fps=5)
    assert a.read_bytes() == b.read_bytes()
    assert (a.parent / "labels.csv").read_bytes() == (b.parent / "labels.csv").read_bytes()
    for video in (a.parent / "videos").iterdir():
        sounds, rates = [], []
        for path in (video, b.parent / "videos" / video.name):
            with av.open(str(path)) as container:
                rates.append(container.streams.video[0].average_rate)
                sounds.append(
                    np.concatenate([f.to_ndarray().ravel() for f in container.decode(audio=0)])
                )
        assert rates == [FPS, 5]
        np.testing.assert_array_equal(sounds[0], sounds[1])
    with pytest.raises(ValueError, match="frame per second"):
        make_corpus(tmp_path / "c", num_speakers=2, fps=0)


def test_corpus_layout(corpus):
    rows = corpus.good_rows
    labels = list(csv.DictReader(corpus.labels.open()))
    assert len(labels) == 6 and len(rows) == 12
    assert {r["gender"] for r in labels} <= {"male", "female"}
    for row in rows:
        assert YOUTUBE_ID.fullmatch(row[0])
        start, end, x, y = map(float, row[1:])
        assert 3.0 <= end - start <= 6.0 and 0 < x < 1 and 0 < y < 1
    video = corpus.videos / f"{rows[-1][0]}.mp4"
    with av.open(str(video)) as container:
        (vstream,), (astream,) = container.streams.video, container.streams.audio
        assert (vstream.width, vstream.height) == (VIDEO_SIZE, VIDEO_SIZE)
        assert vstream.average_rate == FPS and astream.rate == AUDIO_RATE
        assert container.duration / 1e6 >= float(rows[-1][2])


def test_mtcnn_finds_the_faces(corpus):
    from speech2face.data.media import frame_times, read_frames
    from speech2face.faces import FaceDetector, pick_detection

    detector = FaceDetector()
    found = total = 0
    for row in corpus.good_rows:
        start, end, x, y = map(float, row[1:])
        frames = read_frames(corpus.videos / f"{row[0]}.mp4", frame_times(start, end, 6))
        detections = detector.detect(np.stack([f for _, f in frames]))
        for dets in detections:
            total += 1
            best = pick_detection(dets, (x * VIDEO_SIZE, y * VIDEO_SIZE))
            if best is not None and np.hypot(*(best.centre / VIDEO_SIZE - (x, y))) < 0.1:
                found += 1
    assert found / total >= MIN_DETECTION_RATE


def median_pitch(wav: np.ndarray, rate: int) -> float:
    """librosa's pYIN, an independent pitch tracker: the median over voiced frames, Hz."""
    f0, _, _ = librosa.pyin(wav, fmin=60, fmax=400, sr=rate)
    return float(np.nanmedian(f0))


def spectral_centroid(wav: np.ndarray, rate: int) -> float:
    """The centroid of the long-term spectrum below 4 kHz, where the formants are."""
    spectrum = np.abs(np.fft.rfft(wav))
    freqs = np.fft.rfftfreq(len(wav), 1 / rate)
    band = freqs < 4000
    return float((spectrum[band] * freqs[band]).sum() / spectrum[band].sum())


def test_voices_carry_the_speakers_attributes():
    rng = np.random.default_rng(11)
    people = [random_identity(rng, f"s{i}", "x") for i in range(12)]
    f0 = {p.speaker: median_pitch(synthesize_voice(p, 3.0, rng)[0], AUDIO_RATE) for p in people}
    for p in people:
        assert f0[p.speaker] == pytest.approx(p.f0_hz, rel=0.2)  # the pitch is the speaker's
    male = [f0[p.speaker] for p in people if p.gender == "male"]
    female = [f0[p.speaker] for p in people if p.gender == "female"]
    assert male and female and np.mean(female) > np.mean(male) + 50  # ranges overlap a little
    # A longer vocal tract (bigger head) lowers the formants: same pitch, darker sound.
    base = people[0]
    short = synthesize_voice(replace(base, vtl_cm=14.0), 3.0, np.random.default_rng(1))[0]
    long = synthesize_voice(replace(base, vtl_cm=18.0), 3.0, np.random.default_rng(1))[0]
    assert spectral_centroid(long, AUDIO_RATE) < 0.95 * spectral_centroid(short, AUDIO_RATE)
    # The accent follows the skin tone's group and picks the variety of English spoken.
    assert all(p.accent == accent_of(p.skin) for p in people)
    assert {p.accent for p in people} == {0, 1, 2}
    assert [voice_of(replace(base, accent=a)).language for a in (0, 1, 2)] == list(ACCENT_LANGUAGES)
    # 12 speakers, 12 voices: no two share pitch, tract, rate and intonation
    voices = {voice_of(p) for p in people}
    assert len(voices) == len(people)


def test_speakers_say_sentences():
    """Every segment is a different stretch of the sentence list: words, then pauses."""
    rng = np.random.default_rng(2)
    person = random_identity(rng, "s", "x")
    a, env_a = synthesize_voice(person, 4.0, np.random.default_rng(1))
    b, _ = synthesize_voice(person, 4.0, np.random.default_rng(2))
    assert a.shape == b.shape == (4 * AUDIO_RATE,) and not np.allclose(a, b)
    assert env_a.shape == (4 * 200,) and env_a.min() >= 0.0 and env_a.max() <= 1.0
    assert (env_a < 0.1).mean() > 0.05 and (env_a > 0.5).mean() > 0.1  # the mouth moves
    np.testing.assert_array_equal(a, synthesize_voice(person, 4.0, np.random.default_rng(1))[0])
