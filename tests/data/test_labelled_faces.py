"""The labelled face sets for the attribute classifier: FairFace's CSV layout, UTKFace's
file names, their held-out splits, and one-line errors for bad rows and names."""

from __future__ import annotations

import csv

import pytest

from speech2face.data.labelled_faces import (
    FairFace,
    LabelledFaceError,
    UTKFace,
    held_out,
    read_fairface,
    read_utkface,
)
from tests.attributes.faces import write_fairface, write_utkface
from tests.data.conftest import run_s2f


def rewrite(path, rows):
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([["file", "age", "gender", "race"], *rows])


def test_fairface_labels_map_to_the_evaluation_vocabularies(tmp_path):
    path = write_fairface(tmp_path, 4)
    image = "train/0_0.jpg"
    rows = [
        [image, "0-2", "Male", "East Asian"],
        [image, "3-9", "Female", "Southeast Asian"],
        [image, "30-39", "Female", "Latino_Hispanic"],
        [image, "more than 70", "Male", "Middle Eastern"],
        [image, "60-69", "Male", "Indian"],
        [image, "20-29", "Female", "Black"],
        [image, "", "", "White"],  # empty cells: labels left out
    ]
    rewrite(path, rows)
    faces = read_fairface(path)
    assert [f.labels for f in faces] == [
        {"age": 1.0, "gender": "male", "ethnicity": "asian"},
        {"age": 6.0, "gender": "female", "ethnicity": "asian"},
        {"age": 34.5, "gender": "female", "ethnicity": "other"},
        {"age": 75.0, "gender": "male", "ethnicity": "other"},
        {"age": 64.5, "gender": "male", "ethnicity": "indian"},
        {"age": 24.5, "gender": "female", "ethnicity": "black"},
        {"ethnicity": "white"},
    ]
    assert faces[0].path == tmp_path / "train" / "0_0.jpg" and faces[0].key == image


@pytest.mark.parametrize(
    "row, message",
    [
        (["/etc/passwd", "20-29", "Male", "White"], "is absolute"),
        (["../outside.jpg", "20-29", "Male", "White"], "leaves the CSV's directory"),
        (["train/../../x.jpg", "20-29", "Male", "White"], "leaves the CSV's directory"),
        (["C:\\faces\\a.jpg", "20-29", "Male", "White"], "is absolute"),
        (["train/0_0.jpg", "20-29", "Male", "Martian"], "race 'Martian'"),
        (["train/0_0.jpg", "20-29", "Robot", "White"], "gender 'Robot'"),
        (["train/0_0.jpg", "twenty", "Male", "White"], "age 'twenty'"),
        (["train/missing.jpg", "20-29", "Male", "White"], "not found"),
    ],
)
def test_fairface_bad_rows_are_one_line_errors_naming_the_row(tmp_path, row, message):
    path = write_fairface(tmp_path, 2)
    rewrite(path, [["train/0_1.jpg", "20-29", "Male", "White"], row])
    with pytest.raises(LabelledFaceError, match=f"line 3: .*{message}") as error:
        read_fairface(path)
    assert "\n" not in str(error.value)


def test_fairface_symbolic_link_out_of_the_root_is_refused(tmp_path):
    path = write_fairface(tmp_path / "set", 2)
    (tmp_path / "outside.jpg").write_bytes((tmp_path / "set/train/0_0.jpg").read_bytes())
    (tmp_path / "set/train/link.jpg").symlink_to(tmp_path / "outside.jpg")
    rewrite(path, [["train/link.jpg", "20-29", "Male", "White"]])
    with pytest.raises(LabelledFaceError, match="line 2: .*outside the CSV's directory"):
        read_fairface(path)


def test_fairface_missing_file_or_columns(tmp_path):
    with pytest.raises(LabelledFaceError, match="not found"):
        read_fairface(tmp_path / "nope.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("file,age\na.jpg,20-29\n")
    with pytest.raises(LabelledFaceError, match="missing gender, race"):
        read_fairface(bad)


def test_fairface_splits_by_fraction_or_by_val_csv(tmp_path):
    train_csv = write_fairface(tmp_path, 40, seed=0, name="train.csv")
    val_csv = write_fairface(tmp_path, 5, seed=1, name="val.csv")
    train = FairFace(str(train_csv), val_fraction=0.25, split="train", image_size=32)
    val = FairFace(str(train_csv), val_fraction=0.25, split="val", image_size=32)
    keys = {f.key for f in train.faces}, {f.key for f in val.faces}
    assert not keys[0] & keys[1] and len(keys[0] | keys[1]) == 40 and 3 <= len(keys[1]) <= 20
    assert all(held_out(key, 0.25) for key in keys[1])
    again = FairFace(str(train_csv), val_fraction=0.25, split="val", image_size=32)
    assert [f.key for f in again.faces] == [f.key for f in val.faces]  # deterministic
    given = FairFace(str(train_csv), val_csv=str(val_csv), split="val", train=False)
    assert given.num_samples == 5
    assert FairFace(str(train_csv), val_csv=str(val_csv), split="train").num_samples == 40
    item = next(iter(given))
    assert item["image"].shape == (3, 224, 224) and set(item["labels"]) == {
        "age", "gender", "ethnicity",
    }  # fmt: skip


def test_training_order_is_seeded_per_epoch_and_equal_per_rank(tmp_path):
    path = write_fairface(tmp_path, 11)
    full = FairFace(str(path), val_csv=str(path), train=True, image_size=16, rank=0, world_size=1)
    ranks = [
        FairFace(str(path), val_csv=str(path), train=True, image_size=16, rank=r, world_size=2)
        for r in (0, 1)
    ]
    keys = [[item["key"] for item in dataset] for dataset in ranks]
    assert len(keys[0]) == len(keys[1]) == 5 and not set(keys[0]) & set(keys[1])
    first = [item["key"] for item in full]
    assert sorted(first) == sorted(f.key for f in full.faces)
    full.set_epoch(1)
    second = [item["key"] for item in full]
    assert second != first and sorted(second) == sorted(first)
    full.set_epoch(0)
    assert [item["key"] for item in full] == first


def test_utkface_names_give_labels_and_bad_names_are_counted(tmp_path):
    people = write_utkface(tmp_path / "utk", 6)
    for name in ("39_1_20170116174525125.jpg.chip.jpg", "face.jpg", "300_0_0_2017.jpg"):
        (tmp_path / "utk" / name).write_bytes(b"")  # no race, no labels, no age
    (tmp_path / "utk" / "notes.txt").write_text("not an image")
    faces, skipped = read_utkface(tmp_path / "utk")
    assert skipped == 3 and len(faces) == 6
    by_age = sorted((f.labels["age"], f.labels["gender"]) for f in faces)
    assert by_age == sorted((float(p.age), p.gender) for p in people)
    assert {f.labels["ethnicity"] for f in faces} <= {"white", "black", "asian"}
    dataset = UTKFace(str(tmp_path / "utk"), val_fraction=0.5, split="train", image_size=48)
    assert dataset.skipped == 3
    assert next(iter(dataset))["image"].shape == (3, 48, 48)


def test_utkface_without_labelled_images_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "photo.jpg").write_bytes(b"")
    with pytest.raises(LabelledFaceError, match=r"no labelled UTKFace images .*1 files skipped"):
        UTKFace(str(tmp_path / "empty"))
    with pytest.raises(LabelledFaceError, match="not found"):
        UTKFace(str(tmp_path / "absent"))


def test_train_cli_reports_a_bad_face_set_in_one_line(tmp_path):
    path = write_fairface(tmp_path, 3)
    rewrite(path, [["../escape.jpg", "20-29", "Male", "White"]])
    result = run_s2f(
        "train", "task=attributes", "faces=fairface", f"faces.csv={path}", "debug=cpu",
        f"output_dir={tmp_path}/run",
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "line 2" in lines[0] and "leaves the CSV's directory" in lines[0]
    assert not (tmp_path / "run").exists()
