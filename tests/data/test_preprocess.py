"""``s2f-preprocess`` end to end on the synthetic corpus with injected bad inputs."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from speech2face.audio import SAMPLE_RATE
from speech2face.data.segment import START_RETRY_SECONDS, START_WINDOW_SECONDS
from speech2face.data.shards import decode_wav, iter_tar_samples, read_npy
from speech2face.data.synthetic import FPS
from speech2face.faces import CROP_SIZE, SAME_PERSON_DISTANCE, TEMPLATE
from tests.data.conftest import (
    FRAMES_PER_CLIP,
    SHARD_SIZE,
    contract_args,
    run_options,
    run_s2f,
    s2f_command,
)

COMPARED_OUTPUTS = ("manifest.jsonl", "failures.jsonl", "shards.json")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def shard_samples(out: Path) -> dict[str, dict[str, bytes]]:
    """Every sample of every shard, by key (asserting no key appears twice)."""
    samples: dict[str, dict[str, bytes]] = {}
    for path in sorted((out / "shards").glob("*.tar")):
        with open(path, "rb") as f:
            for key, members in iter_tar_samples(f):
                assert key not in samples, f"{key} appears twice"
                samples[key] = members
    return samples


def segment_key(row: list[str]) -> str:
    return f"{row[0]}_{round(float(row[1]) * 1000):08d}"


# --------------------------------------------------------------------------- the reference run


def test_every_good_segment_becomes_one_sample(corpus, preprocessed):
    manifest = read_jsonl(preprocessed / "manifest.jsonl")
    keys = [line["key"] for line in manifest]
    assert sorted(keys) == sorted(segment_key(row) for row in corpus.good_rows)
    assert set(shard_samples(preprocessed)) == set(keys)
    for line in manifest:
        assert (preprocessed / line["shard"]).is_file()
        assert line["split"] in ("train", "val", "test")
        assert line["labels"]["gender"] in ("male", "female")


def test_every_bad_input_is_recorded_with_its_reason(corpus, preprocessed):
    failures = {line["key"]: line for line in read_jsonl(preprocessed / "failures.jsonl")}
    assert {k: v["reason"] for k, v in failures.items()} == corpus.expected_failures
    assert all(line["detail"] for line in failures.values())
    # Unsafe IDs are reported, never used as paths: nothing was created outside the output.
    assert not (corpus.videos / "etc").exists()
    assert not any(
        "rm -rf" in p.name or ";" in p.name for p in preprocessed.rglob("*") if p.is_file()
    )
    stats = json.loads((preprocessed / "stats.json").read_text())
    assert stats["kept"] == len(corpus.good_rows)
    assert stats["failed"] == len(corpus.expected_failures)
    assert stats["segments"] == stats["kept"] + stats["failed"]
    assert sum(stats["failures_by_reason"].values()) == stats["failed"]
    assert stats["feature_dim"] == 128 and stats["face_encoder"] == "dlib"
    assert stats["this_run"]["clips_per_second"] > 0
    assert set(stats["throughput"]["stage_seconds"]) >= {"audio", "video", "detect", "features"}


def test_shards_hold_fixed_size_blocks_and_are_written_atomically(preprocessed):
    index = json.loads((preprocessed / "shards.json").read_text())
    listed = [entry["path"] for split in index.values() for entry in split]
    on_disk = sorted(p.relative_to(preprocessed).as_posix() for p in preprocessed.glob("shards/*"))
    assert sorted(listed) == on_disk  # no temporary or stray files left
    for split in index.values():
        for entry in split:
            assert 1 <= entry["samples"] <= SHARD_SIZE
            with tarfile.open(preprocessed / entry["path"]) as tar:
                names = tar.getnames()
                assert len(names) == 5 * entry["samples"]
                assert all(m.mtime == 0 and m.uid == 0 for m in tar.getmembers())


def test_sample_contents(corpus, preprocessed):
    rows = {segment_key(row): row for row in corpus.good_rows}
    samples = shard_samples(preprocessed)
    tracked = compared = 0
    starts = []
    for key, members in samples.items():
        assert set(members) == {"json", "wav", "jpg", "lm68.npy", "feat.npy"}
        meta = json.loads(members["json"])
        row = rows[key]
        start, end = float(row[1]), float(row[2])
        # Audio: the whole segment, mono 16 kHz int16.
        pcm, rate = decode_wav(members["wav"])
        assert rate == SAMPLE_RATE and pcm.dtype == np.int16
        assert abs(pcm.size / SAMPLE_RATE - (end - start)) < 0.05
        assert np.abs(pcm).max() > 1000  # speech, not silence
        assert meta["duration"] == pytest.approx(pcm.size / SAMPLE_RATE, abs=1e-3)
        # Face: an aligned 224x224 crop with its box, five points and frontality score.
        crop = np.asarray(Image.open(io.BytesIO(members["jpg"])))
        assert crop.shape == (CROP_SIZE, CROP_SIZE, 3)
        face = meta["face"]
        assert 0 < face["frontality"] <= 1 and face["prob"] >= 0.9
        assert 0 <= face["frame_time"] <= end - start
        np.testing.assert_allclose(face["landmarks5_crop"], TEMPLATE, atol=12)
        # The speaker's face, not the distractor: the box is near the CSV's face centre.
        box, (width, height) = face["box"], face["frame_size"]
        centre = ((box[0] + box[2]) / 2 / width, (box[1] + box[3]) / 2 / height)
        assert np.hypot(centre[0] - float(row[3]), centre[1] - float(row[4])) < 0.1
        # Chosen at the start (MTCNN misses some faces: then a frame just after it, which
        # joins the frames searched), followed by identity.
        retries = len(START_RETRY_SECONDS)
        assert 0 <= face["start_frame_time"] <= START_WINDOW_SECONDS
        assert FRAMES_PER_CLIP <= face["frames_searched"] <= FRAMES_PER_CLIP + retries
        starts.append(face["start_frame_time"])
        assert 0 <= face["frame_index"] < face["frames_searched"]
        assert 1 <= face["tracked_frames"] <= face["compared_frames"] + 1
        assert face["compared_frames"] < face["frames_searched"]
        assert 0 <= face["identity_distance"] < SAME_PERSON_DISTANCE
        tracked += face["tracked_frames"]
        compared += face["compared_frames"] + 1
        # 68 landmarks inside the crop; the eyes sit where the alignment put them.
        lm68 = read_npy(members["lm68.npy"])
        assert lm68.shape == (68, 2) and lm68.dtype == np.float32
        assert (lm68 >= 0).all() and (lm68 < CROP_SIZE).all()
        np.testing.assert_allclose(lm68[36:42].mean(0), TEMPLATE[0], atol=10)
        np.testing.assert_allclose(lm68[42:48].mean(0), TEMPLATE[1], atol=10)
        # Feature: float16 from the configured encoder.
        feat = read_npy(members["feat.npy"])
        assert feat.dtype == np.float16 and feat.shape == (128,)
        assert np.isfinite(feat).all() and np.linalg.norm(feat.astype(np.float32)) > 0.1
        assert meta["face_encoder"] == "dlib" and meta["feature_dim"] == 128
    # The speaker is found again in nearly every frame compared (measured on an 8-speaker
    # corpus, 16 segments of 5 frames all compared: in 79 of 80).
    assert tracked >= 0.9 * compared
    assert sum(t <= 1 / FPS + 1e-3 for t in starts) >= 0.8 * len(samples)  # mostly at the start


def test_splits_are_speaker_disjoint(corpus, preprocessed):
    manifest = read_jsonl(preprocessed / "manifest.jsonl")
    speakers: dict[str, set[str]] = {}
    for line in manifest:
        speakers.setdefault(line["split"], set()).add(line["speaker"])
    splits = list(speakers)
    assert len(splits) >= 2
    for i, a in enumerate(splits):
        for b in splits[i + 1 :]:
            assert not speakers[a] & speakers[b]
    # Speakers come from labels.csv (spkNNNN), not from the YouTube ID.
    labels = {r["youtube_id"]: r["speaker"] for r in csv.DictReader(corpus.labels.open())}
    assert {line["speaker"] for line in manifest} <= set(labels.values())


def test_same_face_features_for_the_same_speaker(preprocessed):
    """dlib features of two clips of one synthetic person are closer than across people."""
    feats: dict[str, list[np.ndarray]] = {}
    for members in shard_samples(preprocessed).values():
        meta = json.loads(members["json"])
        feats.setdefault(meta["speaker"], []).append(read_npy(members["feat.npy"]).astype(float))
    same = [np.linalg.norm(a - b) for f in feats.values() if len(f) == 2 for a, b in [f]]
    people = [f[0] for f in feats.values()]
    other = [np.linalg.norm(a - b) for i, a in enumerate(people) for b in people[i + 1 :]]
    assert np.median(same) < np.median(other)


def test_rerun_with_the_same_arguments_does_nothing(corpus, preprocessed, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(preprocessed, out)
    before = {p: p.stat().st_mtime_ns for p in (out / "shards").glob("*.tar")}
    result = run_s2f("preprocess", *contract_args(corpus, out, *run_options(corpus)))
    assert result.returncode == 0, result.stderr[-2000:]
    assert {p: p.stat().st_mtime_ns for p in (out / "shards").glob("*.tar")} == before
    # Other settings in the same output_dir are refused, with one line and nothing written.
    result = run_s2f(
        "preprocess", *contract_args(corpus, out, *run_options(corpus), "frames_per_clip=4")
    )
    assert result.returncode != 0
    assert "frames_per_clip" in result.stderr and "Traceback" not in result.stderr


# --------------------------------------------------------------------------- kill and resume


def test_killed_run_resumes_to_the_uninterrupted_result(corpus, preprocessed, tmp_path):
    out = tmp_path / "out"
    args = contract_args(corpus, out, *run_options(corpus))
    proc = subprocess.Popen(
        [*s2f_command("preprocess"), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill takes the workers too
    )
    total = len(json.loads((preprocessed / "run.json").read_text())["chunks"])
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list((out / "parts").glob("*.json"))) >= 2:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    done = len(list((out / "parts").glob("*.json")))
    assert 0 < done < total
    assert not (out / "manifest.jsonl").exists()
    # Whatever is visible is whole: every .tar reads to its end.
    for path in (out / "shards").glob("*.tar"):
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                assert len(tar.extractfile(member).read()) == member.size

    result = run_s2f("preprocess", *args)
    assert result.returncode == 0, result.stderr[-2000:]
    for name in COMPARED_OUTPUTS:
        assert (out / name).read_bytes() == (preprocessed / name).read_bytes(), name
    reference = sorted(p.name for p in (preprocessed / "shards").iterdir())
    assert sorted(p.name for p in (out / "shards").iterdir()) == reference  # no temp files
    for name in reference:
        assert (out / "shards" / name).read_bytes() == (preprocessed / "shards" / name).read_bytes()


# --------------------------------------------------------------------------- other entry points


def test_exact_contract_invocation(corpus, tmp_path):
    """The documented command line, verbatim, on a small CSV."""
    small = tmp_path / "clips.csv"
    rows = [",".join(corpus.good_rows[0]), "missingVid1,0.0,4.0,0.5,0.5"]
    small.write_text("\n".join(rows) + "\n")
    out = tmp_path / "OUT"
    result = run_s2f(
        "preprocess",
        "source=avspeech",
        f"source.csv={small}",
        f"source.video_dir={corpus.videos}/",
        "face_encoder=dlib",
        "workers=2",
        f"output_dir={out}/",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "kept 1 of 2 segments" in result.stdout
    assert "clip/s" in result.stderr and "kept=1" in result.stderr  # the progress bar
    assert [line["reason"] for line in read_jsonl(out / "failures.jsonl")] == ["missing_file"]
    assert len(read_jsonl(out / "manifest.jsonl")) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["source.csv=/nonexistent/clips.csv", "source.video_dir=/tmp"], "CSV not found"),
        (["source.video_dir=/tmp"], "missing required value 'source.csv'"),
        (
            ["source.csv={csv}", "source.video_dir=/tmp", "workers=two"],
            "workers must be an integer",
        ),
        (["source.csv={csv}", "source.video_dir=/tmp", "shard_size=0"], "shard_size must be >= 1"),
        (["action=unknown"], "action must be one of"),
        (
            ["source.csv={csv}", "source.video_dir=/tmp", "min_seconds=abc"],
            "min_seconds must be a finite number, got 'abc'",
        ),
        (
            ["source.csv={csv}", "source.video_dir=/tmp", "source.labels={latin1}"],
            "is not UTF-8 text (byte 0xe9 on line 2)",
        ),
    ],
)
def test_bad_command_lines_fail_in_one_line(corpus, tmp_path, args, message):
    out = tmp_path / "never"
    latin1 = tmp_path / "labels.csv"
    latin1.write_bytes("youtube_id,speaker\nAvWWVOgaMlk,Jos\xe9\n".encode("latin-1"))
    args = [a.replace("{csv}", str(corpus.csv)).replace("{latin1}", str(latin1)) for a in args]
    result = run_s2f("preprocess", f"output_dir={out}", *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_features_pass_rewrites_only_the_features(preprocessed, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(preprocessed, out)
    before = shard_samples(out)
    result = run_s2f(
        "preprocess",
        "action=features",
        "face_encoder=facenet",
        "face_encoder.weights=null",  # a random network: offline, and a different width
        f"output_dir={out}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    after = shard_samples(out)
    assert set(after) == set(before)
    for key, members in after.items():
        feat = read_npy(members["feat.npy"])
        assert feat.dtype == np.float16 and feat.shape == (512,)
        meta = json.loads(members["json"])
        assert meta["face_encoder"] == "facenet" and meta["feature_dim"] == 512
        for ext in ("wav", "jpg", "lm68.npy"):
            assert members[ext] == before[key][ext]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["face_encoder"] == "facenet" and stats["feature_dim"] == 512
    assert (out / "manifest.jsonl").read_bytes() == (preprocessed / "manifest.jsonl").read_bytes()


def test_job_array_covers_the_same_segments(corpus, preprocessed, tmp_path):
    """Two jobs (shard_index 0 and 1 of 2) into one directory give the reference's samples;
    the second to finish writes the merged files."""
    from functools import partial

    from speech2face.data.preprocess import PreprocessOptions, preprocess
    from speech2face.data.sources import AVSpeechSource
    from speech2face.models import build_face_encoder
    from tests.data.conftest import FRAMES_PER_CLIP

    source = AVSpeechSource(
        corpus.csv, corpus.videos, val_fraction=0.3, test_fraction=0.2, labels=corpus.labels
    )
    options = PreprocessOptions(frames_per_clip=FRAMES_PER_CLIP)
    encoder = partial(build_face_encoder, "dlib")
    common = dict(shard_size=SHARD_SIZE, num_shards=2, progress=False)
    first = preprocess(source, tmp_path, encoder, "dlib", options, shard_index=1, **common)
    assert first["complete"] is False and 0 < first["chunks_done"] < first["chunks"]
    assert not (tmp_path / "manifest.jsonl").exists()
    stats = preprocess(source, tmp_path, encoder, "dlib", options, shard_index=0, **common)
    assert stats["kept"] == len(corpus.good_rows)
    for name in COMPARED_OUTPUTS:
        mine = read_jsonl(tmp_path / name) if name.endswith("jsonl") else None
        if mine is not None:
            theirs = read_jsonl(preprocessed / name)
            assert [m["key"] for m in mine] == [t["key"] for t in theirs], name
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == sorted(
        p.name for p in (preprocessed / "shards").iterdir()
    )


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("min_seconds", "abc", "min_seconds must be a finite number, got 'abc'"),
        ("max_seconds", float("nan"), "max_seconds must be a finite number"),
        ("min_seconds", float("inf"), "min_seconds must be a finite number"),
        ("min_seconds", 0, "min_seconds must be > 0"),
        ("min_seconds", 20, "need min_seconds <= max_seconds"),
        ("min_face_prob", True, "min_face_prob must be a finite number"),
        ("min_face_prob", 1.5, "min_face_prob must be in [0.0, 1.0]"),
        ("frames_per_clip", 2.5, "frames_per_clip must be an integer, got 2.5"),
        ("frames_per_clip", "5", "frames_per_clip must be an integer, got '5'"),
        ("min_face_size", None, "min_face_size must be an integer, got None"),
        ("min_face_size", 0, "min_face_size must be >= 1"),
        ("detect_max_side", [640], "detect_max_side must be an integer"),
        ("jpeg_quality", 101, "jpeg_quality must be in [1, 100]"),
    ],
)
def test_options_are_checked(field, value, message):
    from speech2face.data.preprocess import PreprocessOptions
    from speech2face.errors import ConfigError

    with pytest.raises(ConfigError) as error:
        PreprocessOptions(**{field: value})
    assert message in str(error.value) and "\n" not in str(error.value)
    assert PreprocessOptions(min_seconds=3, max_seconds=10).min_seconds == 3.0


def test_resume_refuses_an_edited_source(tmp_path):
    """run.json records a digest of each chunk's items: a source edited between a killed
    run and its resumption is refused (same keys, other times), not mixed in."""
    from speech2face.data.preprocess import PreprocessOptions, preprocess
    from speech2face.data.sources import ManifestSource
    from speech2face.errors import ConfigError
    from speech2face.models import build_face_encoder

    rows = tmp_path / "rows.csv"
    lines = [f"k{i},missing{i}.mp4,0,{4 + i}" for i in range(4)]
    rows.write_text("key,video,start,end\n" + "\n".join(lines) + "\n")
    source = ManifestSource(rows, split="train")
    out = tmp_path / "out"
    common = dict(shard_size=2, num_shards=2, progress=False, device="cpu")
    dlib = partial(build_face_encoder, "dlib")
    run = partial(preprocess, source, out, dlib, "dlib", PreprocessOptions(), **common)
    assert run(shard_index=0)["complete"] is False  # chunk 0 done, chunk 1 left
    assert run(shard_index=0)["complete"] is False  # unchanged: resumes
    rows.write_text(rows.read_text().replace("k3,missing3.mp4,0,7", "k3,missing3.mp4,1,7"))
    with pytest.raises(ConfigError, match="source changed .*first train-000001") as error:
        run(shard_index=1)
    assert "\n" not in str(error.value)
    assert len(list((out / "parts").glob("*.json"))) == 1
