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
    Source,
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
    for option, value in [("rate_limit", "abc"), ("val_fraction", float("nan")), ("retries", 0)]:
        with pytest.raises(SourceError, match=option):
            AVSpeechSource(tmp_path / "c.csv", tmp_path, **{option: value})
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


def test_keys_fit_ustar_member_names(tmp_path):
    """Keys are at most MAX_KEY_LENGTH characters, so "<key>.<ext>" fits a USTAR name."""
    import io
    import tarfile

    from speech2face.data.shards import MAX_MEMBER_NAME, SAMPLE_EXTENSIONS, TarSampleWriter
    from speech2face.data.sources import MAX_KEY_LENGTH, fit_key

    assert max(MAX_KEY_LENGTH + 1 + len(ext) for ext in SAMPLE_EXTENSIONS) <= MAX_MEMBER_NAME
    assert is_safe_key("a" * MAX_KEY_LENGTH) and not is_safe_key("a" * (MAX_KEY_LENGTH + 1))
    long = "id00001_" + "v" * 150 + "_00001"
    short = fit_key(long)
    assert is_safe_key(short) and short == fit_key(long) and short != fit_key(long + "2")
    assert fit_key("id00001_abc_00001") == "id00001_abc_00001"
    buffer = io.BytesIO()
    writer = TarSampleWriter(buffer)
    writer.write("a" * MAX_KEY_LENGTH, {ext: b"x" for ext in SAMPLE_EXTENSIONS})
    with pytest.raises(ValueError, match="cannot store"):
        writer.write("b" * (MAX_KEY_LENGTH + 1), {"json": b"{}", "lm68.npy": b"x"})
    writer.close()
    buffer.seek(0)
    with tarfile.open(fileobj=buffer) as tar:  # whole, and nothing of the refused sample
        assert [m.name.split(".")[0] for m in tar] == ["a" * MAX_KEY_LENGTH] * 5


def test_patterns_refuse_a_trailing_newline(tmp_path):
    from speech2face.data.sources import YOUTUBE_ID

    assert not is_safe_key("abc\n") and not YOUTUBE_ID.fullmatch("AvWWVOgaMlk\n")
    tree = tmp_path / "mp4"
    for clip in ("id00001\n/vid/00001.mp4", "id00002/vid\n/00001.mp4", "id00003/vid/1\n.mp4"):
        (tree / clip).parent.mkdir(parents=True, exist_ok=True)
        (tree / clip).write_bytes(b"")
    items = VoxCeleb2Source(tmp_path).segments()
    assert [type(i).__name__ for i in items] == ["BadRow"] * 3


def test_long_names_and_keys(tmp_path):
    """A VoxCeleb2 video name too long for a key is shortened (deterministically); a
    manifest row's own key that is too long is a bad row."""
    from speech2face.data.sources import MAX_KEY_LENGTH

    tree = tmp_path / "vox" / "mp4" / "id00001"
    for video in ("v" * 120, "v" * 119 + "w", "short"):
        (tree / video).mkdir(parents=True)
        (tree / video / "00001.mp4").write_bytes(b"")
    items = VoxCeleb2Source(tmp_path / "vox").segments()
    keys = [i.key for i in items]
    assert all(isinstance(i, Segment) for i in items) and len(set(keys)) == 3
    assert all(is_safe_key(k) and len(k) <= MAX_KEY_LENGTH for k in keys)
    assert "id00001_short_00001" in keys
    assert keys == [i.key for i in VoxCeleb2Source(tmp_path / "vox").segments()]
    rows = tmp_path / "rows.csv"
    rows.write_text(f"key,image\n{'k' * 100},a.png\n{'k' * MAX_KEY_LENGTH},a.png\n")
    bad, good = ManifestSource(rows).segments()
    assert isinstance(bad, BadRow) and "is not [A-Za-z0-9_-]{1,91}" in bad.detail
    assert isinstance(good, Segment)


def test_long_key_is_a_bad_row_not_a_crash(tmp_path):
    """A segment whose key cannot name a tar member is recorded; the chunk still commits,
    and a key of the longest allowed length is read back by WebDataset."""
    from speech2face.data.preprocess import Chunk, OutputLayout, SegmentProcessor, process_chunk
    from speech2face.data.synthetic import random_identity, render_frame

    wds = pytest.importorskip("webdataset")
    person = random_identity(np.random.default_rng(3), "p", "p")
    background = Image.new("RGB", (256, 256), (90, 120, 150))
    frame = render_frame(background, [(person, 128, 128, 110, 0.0, 0.2, False)])
    image = tmp_path / "face.png"
    Image.fromarray(frame).save(image)
    longest, too_long = "k" * 91, "k" * 100
    items = [Segment(k, "manifest", "p", "train", image=str(image)) for k in (too_long, longest)]
    layout = OutputLayout(tmp_path / "out")
    layout.make()
    source = Source("train", 0.0, 0.0)
    options = PreprocessOptions(frames_per_clip=1)
    processor = SegmentProcessor(source, options, _tiny_encoder, "tiny", device="cpu")
    part = process_chunk(Chunk(0, "train-000000", "train", items), processor, layout)
    assert [f["reason"] for f in part["failures"]] == ["bad_row"]
    assert [s["key"] for s in part["samples"]] == [longest]
    (sample,) = wds.WebDataset(str(layout.shard("train-000000")), shardshuffle=False)
    assert sample["__key__"] == longest and set(sample) >= {"json", "jpg", "lm68.npy", "feat.npy"}


def _tiny_encoder():
    import torch

    return lambda images: torch.ones(images.shape[0], 4)


def test_unreadable_data_files_fail_in_one_line(tmp_path):
    """Labels and meta files that are not UTF-8 stop the run with one line; undecodable
    bytes in a row of a CSV or manifest make that row a bad row."""
    latin1 = "youtube_id,speaker,gender\nAvWWVOgaMlk,Jos\xe9,m\n".encode("latin-1")
    (tmp_path / "labels.csv").write_bytes(latin1)
    clips = tmp_path / "clips.csv"
    clips.write_bytes(b"AvWWVOgaMlk,1,5,0.5,0.5\nAvWWVOgaM\xe9k,1,5,0.5,0.5\n")
    source = AVSpeechSource(clips, tmp_path, labels=tmp_path / "labels.csv")
    with pytest.raises(SourceError, match=r"not UTF-8 text \(byte 0xe9 on line 2\)") as error:
        source.segments()
    assert "\n" not in str(error.value)
    segment, bad = AVSpeechSource(clips, tmp_path).segments()
    assert isinstance(segment, Segment) and isinstance(bad, BadRow)
    (tmp_path / "mp4").mkdir()
    (tmp_path / "meta.csv").write_bytes(b"VoxCeleb2 ID,Gender\nid00001,\xff\n")
    with pytest.raises(SourceError, match="VoxCeleb2 meta file .* not UTF-8"):
        VoxCeleb2Source(tmp_path, meta=tmp_path / "meta.csv").segments()
    manifest = tmp_path / "rows.csv"
    huge = "x" * 200_000  # over the csv module's field limit
    manifest.write_bytes(f"key,image\nk\xe9y,a.png\nk2,{huge}\nk3,a.png\n".encode("latin-1"))
    items = ManifestSource(manifest).segments()
    assert [type(i).__name__ for i in items] == ["BadRow", "BadRow", "Segment"]
    assert "not CSV" in items[1].detail
