"""``s2f-eval``'s "Real voices": portraits of voices no training used, and two judges."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from speech2face.data import ShardDataset
from speech2face.data.real_voices import load_real_voices
from speech2face.inference import Portraitist
from tests.data.conftest import run_s2f
from tests.evaluation.conftest import eval_args

pytestmark = pytest.mark.slow


def small_set(folder: Path, per_gender: int = 2) -> Path:
    """A set of its own: the first ``per_gender`` packaged voices of each gender."""
    folder.mkdir(parents=True)
    packaged = load_real_voices()
    chosen = [v for v in packaged if v.gender == "female"][:per_gender]
    chosen += [v for v in packaged if v.gender == "male"][:per_gender]
    with open(folder / "manifest.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "gender", "language", "engine", "voice", "source", "licence"])
        for v in chosen:
            shutil.copyfile(v.path, folder / v.path.name)
            writer.writerow(
                [v.path.name, v.gender, v.language, v.engine, v.voice, v.source, v.licence]
            )
    return folder


def test_real_voices_in_the_metrics_and_the_report(voice_run, preprocessed, tmp_path):
    checkpoint = voice_run / "checkpoints" / "last.pt"
    voices = small_set(tmp_path / "voices")
    out = tmp_path / "eval"
    result = run_s2f(
        "eval", *eval_args(checkpoint, preprocessed, out, "data.split=val", f"real_voices={voices}")
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "real voices (4 never heard)" in result.stdout
    table = json.loads((out / "metrics.json").read_text())["real_voices"]
    assert table["voices"] == table["drawn"] == 4
    assert table["genders"] == {"female": 2, "male": 2}
    rows = table["rows"]
    for judge in ("attributes", "nearest"):
        hits = sum(r[judge] == r["gender"] for r in rows if r.get(judge) is not None)
        assert table["judges"][judge]["hits"] == hits
        assert table["judges"][judge]["one_gender_floor"] == 0.5
    # The nearest face, found again here: the portrait's feature through s2f-infer's path,
    # against every val sample's true feature.
    artist = Portraitist.from_checkpoint(checkpoint, fast=False)
    samples = list(ShardDataset(str(preprocessed), "val", train=False, clip_samples=None))
    true = torch.stack([s["feature"].float() for s in samples])
    for row in rows:
        feature = artist.predict(voices / row["file"]).feature
        index = int(torch.argmax(F.normalize(true, dim=1) @ F.normalize(feature, dim=0)))
        assert row["nearest_key"] == samples[index]["key"]
        assert row["nearest"] == samples[index]["meta"]["labels"]["gender"]
        assert (out / row["audio"]).read_bytes() == (voices / row["file"]).read_bytes()
        assert Image.open(out / row["portrait"]).size[0] > 0
    sheet = Image.open(out / table["contact_sheet"])
    assert sheet.size[0] > 0 and sheet.size[1] > 0
    html = (out / "report.html").read_text()
    assert "<h2>Real voices</h2>" in html and html.count("<audio") >= 4
    assert table["contact_sheet"] in html


def test_the_packaged_set_is_the_default(voice_run, preprocessed, tmp_path):
    checkpoint = voice_run / "checkpoints" / "last.pt"
    out = tmp_path / "eval"
    args = eval_args(checkpoint, preprocessed, out, "data.split=val", "attributes=none")
    args.remove("real_voices=null")
    result = run_s2f("eval", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    table = json.loads((out / "metrics.json").read_text())["real_voices"]
    assert table["source"] == "packaged" and table["voices"] == len(load_real_voices())
    assert list(table["judges"]) == ["nearest"]  # no backend, one judge
    assert "attributes: no attribute backend" in table["notes"][0]


def test_a_bad_voice_or_set_is_one_line(voice_run, preprocessed, tmp_path):
    checkpoint = voice_run / "checkpoints" / "last.pt"
    voices = small_set(tmp_path / "voices", per_gender=1)
    first = next(csv.DictReader((voices / "manifest.csv").open()))["file"]
    (voices / first).write_bytes(b"OggS but not really an audio file")
    missing = tmp_path / "nowhere"
    for folder, expected in ((voices, first), (missing, "not found")):
        out = tmp_path / f"eval-{folder.name}"
        result = run_s2f(
            "eval",
            *eval_args(checkpoint, preprocessed, out, "data.split=val", f"real_voices={folder}"),
        )
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0 and len(lines) == 1, result.stderr[-2000:]
        assert expected in lines[0] and "Traceback" not in result.stderr
        assert not (out / "report.html").exists() and not (out / "metrics.json").exists()
