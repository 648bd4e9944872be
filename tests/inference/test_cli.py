"""``s2f-infer`` run as users run it: formats, rates, long and short audio, bad inputs,
batches, output naming, the default checkpoint and ``python -m speech2face infer``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from speech2face.audio import load_audio, spectrogram
from speech2face.cli.infer import main
from speech2face.inference import install_default
from tests.inference.conftest import ERROR, buzz, error_lines, infer, voice
from tests.media import write_av, write_pcm16_wav

RATE = 16_000
WINDOW = 48_000  # the tests' checkpoint: 3 s windows
SIZE = 56  # and 56x56 portraits


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    """``s2f-infer ARGS`` in this process: (exit status, stdout, stderr)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def one_error(code: int, err: str) -> str:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(ERROR), err
    return lines[0]


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


CONTAINERS = ("wav", "flac", "ogg", "mp3", "m4a", "mp4")


@pytest.fixture(scope="module")
def formats(tmp_path_factory) -> Path:
    """One voice in every supported container (``speech-<format>``), the same voice and others
    at odd rates and channel counts, and a file that is not media."""
    folder = tmp_path_factory.mktemp("formats")
    wav = voice(4.0, seed=1)
    sf.write(folder / "speech-wav.wav", wav, RATE, subtype="PCM_16")
    sf.write(folder / "speech-flac.flac", wav, RATE, subtype="PCM_16")
    sf.write(folder / "speech-ogg.ogg", wav, RATE, format="OGG", subtype="VORBIS")
    sf.write(folder / "speech-mp3.mp3", wav, RATE, format="MP3", subtype="MPEG_LAYER_III")
    write_av(folder / "speech-m4a.m4a", wav, RATE)
    write_av(folder / "speech-mp4.mp4", wav, RATE, video_seconds=4.0)
    sf.write(folder / "rate8k.wav", voice(4.0, 8_000, seed=2), 8_000, subtype="PCM_16")
    sf.write(folder / "rate48k24.wav", voice(4.0, 48_000, seed=3), 48_000, subtype="PCM_24")
    stereo = np.stack([voice(4.0, 44_100, seed=4), buzz(4.0, 44_100)], axis=1)
    sf.write(folder / "stereo.wav", stereo, 44_100, subtype="FLOAT")
    (folder / "notes.txt").write_text("not looked at\n")
    return folder


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_every_format_rate_and_channel_count(formats, artist, checkpoint, tmp_path):
    out = tmp_path / "out"
    result = infer(
        str(formats), "-o", str(out), "--checkpoint", str(checkpoint), "--features", "--precise"
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    names = [f"speech-{c}" for c in CONTAINERS] + ["rate8k", "rate48k24", "stereo"]
    assert files(out) == sorted([f"{n}.npy" for n in names] + [f"{n}.png" for n in names])
    assert len(result.stdout.splitlines()) == len(names)
    for line in result.stdout.splitlines():
        assert " -> " in line and "(2 windows, " in line and "s of voice)" in line, line
    features = {n: np.load(out / f"{n}.npy") for n in names}
    for name in names:
        assert features[name].shape == (artist.bundle.feature_dim,)
        assert features[name].dtype == np.float32
        image = Image.open(out / f"{name}.png")
        assert image.size == (SIZE, SIZE) and image.mode == "RGB"
    # What the CLI writes is the library's prediction for the file.
    for name in ("speech-mp4", "rate48k24"):
        (path,) = formats.glob(f"{name}.*")
        np.testing.assert_allclose(features[name], artist.predict(path).feature.numpy(), atol=1e-5)
    # Odd rates and channels: the file's samples, downmixed and resampled.
    for name in ("rate8k", "rate48k24", "stereo"):
        data, rate = sf.read(formats / f"{name}.wav", dtype="float32", always_2d=True)
        expected = artist.predict((torch.from_numpy(data.mean(axis=1)), rate)).feature.numpy()
        np.testing.assert_allclose(features[name], expected, atol=1e-4)
    # The same voice in every container: lossless ones alike, lossy ones close.
    reference = features["speech-wav"]
    np.testing.assert_allclose(features["speech-flac"], reference, atol=1e-5)
    for container in ("ogg", "mp3", "m4a", "mp4"):
        assert cosine(features[f"speech-{container}"], reference) > 0.98, container


def direct_feature(artist, wav: torch.Tensor, starts: list[float]) -> np.ndarray:
    """The voice encoder's raw outputs for 3 s windows at ``starts`` (s), averaged, placed."""
    clips = torch.stack([wav[int(s * RATE) : int(s * RATE) + WINDOW] for s in starts])
    bundle = artist.bundle
    with torch.no_grad():
        raw = bundle.voice_encoder(spectrogram(clips))
        return bundle.place(raw.mean(dim=0, keepdim=True))[0].numpy()


def test_long_audio_averages_its_windows(artist, checkpoint, tmp_path, capsys):
    path = tmp_path / "long.wav"
    sf.write(path, buzz(10.0), RATE, subtype="FLOAT")
    code, out, err = run_main(
        capsys, str(path), "--checkpoint", str(checkpoint), "--features", "--precise"
    )
    assert code == 0 and err == "", err
    assert (
        out
        == f"{path} -> {path.with_suffix('.png')}, {path.with_suffix('.npy')} (6 windows, 10.0 s of voice)\n"
    )
    # 3 s windows every 1.5 s, the last flush with the end: 0, 1.5, 3, 4.5, 6 and 7 s.
    expected = direct_feature(artist, load_audio(path), [0.0, 1.5, 3.0, 4.5, 6.0, 7.0])
    np.testing.assert_allclose(np.load(path.with_suffix(".npy")), expected, atol=1e-5)
    assert files(tmp_path) == ["long.npy", "long.png", "long.wav"]


def test_short_audio_is_tiled(artist, checkpoint, tmp_path, capsys):
    path = tmp_path / "short.wav"
    wav = buzz(1.5)
    sf.write(path, wav, RATE, subtype="FLOAT")
    code, out, _ = run_main(
        capsys, str(path), "--checkpoint", str(checkpoint), "--features", "--precise"
    )
    assert code == 0 and out.endswith("(1 window, 1.5 s of voice)\n"), out
    tiled = torch.from_numpy(np.tile(wav, 2).astype(np.float32))
    expected = direct_feature(artist, tiled, [0.0])
    np.testing.assert_allclose(np.load(tmp_path / "short.npy"), expected, atol=1e-5)


def test_header_rates_sharing_no_factor_with_16k_answer_in_one_line(checkpoint, tmp_path):
    """8 KB wavs (4,000 samples) whose headers say 16,001, 44,101 or 48,001 Hz once took
    s2f-infer to 4.8 to 13 GB of memory before it answered: each is now too short, in one
    line, while a 2 s file at 44,101 Hz gets its portrait; a rate outside 1 to 384 kHz is
    refused in one line."""
    samples = voice(0.25, seed=5)  # (4000,): the same samples under each header
    short = [
        write_pcm16_wav(tmp_path / f"rate{rate}.wav", samples, rate)
        for rate in (16_001, 44_101, 48_001)
    ]
    assert {path.stat().st_size for path in short} == {8_044}
    long = write_pcm16_wav(tmp_path / "long.wav", voice(2.0, 44_101, seed=6), 44_101)
    out = tmp_path / "out"
    result = infer(*map(str, short), str(long), "-o", str(out), "--checkpoint", str(checkpoint))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = error_lines(result.stderr)
    assert len(errors) == 3 and result.stderr.strip().endswith("3 of 4 failed"), result.stderr
    for line, path in zip(errors, short, strict=True):
        assert line.startswith(f"{ERROR} {path}: only 0.") and "at least 1 s" in line, line
    assert result.stdout.startswith(f"{long} -> ") and files(out) == ["long.png"]

    odd = write_pcm16_wav(tmp_path / "odd.wav", samples, 1_000_003)
    result = infer(str(odd), "--checkpoint", str(checkpoint))
    assert result.returncode == 2 and result.stdout == ""
    message = f"{ERROR} {odd}: sample rate 1000003 Hz is outside 1000 to 384000 Hz"
    assert result.stderr.strip() == message, result.stderr


@pytest.fixture(scope="module")
def bad_inputs(formats, tmp_path_factory) -> dict[str, str]:
    """Broken and unusable recordings: file name -> the problem s2f-infer names."""
    folder = tmp_path_factory.mktemp("bad")
    m4a = (formats / "speech-m4a.m4a").read_bytes()
    (folder / "empty.wav").write_bytes(b"")
    (folder / "text.mp3").write_text("not audio\n" * 50)
    (folder / "truncated.m4a").write_bytes(m4a[: len(m4a) // 3])
    (folder / "header.wav").write_bytes((formats / "speech-wav.wav").read_bytes()[:30])
    nan = voice(3.0)
    nan[RATE] = np.nan
    sf.write(folder / "nan.wav", nan, RATE, subtype="FLOAT")
    sf.write(folder / "short.wav", voice(0.5), RATE)
    sf.write(folder / "silence.wav", np.zeros(3 * RATE), RATE)
    hiss = np.random.default_rng(0).normal(0, 10 ** (-75 / 20), 3 * RATE)
    sf.write(folder / "hiss.flac", hiss, RATE, subtype="PCM_24")
    (folder / "loop-a.wav").symlink_to(folder / "loop-b.wav")
    (folder / "loop-b.wav").symlink_to(folder / "loop-a.wav")
    return {
        str(folder / "missing.wav"): "no such file",
        str(folder / "loop-a.wav"): "a symbolic link to nothing (a loop, or a missing target)",
        str(folder / "empty.wav"): "file is empty",
        str(folder / "text.mp3"): "not an audio file",
        str(folder / "truncated.m4a"): "not a readable audio",
        str(folder / "header.wav"): "not a readable audio file",
        str(folder / "nan.wav"): "contains NaN or infinite samples",
        str(folder / "short.wav"): "s of sound (silence at the ends left out); at least 1 s",
        str(folder / "silence.wav"): "silent",
        str(folder / "hiss.flac"): "silent",
    }


def test_each_bad_input_is_one_line_and_nothing_written(bad_inputs, checkpoint, capsys):
    for path, problem in bad_inputs.items():
        before = files(Path(path).parent)
        code, out, err = run_main(capsys, path, "--checkpoint", str(checkpoint), "--features")
        line = one_error(code, err)
        assert line.startswith(f"{ERROR} {path}: ") and problem in line, line
        assert out == ""
        assert files(Path(path).parent) == before  # no PNG, no .npy, no temporary file


def test_mixed_batch_does_the_good_files_and_says_how_many_failed(
    bad_inputs, formats, checkpoint, tmp_path, capsys
):
    good = [str(formats / "speech-wav.wav"), str(formats / "stereo.wav")]
    inputs = [good[0], *bad_inputs, good[1]]
    out = tmp_path / "out"
    code, stdout, stderr = run_main(
        capsys, *inputs, "-o", str(out), "--checkpoint", str(checkpoint)
    )
    assert code == 1, stderr
    lines = stderr.strip().splitlines()
    assert lines[-1] == f"s2f-infer: {len(bad_inputs)} of {len(inputs)} failed"
    errors = error_lines(stderr)
    assert len(errors) == len(bad_inputs) == len(lines) - 1
    for line, (path, problem) in zip(errors, bad_inputs.items(), strict=True):
        assert line.startswith(f"{ERROR} {path}: ") and problem in line, line
    assert files(out) == ["speech-wav.png", "stereo.png"]
    assert [line.split(" -> ")[0] for line in stdout.splitlines()] == good


def test_outputs_are_named_as_documented(formats, checkpoint, tmp_path, capsys):
    source = tmp_path / "voice.wav"
    source.write_bytes((formats / "speech-wav.wav").read_bytes())
    ckpt = ("--checkpoint", str(checkpoint), "-q")
    # Beside the input; then -o as the PNG's path; then -o an existing directory.
    assert run_main(capsys, str(source), *ckpt)[:2] == (0, "")
    (tmp_path / "faces").mkdir()
    assert run_main(capsys, str(source), "-o", str(tmp_path / "face.png"), *ckpt)[0] == 0
    assert run_main(capsys, str(source), "-o", str(tmp_path / "faces"), *ckpt)[0] == 0
    assert files(tmp_path) == ["face.png", "faces", "voice.png", "voice.wav"]
    assert files(tmp_path / "faces") == ["voice.png"]
    assert Image.open(tmp_path / "face.png").size == (SIZE, SIZE)
    # --size upscales (Lanczos); an existing PNG is replaced.
    old = (tmp_path / "face.png").read_bytes()
    assert (
        run_main(capsys, str(source), "-o", str(tmp_path / "face.png"), "--size", "100", *ckpt)[0]
        == 0
    )
    assert Image.open(tmp_path / "face.png").size == (100, 100)
    # --size is bounded before any work: no 400-megapixel PNG, no MemoryError.
    big = tmp_path / "big.png"
    code, _, err = run_main(capsys, str(source), "-o", str(big), "--size", "60000", *ckpt)
    assert code == 2 and not big.exists()
    assert "must be at most 4096 pixels: '60000'" in err and "Traceback" not in err
    assert (tmp_path / "face.png").read_bytes() != old
    # A directory input: every audio file in it, beside each (notes.txt is not looked at).
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("a.flac", "b.wav", "notes.txt"):
        source_name = "speech-flac.flac" if name.endswith(".flac") else "notes.txt"
        source_name = "rate8k.wav" if name == "b.wav" else source_name
        (folder / name).write_bytes((formats / source_name).read_bytes())
    code, out, err = run_main(capsys, str(folder), *ckpt[:2])
    assert code == 0 and err == "" and len(out.splitlines()) == 2
    assert files(folder) == ["a.flac", "a.png", "b.png", "b.wav", "notes.txt"]


def test_outputs_never_replace_an_input_or_collide(formats, checkpoint, tmp_path, capsys):
    wav = tmp_path / "voice.wav"
    mp3 = tmp_path / "voice.mp3"
    wav.write_bytes((formats / "speech-wav.wav").read_bytes())
    mp3.write_bytes((formats / "speech-mp3.mp3").read_bytes())
    ckpt = ("--checkpoint", str(checkpoint))
    code, _, err = run_main(capsys, str(wav), "-o", str(wav), *ckpt)
    assert "is the input file" in one_error(code, err)
    assert wav.read_bytes() == (formats / "speech-wav.wav").read_bytes()
    code, _, err = run_main(
        capsys, str(wav), "-o", str(tmp_path / "no" / "such" / "face.png"), *ckpt
    )
    assert "does not exist" in one_error(code, err)
    # voice.wav and voice.mp3 would both be voice.png: the second is refused, not written over.
    code, out, err = run_main(capsys, str(wav), str(mp3), *ckpt)
    assert code == 1 and len(out.splitlines()) == 1
    assert error_lines(err) == [
        f"{ERROR} {mp3}: its portrait {tmp_path / 'voice.png'} would replace the one of {wav}"
    ]
    assert err.strip().splitlines()[-1] == "s2f-infer: 1 of 2 failed"
    # -o same.npy --features: the portrait and the feature cannot share one file.
    same = tmp_path / "same.npy"
    code, _, err = run_main(capsys, str(wav), "-o", str(same), "--features", *ckpt)
    assert "its portrait and its feature would both be" in one_error(code, err)
    assert not same.exists() and not (tmp_path / "same.png").exists()


@pytest.fixture(scope="module")
def foreign_checkpoints(checkpoint, decoder_only, tmp_path_factory) -> dict[Path, str]:
    """Checkpoints s2f-infer refuses: path -> the problem it names."""
    folder = tmp_path_factory.mktemp("checkpoints")
    payload = torch.load(checkpoint, map_location="cpu", weights_only=True)
    torch.save({**payload, "version": 99}, folder / "future.pt")
    torch.save({"model": {"weight": torch.zeros(3)}, "epoch": 3}, folder / "other.pt")
    (folder / "notes.pt").write_text("not a checkpoint\n")
    return {
        folder / "future.pt": "version 99 training checkpoint; this speech2face reads version 1",
        folder / "other.pt": "is not a speech2face training checkpoint",
        folder / "notes.pt": "not a tensor file",
        decoder_only: "holds a face decoder alone",
        folder / "missing.pt": "does not exist",
    }


def test_checkpoints_from_elsewhere_are_refused(foreign_checkpoints, formats, tmp_path, capsys):
    source = tmp_path / "voice.wav"
    source.write_bytes((formats / "speech-wav.wav").read_bytes())
    for path, problem in foreign_checkpoints.items():
        code, out, err = run_main(capsys, str(source), "--checkpoint", str(path))
        line = one_error(code, err)
        assert str(path) in line and problem in line, line
    assert files(tmp_path) == ["voice.wav"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without CUDA")
def test_cuda_without_a_gpu_is_one_line(formats, checkpoint, capsys):
    code, _, err = run_main(
        capsys, str(formats / "speech-wav.wav"), "--checkpoint", str(checkpoint), "--device", "cuda"
    )
    assert "no CUDA device" in one_error(code, err)


def test_default_checkpoint_and_python_m(formats, checkpoint, tmp_path, monkeypatch):
    """Without --checkpoint: $S2F_HOME/models/default.pt; missing, a one-line hint."""
    home = tmp_path / "home"
    monkeypatch.setenv("S2F_HOME", str(home))
    env = {**os.environ, "S2F_HOME": str(home)}
    source = tmp_path / "voice.wav"
    source.write_bytes((formats / "speech-wav.wav").read_bytes())
    result = infer(str(source), env=env)
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"{ERROR} no model at {home / 'models' / 'default.pt'}")
    assert "s2f-demo" in line and "make demo" in line and "--checkpoint" in line
    assert files(tmp_path) == ["voice.wav"]

    install_default(checkpoint)
    result = subprocess.run(
        [sys.executable, "-m", "speech2face", "infer", str(source)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{source} -> {tmp_path / 'voice.png'} (2 windows")
    assert Image.open(tmp_path / "voice.png").size == (SIZE, SIZE)


EDITED = (
    "huge-clip",
    "negative-clip",
    "text-clip",
    "no-face-encoder",
    "other-shape",
    "huge-width",
    "text-image-size",
)


@pytest.mark.parametrize("name", EDITED)
def test_edited_checkpoints_are_refused_in_one_line(edited_checkpoints, formats, tmp_path, name):
    """Through the real command: one line naming the file and the field, no traceback, no
    portrait; the 400-million-sample window is refused before any audio is read."""
    path, says = edited_checkpoints[name]
    source = tmp_path / "voice.wav"
    source.write_bytes((formats / "speech-wav.wav").read_bytes())
    result = infer(str(source), "-o", str(tmp_path / "face.png"), "--checkpoint", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"{ERROR} {path}: ") and says in line, line
    assert files(tmp_path) == ["voice.wav"]


def test_an_image_given_as_the_voice_is_not_an_audio_file(tmp_path):
    """``s2f-infer male.png``: the image is named as not audio, and left as it was."""
    image = tmp_path / "male.png"
    Image.new("RGB", (8, 8), "gray").save(image)
    photo = tmp_path / "face.JPG"
    photo.write_bytes(image.read_bytes())
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for source in (image, photo):
        result = infer(str(source))
        assert result.returncode == 2 and result.stdout == ""
        assert error_lines(result.stderr) == result.stderr.strip().splitlines()
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(f"{ERROR} {source}: an image, not an audio file"), line
        assert "written over" not in line
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_an_output_named_as_its_input_is_still_refused(formats, checkpoint, tmp_path):
    wav = tmp_path / "voice.wav"
    wav.write_bytes((formats / "speech-wav.wav").read_bytes())
    result = infer(str(wav), "-o", str(wav), "--checkpoint", str(checkpoint))
    assert result.returncode == 2
    assert f"{wav} is the input file {wav}; it is never written over" in result.stderr
    assert wav.read_bytes() == (formats / "speech-wav.wav").read_bytes()


def test_help_gives_the_portrait_size_as_the_models_own():
    result = infer("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "its decoder's image_size (224x224 for the paper's)" in text
    assert "draws 224x224" not in text
