"""``s2f-train task=attributes`` end to end through the real command, and the
``classifier`` attribute backend on what it trained."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speech2face.attributes import AttributeBackend, AttributeBackendError, build_backend
from speech2face.attributes.classifier import ClassifierBackend
from speech2face.config import config_dir
from speech2face.metrics.attributes import ETHNICITIES, GENDERS
from speech2face.training import read_training_checkpoint
from tests.attributes.faces import write_utkface
from tests.data.conftest import run_s2f
from tests.training.conftest import run_args

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shard_run(preprocessed, tmp_path_factory):
    """4 steps on the synthetic corpus's shards (labels: gender, age), then 2 more resumed."""
    out = tmp_path_factory.mktemp("attributes") / "run"
    first = run_s2f("train", *run_args(preprocessed, out, "attributes"))
    assert first.returncode == 0, first.stderr[-3000:]
    assert "no labels for ethnicity" in first.stderr
    step4 = read_training_checkpoint(out / "checkpoints" / "last.pt")
    resumed = run_s2f(
        "train",
        *run_args(
            preprocessed, out, "attributes", "trainer.max_steps=6", "resume_changes=continue"
        ),
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from step 4" in resumed.stderr
    return out, step4


def test_shard_run_checkpoints_logs_and_resumes(shard_run):
    out, step4 = shard_run
    payload = read_training_checkpoint(out / "checkpoints" / "last.pt")
    assert payload["kind"] == "attribute_classifier" and payload["training"]["step"] == 6
    assert step4["training"]["step"] == 4
    assert payload["bundle"]["attributes"] == ["gender", "age"]
    assert set(payload["bundle"]["label_counts"]["gender"]) == set(GENDERS)
    assert payload["state_dict"]["trained"].tolist() == [True, True, False]
    changed = [
        name
        for name, value in payload["state_dict"].items()
        if value.is_floating_point() and not torch.equal(value, step4["state_dict"][name])
    ]
    assert changed  # the resumed steps trained
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"loss/gender", "loss/age", "loss/total", "val/loss/total"} <= scalars
    assert {"val/gender_accuracy", "val/gender_majority", "val/age_accuracy"} <= scalars
    assert "val/ethnicity_accuracy" not in scalars


def test_backend_on_the_trained_checkpoint(shard_run):
    out, _ = shard_run
    from omegaconf import OmegaConf

    node = OmegaConf.load(config_dir() / "attributes" / "classifier.yaml")
    node.checkpoint = str(out / "checkpoints" / "last.pt")
    backend = build_backend(node)
    assert isinstance(backend, ClassifierBackend) and isinstance(backend, AttributeBackend)
    assert backend.name == "classifier" and backend.attributes == ("gender", "age")
    assert set(backend.missing) == {"ethnicity"}
    assert "without ethnicity labels" in backend.missing["ethnicity"]
    assert "step 6" in backend.description
    images = torch.randint(0, 256, (5, 3, 224, 224), dtype=torch.uint8)
    labels = backend.predict(images)
    assert len(labels) == 5
    for row in labels:
        assert set(row) == {"gender", "age"} and row["gender"] in GENDERS
        assert isinstance(row["age"], float) and row["age"] % 10 == 5.0
    small = ClassifierBackend(str(out / "checkpoints" / "last.pt"), batch_size=2)
    assert small.predict(images) == labels  # batching changes nothing


def test_backend_on_a_real_photo(shard_run):
    from skimage.data import astronaut

    out, _ = shard_run
    backend = ClassifierBackend(str(out / "checkpoints" / "best.pt"))
    photo = torch.from_numpy(np.ascontiguousarray(astronaut())).permute(2, 0, 1)  # (3, 512, 512)
    face = photo[:, 20:260, 130:370]  # her face, with margin
    labels = backend.predict(face[None]) + backend.predict(photo[None])  # any size
    assert len(labels) == 2
    assert all(row["gender"] in GENDERS and 0 < row["age"] < 90 for row in labels)


def test_backend_refuses_foreign_or_missing_checkpoints(decoder_checkpoint, tmp_path):
    with pytest.raises(AttributeBackendError, match="holds a 'face_decoder'") as error:
        ClassifierBackend(str(decoder_checkpoint))
    assert "\n" not in str(error.value)
    with pytest.raises(AttributeBackendError, match="not found"):
        ClassifierBackend(str(tmp_path / "absent.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(AttributeBackendError, match="junk.pt"):
        ClassifierBackend(str(tmp_path / "junk.pt"))


def test_portraits_of_a_decoder_are_mixed_in(preprocessed, decoder_checkpoint, tmp_path):
    out = tmp_path / "run"
    extra = (f"decoder_checkpoint={decoder_checkpoint}", "portrait_share=0.5")
    result = run_s2f("train", *run_args(preprocessed, out, "attributes", *extra))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "portraits of the training faces from decoder_checkpoint" in result.stderr
    payload = read_training_checkpoint(out / "checkpoints" / "last.pt")
    assert payload["bundle"]["portrait_share"] == 0.5

    write_utkface(tmp_path / "utk", 40, seed=2)
    result = run_s2f(
        "train", "task=attributes", "faces=utkface", f"faces.root={tmp_path}/utk",
        "debug=cpu", f"output_dir={tmp_path}/faces", *extra,
    )  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "use data.root" in lines[0], lines


def test_attribute_task_needs_labelled_faces(tmp_path):
    result = run_s2f("train", "task=attributes", "debug=cpu", f"output_dir={tmp_path}/run")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "needs labelled faces" in lines[0]


def test_gender_is_learnt_on_held_out_people(tmp_path):
    """Rendered people (one face each) in the UTKFace layout; 30% held out by file name.
    The classifier must label held-out people's gender well above the majority class."""
    people = write_utkface(tmp_path / "utk", 800, seed=1)
    out = tmp_path / "run"
    result = run_s2f(
        "train", "task=attributes", "faces=utkface", f"faces.root={tmp_path}/utk",
        "faces.val_fraction=0.3", "debug=cpu", f"output_dir={out}", "optim=adamw_cosine",
        "optim.optimizer.lr=2e-3", "trainer.max_steps=300", "trainer.batch_size=32",
        "trainer.val_every=300", "trainer.ckpt_every=300", "trainer.val_batches=null",
        "trainer.log_every=50", "trainer.progress=false",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    backend = ClassifierBackend(str(out / "checkpoints" / "last.pt"))
    assert backend.attributes == ("gender", "age", "ethnicity") and not backend.missing

    from speech2face.data.labelled_faces import UTKFace, collate_faces

    val = UTKFace(f"{tmp_path}/utk", val_fraction=0.3, split="val", train=False, image_size=64)
    batch = collate_faces(list(val))
    truth = [row["gender"] for row in batch["labels"]]
    predicted = [row["gender"] for row in backend.predict(batch["image"])]
    accuracy = float(np.mean([p == t for p, t in zip(predicted, truth, strict=True)]))
    train_genders = [p.gender for p in people]
    majority = max(set(train_genders), key=train_genders.count)
    baseline = float(np.mean([t == majority for t in truth]))
    print(f"held-out gender accuracy {accuracy:.3f}, majority {baseline:.3f}, n={len(truth)}")
    assert len(truth) >= 150
    assert accuracy >= baseline + 0.15, (accuracy, baseline)
    assert all(row["ethnicity"] in ETHNICITIES for row in backend.predict(batch["image"][:4]))
    summary = result.stderr.strip().splitlines()[-1]
    assert "val/gender_accuracy" in summary and "val/gender_majority" in summary
