"""Sources: parsing, validation of IDs and paths, speaker-disjoint splits; VoxCeleb2 and
manifest sources preprocessed end to end."""

from __future__ import annotations

import json
import shutil
from functools import partial

import numpy as np
import pytest
from PIL import Image

from speech2face.data.preprocess import PreprocessOptions, plan_chunks, preprocess
from speech2face.data.shards import iter_tar_samples
from speech2face.data.sources import (
    AVSpeechSource,
    BadRow,
    ManifestSource,
    Segment,
    SourceError,
    VoxCeleb2Source,
    is_safe_key,
    speaker_split,
)
from speech2face.models import build_face_encoder

ENCODER = partial(build_face_encoder, "dlib")


def test_speaker_split_is_deterministic_and_follows_the_fractions():
    speakers = [f"speaker{i}" for i in range(4000)]
    splits = [speaker_split(s, 0.1, 0.2) for s in speakers]
    assert splits == [speaker_split(s, 0.1, 0.2) for s in speakers]
    share = {name: splits.count(name) / len(splits) for name in ("train", "val", "test")}
    assert share["test"] == pytest.approx(0.2, abs=0.03)
    assert share["val"] == pytest.approx(0.1, abs=0.03)
    assert all(speaker_split(s, 0.0, 0.0) == "train" for s in speakers[:100])


def test_avspeech_rows(tmp_path):
    csv = tmp_path / "clips.csv"
    csv.write_text(
        "\n".join(
            [
                "--3ZXUBOZcM,60.000000,67.000000,0.504167,0.322222",  # IDs may start with '-'
                "",  # blank lines are skipped
                "AvWWVOgaMlk,90.023267,93.559933,0.455208,0.183333",
                "AvWWVOgaMlk,90.023267,93.559933,0.455208,0.183333",  # duplicate
                "../../x/abc,0,4,0.5,0.5",
                "`rm -rf ~`a,0,4,0.5,0.5",
                "AvWWVOgaMlk,5,4,0.5,0.5",  # end before start
                "AvWWVOgaMlk,nan,9,0.5,0.5",
                "AvWWVOgaMlk,1,9,0.5",
            ]
        )
    )
    source = AVSpeechSource(csv, tmp_path, split="test")
    items = source.segments()
    good = [i for i in items if isinstance(i, Segment)]
    bad = [i for i in items if isinstance(i, BadRow)]
    assert [s.key for s in good] == ["--3ZXUBOZcM_00060000", "AvWWVOgaMlk_00090023"]
    assert good[0].face_xy == pytest.approx((0.504167, 0.322222))
    assert all(s.split == "test" and s.speaker == s.youtube_id for s in good)
    assert [b.row for b in bad] == [4, 5, 6, 7, 8, 9]
    assert "duplicate" in bad[0].detail and "invalid YouTube ID" in bad[1].detail
    assert all(is_safe_key(b.key) for b in bad)


def test_sources_refuse_what_they_cannot_read(tmp_path):
    with pytest.raises(SourceError, match="CSV not found"):
        AVSpeechSource(tmp_path / "none.csv", tmp_path)
    (tmp_path / "c.csv").write_text("")
    with pytest.raises(SourceError, match="video_dir not found"):
        AVSpeechSource(tmp_path / "c.csv", tmp_path / "nowhere")
    with pytest.raises(SourceError, match="split must be"):
        AVSpeechSource(tmp_path / "c.csv", tmp_path, split="dev")
    with pytest.raises(SourceError, match="not exceed 1"):
        AVSpeechSource(tmp_path / "c.csv", tmp_path, val_fraction=0.6, test_fraction=0.6)
    with pytest.raises(SourceError, match="not found"):
        VoxCeleb2Source(tmp_path / "vox")


def test_chunks_are_per_split_blocks_in_source_order():
    items = [
        Segment(key=f"k{i}", source="x", speaker=f"s{i}", split=("train", "val")[i % 2])
        for i in range(7)
    ]
    chunks = plan_chunks(items, 2)
    assert [c.name for c in chunks] == ["train-000000", "train-000001", "val-000000", "val-000001"]
    assert [[i.key for i in c.items] for c in chunks] == [
        ["k0", "k2"],
        ["k4", "k6"],
        ["k1", "k3"],
        ["k5"],
    ]
    assert [c.index for c in chunks] == [0, 1, 2, 3]


def test_voxceleb2_tree_end_to_end(corpus, tmp_path):
    """``mp4/idXXXXX/<video>/<n>.mp4``: speaker IDs from the path; odd names are bad rows."""
    videos = sorted(corpus.videos.glob("*.mp4"))[:12]
    real = [v for v in videos if len(v.stem) == 11 and v.stat().st_size > 50_000][:2]
    tree = tmp_path / "vox" / "mp4"
    for n, video in enumerate(real):
        clip = tree / f"id0000{n + 1}" / video.stem / "00001.mp4"
        clip.parent.mkdir(parents=True)
        shutil.copy(video, clip)
    odd = tree / "id00002" / "bad name!" / "00001.mp4"
    odd.parent.mkdir(parents=True)
    shutil.copy(real[0], odd)
    meta = tmp_path / "vox2_meta.csv"
    meta.write_text("VoxCeleb2 ID ,VGGFace2 ID ,Gender ,Set \nid00001 ,n000001 ,f ,dev \n")
    source = VoxCeleb2Source(tmp_path / "vox", split="train", meta=meta)
    items = source.segments()
    assert [type(i).__name__ for i in items] == ["Segment", "Segment", "BadRow"]
    assert [i.speaker for i in items[:2]] == ["id00001", "id00002"]
    assert items[0].labels == {"gender": "female"}
    out = tmp_path / "out"
    options = PreprocessOptions(frames_per_clip=2, max_seconds=4.0)
    stats = preprocess(source, out, ENCODER, "dlib", options, progress=False)
    assert stats["kept"] == 2 and stats["failures_by_reason"] == {"bad_row": 1}
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").open()]
    assert {m["key"] for m in manifest} == {
        f"id0000{n + 1}_{v.stem}_00001" for n, v in enumerate(real)
    }
    assert all(m["duration"] == pytest.approx(4.0, abs=0.01) for m in manifest)  # max_seconds


def test_manifest_rows_end_to_end(corpus, tmp_path):
    """CSV and JSONL manifests: video rows, audio + image rows, image-only (face-only) rows."""
    from speech2face.data.synthetic import random_identity, render_frame

    video = sorted(v for v in corpus.videos.glob("*.mp4") if v.stat().st_size > 50_000)[0]
    shutil.copy(video, tmp_path / "talk.mp4")
    (tmp_path / "faces").mkdir()
    person = random_identity(np.random.default_rng(3), "p", "p")
    background = Image.new("RGB", (256, 256), (90, 120, 150))
    frame = render_frame(background, [(person, 128, 128, 110, 0.0, 0.2, False)])
    Image.fromarray(frame).save(tmp_path / "faces" / "p1.png")
    (tmp_path / "voice.wav").write_bytes(b"")  # unreadable audio
    rows = [
        {"video": "talk.mp4", "start": 0.5, "end": 4.5, "speaker": "alice", "gender": "F"},
        {"image": "faces/p1.png", "speaker": "bob", "age": 40},
        {"audio": "talk.mp4", "image": "faces/p1.png", "speaker": "carol", "split": "val"},
        {"audio": "voice.wav", "image": "faces/p1.png", "speaker": "dave"},
        {"video": "../outside.mp4"},
        {"speaker": "nobody"},
    ]
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
    source = ManifestSource(jsonl, split=None, val_fraction=0.0, test_fraction=0.0)
    items = source.segments()
    assert [type(i).__name__ for i in items] == ["Segment"] * 4 + ["BadRow"] * 3
    assert items[0].labels == {"gender": "female"} and items[2].split == "val"
    out = tmp_path / "out"
    options = PreprocessOptions(frames_per_clip=2)
    stats = preprocess(source, out, ENCODER, "dlib", options, progress=False)
    assert stats["kept"] == 3
    assert stats["failures_by_reason"] == {"bad_row": 3, "decode_error": 1}
    samples = {}
    for path in (out / "shards").glob("*.tar"):
        with open(path, "rb") as f:
            samples.update(dict(iter_tar_samples(f)))
    by_speaker = {json.loads(m["json"])["speaker"]: m for m in samples.values()}
    assert "wav" not in by_speaker["bob"] and "jpg" in by_speaker["bob"]  # face-only
    assert "wav" in by_speaker["alice"] and "wav" in by_speaker["carol"]

    csv_manifest = tmp_path / "rows.csv"
    csv_manifest.write_text("video,start,end,speaker\ntalk.mp4,0.5,4.5,alice\n,,,\n")
    (segment,) = ManifestSource(csv_manifest).segments()
    assert segment.video == str(tmp_path / "talk.mp4") and segment.end == 4.5


def test_avspeech_locates_whole_videos_and_cut_segments(tmp_path):
    from speech2face.data.media import MediaError

    csv = tmp_path / "clips.csv"
    csv.write_text(
        "AvWWVOgaMlk,90.5,94.0,0.5,0.5\n--3ZXUBOZcM,60,67,0.5,0.5\nmissingVid1,1,5,0.5,0.5\n"
    )
    (tmp_path / "AvWWVOgaMlk.mkv").write_bytes(b"x")  # whole video, any container
    (tmp_path / "--3ZXUBOZcM.mp4").write_bytes(b"x")
    (tmp_path / "--3ZXUBOZcM_60000_67000.webm").write_bytes(b"x")  # the cut segment wins
    source = AVSpeechSource(csv, tmp_path)
    whole, cut, missing = source.segments()
    media = source.locate(whole)
    assert media.video == tmp_path / "AvWWVOgaMlk.mkv" and media.offset == 90.5
    media = source.locate(cut)
    assert media.video == tmp_path / "--3ZXUBOZcM_60000_67000.webm" and media.offset == 0.0
    with pytest.raises(MediaError) as error:
        source.locate(missing)
    assert error.value.reason == "missing_file"
