"""The packaged real-voices set: it loads, is balanced and decodable, its gender labels agree
with pitch on average, and a bad manifest is a one-line error naming its row and file."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from speech2face.audio import SAMPLE_RATE, load_audio
from speech2face.data.real_voices import (
    DEFAULT_ROOT,
    GENDERS,
    MANIFEST_COLUMNS,
    MANIFEST_NAME,
    RealVoice,
    load_real_voices,
)
from speech2face.data.sources import SourceError
from speech2face.errors import S2FError

MIN_VOICES = 20
MIN_PER_GENDER = 10
MIN_SECONDS = 3.0
MIN_RMS = 1e-3  # a clip quieter than -60 dBFS RMS is silence
MAX_FOLDER_BYTES = 1_000_000
# pYIN's search range: below any adult male voice, above any adult female speaking voice
F0_MIN_HZ = 60.0
F0_MAX_HZ = 400.0
F0_FRAME = 1024  # 64 ms at 16 kHz: two periods of 60 Hz (pYIN needs at least that)


@pytest.fixture(scope="module")
def voices() -> list[RealVoice]:
    return load_real_voices()


# --------------------------------------------------------------------------- the packaged set


def test_packaged_set_loads_with_both_genders_and_several_languages(voices):
    assert len(voices) >= MIN_VOICES
    for gender in GENDERS:
        assert sum(v.gender == gender for v in voices) >= MIN_PER_GENDER, gender
    assert len({v.language.split("-")[0] for v in voices}) > 1
    assert len({v.path.name for v in voices}) == len(voices)
    assert len({v.voice for v in voices}) == len(voices), "a speaker is counted twice"
    for voice in voices:
        assert voice.path.parent == DEFAULT_ROOT
        assert voice.engine and voice.source and voice.licence
        assert "espeak" not in f"{voice.engine} {voice.voice} {voice.source}".lower()


def test_packaged_folder_is_small_and_documented(voices):
    files = [p for p in DEFAULT_ROOT.iterdir() if p.is_file()]
    assert sum(p.stat().st_size for p in files) < MAX_FOLDER_BYTES
    assert {p.name for p in files} == {v.path.name for v in voices} | {MANIFEST_NAME, "README.md"}
    readme = (DEFAULT_ROOT / "README.md").read_text(encoding="utf-8")
    assert "scripts/make_real_voices.py" in readme
    for voice in voices:
        assert voice.path.name in readme


def test_every_file_decodes_to_speech_at_16k(voices):
    for voice in voices:
        wav = load_audio(voice.path, sample_rate=SAMPLE_RATE)
        assert wav.ndim == 1, voice.path.name
        assert wav.shape[-1] >= MIN_SECONDS * SAMPLE_RATE, voice.path.name
        assert bool(wav.isfinite().all()), voice.path.name
        assert float(wav.square().mean().sqrt()) > MIN_RMS, f"{voice.path.name} is silent"


def median_f0(path: Path) -> float:
    """The median pYIN F0 (Hz) over the voiced frames of ``path``."""
    import librosa

    wav = load_audio(path).numpy()
    f0, voiced, _ = librosa.pyin(
        wav, fmin=F0_MIN_HZ, fmax=F0_MAX_HZ, sr=SAMPLE_RATE, frame_length=F0_FRAME
    )
    values = f0[voiced & np.isfinite(f0)]
    assert values.size, f"{path.name}: no voiced frames"
    return float(np.median(values))


@pytest.mark.slow
def test_gender_labels_agree_with_pitch_on_average(voices):
    """A sanity check of the labels, not a per-file rule: female voices are higher on average."""
    f0 = {v.path.name: median_f0(v.path) for v in voices}
    mean = {g: np.mean([f0[v.path.name] for v in voices if v.gender == g]) for g in GENDERS}
    print("\n".join(f"{name}: {hz:.1f} Hz" for name, hz in f0.items()))
    assert mean["female"] > mean["male"], mean


# --------------------------------------------------------------------------- validation


def write_set(
    root: Path,
    rows: list[list[str]],
    header: tuple[str, ...] | list[str] = MANIFEST_COLUMNS,
    files: tuple[str, ...] = ("a.ogg", "b.ogg"),
) -> Path:
    """A set folder with empty stand-in audio ``files`` and a manifest of ``rows``."""
    root.mkdir(parents=True, exist_ok=True)
    for name in files:
        (root / name).write_bytes(b"")
    with open(root / MANIFEST_NAME, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return root


def row(file: str = "a.ogg", gender: str = "female") -> list[str]:
    return [file, gender, "en-US", "flite", "slt", "libflite1 2.2-5", "Festvox"]


def one_line_error(root: Path, *fragments: str) -> str:
    with pytest.raises(SourceError) as caught:
        load_real_voices(root)
    message = str(caught.value)
    assert "\n" not in message and message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_a_valid_manifest_loads_in_order(tmp_path):
    root = write_set(tmp_path / "set", [row("b.ogg", "male"), row("a.ogg", "female"), []])
    voices = load_real_voices(str(root))
    assert [(v.path.name, v.gender) for v in voices] == [("b.ogg", "male"), ("a.ogg", "female")]
    assert voices[0] == RealVoice(
        root / "b.ogg", "male", "en-US", "flite", "slt", "libflite1 2.2-5", "Festvox"
    )
    assert issubclass(SourceError, S2FError)


@pytest.mark.parametrize(
    "name",
    ["../a.ogg", "/etc/passwd", "sub/a.ogg", "sub\\a.ogg", "..", ".hidden.ogg", "", "C:a.ogg",
     "a.ogg\nb"],
)  # fmt: skip
def test_a_file_name_that_is_not_plain_is_refused(tmp_path, name):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.ogg").write_bytes(b"")
    root = write_set(tmp_path, [row("a.ogg"), row(name)])
    one_line_error(root, "row 3", "not a plain file name")


def test_a_bad_gender_is_refused(tmp_path):
    root = write_set(tmp_path, [row("a.ogg", "female"), row("b.ogg", "unknown")])
    one_line_error(root, "row 3", "b.ogg", "'unknown'", "female, male")


def test_a_missing_column_is_refused(tmp_path):
    header = [c for c in MANIFEST_COLUMNS if c != "licence"]
    root = write_set(tmp_path, [row()[:-1]], header=header)
    one_line_error(root, MANIFEST_NAME, "licence")


def test_a_missing_file_is_refused(tmp_path):
    root = write_set(tmp_path, [row("a.ogg"), row("c.ogg")])
    one_line_error(root, "row 3", "c.ogg", "not found")


def test_a_directory_is_not_a_file(tmp_path):
    root = write_set(tmp_path, [row("d.ogg")])
    (root / "d.ogg").mkdir()
    one_line_error(root, "row 2", "d.ogg", "not found")


def test_a_symbolic_link_out_of_the_folder_is_refused(tmp_path):
    outside = tmp_path / "outside.ogg"
    outside.write_bytes(b"")
    root = write_set(tmp_path / "set", [row("link.ogg")])
    (root / "link.ogg").symlink_to(outside)
    one_line_error(root, "row 2", "link.ogg", "not found")


def test_a_duplicate_file_is_refused(tmp_path):
    root = write_set(tmp_path, [row("a.ogg"), row("b.ogg", "male"), row("a.ogg", "male")])
    one_line_error(root, "row 4", "a.ogg", "first on row 2")


def test_a_short_row_and_an_empty_field_are_refused(tmp_path):
    one_line_error(write_set(tmp_path / "short", [row()[:3]]), "row 2", "fields")
    empty = row()
    empty[MANIFEST_COLUMNS.index("source")] = " "
    one_line_error(write_set(tmp_path / "empty", [empty]), "row 2", "a.ogg", "empty source")


def test_a_missing_or_empty_manifest_or_folder_is_one_line(tmp_path):
    one_line_error(tmp_path / "nowhere", "folder not found")
    one_line_error(tmp_path, "manifest not found")
    (tmp_path / MANIFEST_NAME).write_text("", encoding="utf-8")
    one_line_error(tmp_path, "is empty")
    write_set(tmp_path, [])
    one_line_error(tmp_path, "lists no voices")
    (tmp_path / MANIFEST_NAME).write_bytes(b"file,gender\n\xff\xfe\n")
    one_line_error(tmp_path, "cannot read")
