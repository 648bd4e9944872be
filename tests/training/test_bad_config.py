"""Bad configurations are refused in one line, before any training."""

from __future__ import annotations

import shutil

import pytest
import torch

from speech2face.config import compose
from speech2face.errors import S2FError
from speech2face.training import Trainer
from tests.data.conftest import DAMAGED_MEMBERS, damaged_copy, names_a_damaged_sample, run_s2f
from tests.training.conftest import run_args


def refused(overrides: list[str]) -> str:
    with pytest.raises(S2FError) as caught:
        Trainer(compose("train", overrides))
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_missing_shards(tmp_path):
    message = refused(run_args(tmp_path / "nowhere", tmp_path / "run", "decoder"))
    assert "no shards found" in message
    assert not (tmp_path / "run").exists()


def test_empty_train_split(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "shards.json").write_text('{"train": [], "val": []}')
    assert "no shards found" in refused(run_args(tmp_path / "out", tmp_path / "run", "decoder"))


def test_feature_width_of_shards(preprocessed, tmp_path):
    overrides = run_args(preprocessed, tmp_path / "run", "decoder", "face_encoder=facenet")
    message = refused(overrides)
    assert "128-D features" in message and "512-D" in message


def test_decoder_checkpoint_of_another_width(preprocessed, tmp_path):
    from speech2face.models import FaceDecoder, save_checkpoint

    other = save_checkpoint(FaceDecoder(feature_dim=64, texture_channels=8, min_channels=8),
                            tmp_path / "dec64.pt")  # fmt: skip
    message = refused(
        run_args(preprocessed, tmp_path / "run", "voice", f"decoder_checkpoint={other}")
    )
    assert "64-D features" in message


def test_decoder_checkpoint_not_ours(preprocessed, tmp_path):
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    message = refused(
        run_args(preprocessed, tmp_path / "run", "voice", f"decoder_checkpoint={foreign}")
    )
    assert "not a speech2face model checkpoint" in message


def test_missing_decoder_checkpoint_through_the_command(preprocessed, tmp_path):
    result = run_s2f("train", *run_args(preprocessed, tmp_path / "run", "voice"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "decoder_checkpoint" in lines[0], result.stderr


def test_empty_val_split_is_said_once(preprocessed, decoder_checkpoint, tmp_path):
    data = tmp_path / "out"
    shutil.copytree(preprocessed, data)
    index = (data / "shards.json").read_text()
    (data / "shards.json").write_text(index.replace('"val"', '"unused"'))
    result = run_s2f("train", *run_args(data, tmp_path / "run", "voice",
                                        f"decoder_checkpoint={decoder_checkpoint}",
                                        "trainer.max_steps=2"))  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("no val split") == 1
    assert (tmp_path / "run" / "checkpoints" / "best.pt").is_file()


def test_batch_too_large_for_the_device_names_the_settings(preprocessed, tmp_path):
    """No GPU here: the device's out-of-memory error is raised by the step itself."""
    trainer = Trainer(compose("train", run_args(preprocessed, tmp_path / "run", "decoder")))

    def step(model, batch):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    trainer.task.step = step
    with pytest.raises(S2FError) as caught:
        trainer.fit()
    message = str(caught.value)
    assert "\n" not in message and "trainer.batch_size" in message
    assert "model.decoder.image_size" in message
    assert not (tmp_path / "run" / "checkpoints" / "last.pt").exists()


def test_voice_loss_setting_its_target_does_not_take(preprocessed, decoder_checkpoint, tmp_path):
    overrides = run_args(preprocessed, tmp_path / "run", "voice",
                         f"decoder_checkpoint={decoder_checkpoint}",
                         "loss@loss.voice=centred_cosine", "+loss.voice.lambda1=0.1")  # fmt: skip
    message = refused(overrides)
    assert message.startswith("loss.voice:") and "lambda1" in message


@pytest.mark.parametrize("name", ["no-json", "bad-json", "not-wav", "bad-npy"])
def test_damaged_samples_stop_training_in_one_line(preprocessed, decoder_checkpoint, tmp_path,
                                                   name):  # fmt: skip
    """A damaged sample is not skipped (preprocessing writes only samples it read back, so
    one that does not decode means a damaged shard): one line naming the shard and the key,
    before any checkpoint or log is written."""
    ext, payload, says = DAMAGED_MEMBERS[name]
    first = damaged_copy(preprocessed, tmp_path / "data", ext, payload)
    run = tmp_path / "run"
    result = run_s2f("train", *run_args(tmp_path / "data", run, "voice",
                                        f"decoder_checkpoint={decoder_checkpoint}"))  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    (line,) = result.stderr.strip().splitlines()
    assert names_a_damaged_sample(line, first) and says in line, line
    assert not (run / "checkpoints").exists() and not (run / "config.yaml").exists()


@pytest.mark.parametrize("value", ["400000000", "-48000", "six_seconds"])
def test_voice_window_out_of_range(preprocessed, decoder_checkpoint, tmp_path, value):
    """The window every voice checkpoint is later checked against: never trained outside it."""
    message = refused(run_args(preprocessed, tmp_path / "run", "voice",
                               f"decoder_checkpoint={decoder_checkpoint}",
                               f"data.clip_samples={value}"))  # fmt: skip
    assert message.startswith("data.clip_samples must be a whole number from 16,000 to 480,000")
    assert not (tmp_path / "run").exists()
