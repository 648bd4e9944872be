"""One segment through the real pipeline (PyAV, MTCNN, dlib): the speaker is chosen at the
segment's start and followed by identity, across a cut that puts a bystander at the
speaker's place."""

from __future__ import annotations

import numpy as np
import pytest

from speech2face.data.media import MediaError, frame_times, read_frames
from speech2face.data.segment import PreprocessOptions, SegmentProcessor
from speech2face.data.sources import AVSpeechSource, ManifestSource, Segment
from speech2face.data.synthetic import VIDEO_SIZE
from speech2face.faces import SAME_PERSON_DISTANCE, frontality, pick_detection
from tests.data.cut_clip import CUT_SECONDS, LEFT, RIGHT, SECONDS, write_cut_clip

FRAMES = 5  # the default frames_per_clip


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    videos = tmp_path_factory.mktemp("cut") / "videos"
    videos.mkdir()
    return {
        "cut": write_cut_clip(videos / "cutClip0001.mp4"),
        "late": write_cut_clip(videos / "lateStart01.mp4", empty_frames=1),
        "absent": write_cut_clip(videos / "noSpeaker01.mp4", empty_frames=5),
    }


def process(source) -> dict:
    """The face metadata of the source's only segment."""
    (segment,) = [s for s in source.segments() if isinstance(s, Segment)]
    processor = SegmentProcessor(source, PreprocessOptions(), None, "none", device="cpu")
    return processor.process(segment).meta["face"]


def avspeech(clip, tmp_path) -> AVSpeechSource:
    rows = tmp_path / "clips.csv"
    rows.write_text(clip.csv_row() + "\n")
    return AVSpeechSource(rows, clip.path.parent, split="train")


def centre(face: dict) -> np.ndarray:
    box, (width, height) = face["box"], face["frame_size"]
    return np.array([(box[0] + box[2]) / 2 / width, (box[1] + box[3]) / 2 / height])


def is_at(face: dict, point: tuple[float, float]) -> bool:
    return bool(np.hypot(*(centre(face) - point)) < 0.06)


def test_the_speaker_is_followed_across_a_cut(clips, tmp_path):
    clip = clips["cut"]
    face = process(avspeech(clip, tmp_path))
    # Chosen at the start (where the hint holds), found in every frame compared, cropped
    # after the cut at the speaker's new place, not at the hint where the bystander stands.
    assert face["start_frame_time"] == 0.0 and face["frames_searched"] == FRAMES
    assert 2 <= face["tracked_frames"] == face["compared_frames"] + 1 <= FRAMES
    assert face["frame_time"] >= CUT_SECONDS and is_at(face, RIGHT)
    assert 0 < face["identity_distance"] < SAME_PERSON_DISTANCE
    # The clip does defeat a picker that trusts the start-time face centre in every frame:
    # after the cut, the face nearest the hint is the bystander, and the most frontal face.
    frames = read_frames(clip.path, frame_times(0.0, SECONDS, FRAMES))
    from speech2face.faces import FaceDetector

    hint = (LEFT[0] * VIDEO_SIZE, LEFT[1] * VIDEO_SIZE)
    detections = FaceDetector().detect(np.stack([f for _, f in frames]))
    naive = []
    for (t, _), dets in zip(frames, detections, strict=True):
        chosen = pick_detection(dets, hint)
        if chosen is not None:
            naive.append((frontality(chosen.landmarks), t, chosen))
    _, t, chosen = max(naive, key=lambda x: x[0])
    assert t >= CUT_SECONDS and np.hypot(*(chosen.centre / VIDEO_SIZE - LEFT)) < 0.06


def test_without_a_hint_the_largest_first_face_is_followed(clips, tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text(f"key,video,start,end\ncut,{clips['cut'].path},0,{SECONDS}\n")
    face = process(ManifestSource(rows, split="train"))
    assert face["start_frame_time"] == 0.0
    assert 2 <= face["tracked_frames"] == face["compared_frames"] + 1 <= FRAMES
    assert face["frame_time"] >= CUT_SECONDS and is_at(face, RIGHT)


def test_a_missed_start_frame_is_retried_just_after_the_start(clips, tmp_path):
    face = process(avspeech(clips["late"], tmp_path))
    assert face["start_frame_time"] == pytest.approx(0.2)  # the first retry
    assert face["frames_searched"] == FRAMES + 1
    assert face["frame_time"] >= CUT_SECONDS and is_at(face, RIGHT)


def test_no_speaker_at_the_start_rejects_the_segment(clips, tmp_path):
    """Nobody at the hint for the first 0.4 s: the bystander who stands there after the cut
    is not taken for the speaker."""
    with pytest.raises(MediaError) as error:
        process(avspeech(clips["absent"], tmp_path))
    assert error.value.reason == "no_face"
    assert "segment's start" in error.value.detail
