"""Face images labelled with gender, age and ethnicity, for training the attribute classifier.

Three sources, each a dataset of ``{"image", "labels", "key"}`` items (``image``
``(3, S, S)`` uint8 RGB at the classifier's input size; ``labels`` a dict holding any of
``gender`` (``GENDERS``), ``age`` (years, float) and ``ethnicity`` (``ETHNICITIES``)):

- :class:`FairFace`: a FairFace label CSV (``file,age,gender,race,...``) with image paths
  relative to the CSV's directory. Ages are ranges ("0-2", "3-9", "10-19", ...,
  "60-69", "more than 70"), read as their middle year (75 for "more than 70"); races map
  to ``ETHNICITIES`` (:data:`FAIRFACE_RACES`). FairFace ships a train and a val CSV: give
  the val CSV as ``val_csv``, else ``val_fraction`` of the train CSV is held out.
- :class:`UTKFace`: a directory of ``[age]_[gender]_[race]_[date&time].jpg`` files (the
  aligned & cropped set adds ``.chip.jpg``); gender 0 male / 1 female, race 0 White,
  1 Black, 2 Asian, 3 Indian, 4 Others. Other names are skipped and counted.
- :class:`ShardFaces`: preprocessed shards' aligned crops with their ``meta["labels"]``
  (``s2f-preprocess`` with a labels file); val is the shards' speaker-disjoint val split.

The held-out part of FairFace and UTKFace is chosen per file by a hash of its path
(:func:`held_out`): deterministic, and stable when files are added or removed.

Datasets are iterable like :class:`~speech2face.data.ShardDataset`: with ``train=True``
every epoch is shuffled with its seed (:meth:`LabelledFaces.set_epoch`) and each DDP rank
reads the same number of faces; with ``train=False`` every face is read once, in order.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from speech2face.data.dataset import resolve_ranks
from speech2face.errors import S2FError
from speech2face.metrics.attributes import ETHNICITIES, GENDERS

__all__ = [
    "FAIRFACE_RACES",
    "FACE_SIZE",
    "UTK_RACES",
    "FairFace",
    "LabelledFace",
    "LabelledFaceError",
    "LabelledFaces",
    "ShardFaces",
    "UTKFace",
    "build_face_loader",
    "check_labels",
    "collate_faces",
    "held_out",
    "read_fairface",
    "read_utkface",
    "shard_labels",
]

FACE_SIZE = 224  # crop side when no size is asked for (the shards' aligned crops)
SPLITS = ("train", "val")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
FAIRFACE_COLUMNS = ("file", "age", "gender", "race")
FAIRFACE_GENDERS = {"male": "male", "female": "female"}
FAIRFACE_RACES = {
    "white": "white",
    "black": "black",
    "east asian": "asian",
    "southeast asian": "asian",
    "indian": "indian",
    "latino_hispanic": "other",
    "middle eastern": "other",
}
FAIRFACE_OLDEST = 75.0  # "more than 70": the middle of the 70s bin
_FAIRFACE_RANGE = re.compile(r"(\d+)\s*-\s*(\d+)")
_FAIRFACE_OVER = re.compile(r"more than (\d+)")
UTK_GENDERS = ("male", "female")  # 0, 1
UTK_RACES = ("white", "black", "asian", "indian", "other")  # 0 ... 4
# 25_1_3_20170104231305129.jpg, or the aligned set's 25_1_3_20170104231305129.jpg.chip.jpg
_UTK_NAME = re.compile(r"(\d{1,3})_([01])_([0-4])_(\d+)(?:\.jpg)?(?:\.chip)?\.(?:jpg|jpeg|png)")
MAX_AGE = 130  # a larger number in a UTKFace name is not an age


class LabelledFaceError(S2FError, ValueError):
    """A labelled face set that cannot be read: missing, malformed, unsafe, empty."""


@dataclass(frozen=True)
class LabelledFace:
    """One labelled image: its file, its labels, and its key (its path within the set)."""

    path: Path
    key: str
    labels: dict[str, Any] = field(default_factory=dict)


def held_out(key: str, fraction: float, seed: int = 0) -> bool:
    """Whether the face ``key`` falls in the held-out ``fraction`` (a hash of the key)."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


# --------------------------------------------------------------------------- FairFace


def _fairface_age(text: str) -> float:
    text = text.strip().lower()
    match = _FAIRFACE_RANGE.fullmatch(text)
    if match:
        low, high = int(match.group(1)), int(match.group(2))
        if low <= high:
            return (low + high) / 2
    elif _FAIRFACE_OVER.fullmatch(text):
        return FAIRFACE_OLDEST
    raise ValueError(f"age {text!r} is not a range like '20-29' or 'more than 70'")


def _safe_relative(root: Path, name: str) -> Path:
    """``root / name`` for a relative path that stays under ``root``, else ``ValueError``."""
    if not name or "\x00" in name:
        raise ValueError("an empty file name")
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute() or name[:1] == "~":
        raise ValueError(f"file {name!r} is absolute: paths must be relative to the CSV")
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if ".." in parts or PureWindowsPath(name).drive:
        raise ValueError(f"file {name!r} leaves the CSV's directory")
    path = root.joinpath(*parts)
    resolved, base = path.resolve(), root.resolve()
    if resolved != base and base not in resolved.parents:  # through a symbolic link
        raise ValueError(f"file {name!r} leads outside the CSV's directory")
    return path


def read_fairface(csv_path: str | os.PathLike) -> list[LabelledFace]:
    """The faces a FairFace label CSV lists, with their labels.

    Columns ``file,age,gender,race`` are required (others, like ``service_test``, are
    ignored); an empty age, gender or race cell leaves that label out. Any bad row (unsafe
    path, unknown value, missing image) is a :class:`LabelledFaceError` naming the row.
    """
    path = Path(csv_path)
    if not path.is_file():
        raise LabelledFaceError(f"FairFace label CSV not found: {path}")
    root = path.parent
    faces = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip().lower() for c in reader.fieldnames or []]
            missing = [c for c in FAIRFACE_COLUMNS if c not in columns]
            if missing:
                raise LabelledFaceError(
                    f"{path}: a FairFace label CSV needs columns {','.join(FAIRFACE_COLUMNS)} "
                    f"(missing {', '.join(missing)})"
                )
            for line, row in enumerate(reader, start=2):
                row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
                try:
                    faces.append(_fairface_row(root, row))
                except ValueError as error:
                    raise LabelledFaceError(f"{path}, line {line}: {error}") from None
    except UnicodeDecodeError:
        raise LabelledFaceError(f"{path} is not a UTF-8 CSV file") from None
    except csv.Error as error:
        raise LabelledFaceError(f"{path}: not a readable CSV ({error})") from None
    if not faces:
        raise LabelledFaceError(f"{path} lists no faces")
    return faces


def _fairface_row(root: Path, row: dict[str, str]) -> LabelledFace:
    image = _safe_relative(root, row["file"])
    labels: dict[str, Any] = {}
    if row["age"]:
        labels["age"] = _fairface_age(row["age"])
    if row["gender"]:
        gender = FAIRFACE_GENDERS.get(row["gender"].lower())
        if gender is None:
            raise ValueError(f"gender {row['gender']!r} is not Male or Female")
        labels["gender"] = gender
    if row["race"]:
        race = FAIRFACE_RACES.get(row["race"].lower().replace("-", "_"))
        if race is None:
            known = ", ".join(sorted(FAIRFACE_RACES))
            raise ValueError(f"race {row['race']!r} is not a FairFace race ({known})")
        labels["ethnicity"] = race
    if not image.is_file():
        raise ValueError(f"image {row['file']!r} not found under {root}")
    return LabelledFace(image, PurePosixPath(row["file"].replace("\\", "/")).as_posix(), labels)


# --------------------------------------------------------------------------- UTKFace


def read_utkface(root: str | os.PathLike) -> tuple[list[LabelledFace], int]:
    """The faces of a UTKFace directory (searched recursively) and how many image files
    were skipped for a name not of the form ``[age]_[gender]_[race]_[date&time].jpg``."""
    directory = Path(root)
    if not directory.is_dir():
        raise LabelledFaceError(f"UTKFace directory not found: {directory}")
    faces, skipped = [], 0
    for path in sorted(directory.rglob("*")):
        if not path.is_file() or not path.name.lower().endswith(IMAGE_SUFFIXES):
            continue
        match = _UTK_NAME.fullmatch(path.name)
        if match is None or int(match.group(1)) > MAX_AGE:
            skipped += 1
            continue
        labels = {
            "age": float(match.group(1)),
            "gender": UTK_GENDERS[int(match.group(2))],
            "ethnicity": UTK_RACES[int(match.group(3))],
        }
        faces.append(LabelledFace(path, path.relative_to(directory).as_posix(), labels))
    return faces, skipped


# --------------------------------------------------------------------------- datasets


def _read_image(path: Path, size: int) -> torch.Tensor:
    """An image file as ``(3, size, size)`` uint8 RGB (squashed to a square if it is not)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when it can
            image = image.convert("RGB")
            if image.size != (size, size):
                image = image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
            array = np.asarray(image)
    except (OSError, UnidentifiedImageError) as error:
        raise LabelledFaceError(f"cannot read image {path}: {error}") from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


class LabelledFaces(IterableDataset):
    """Labelled face files as a dataset of ``{"image", "labels", "key"}`` items.

    Args:
        faces: the split's faces.
        train: shuffle each epoch (seeded by ``seed`` and the epoch) and give every rank the
            same number of faces (``floor(n / world)``); ``False``: each face once, in order.
        image_size: side of the yielded crops.
        seed, rank, world_size: as for :class:`~speech2face.data.ShardDataset`.
    """

    def __init__(
        self,
        faces: Sequence[LabelledFace],
        train: bool = True,
        image_size: int = FACE_SIZE,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        super().__init__()
        self.faces = list(faces)
        self.train = bool(train)
        self.image_size = int(image_size)
        self.seed = int(seed)
        self.epoch = 0
        self._rank, self._world_size = rank, world_size

    @property
    def num_samples(self) -> int:
        return len(self.faces)

    def labels(self) -> Iterator[dict[str, Any]]:
        """Every face's labels, without reading images."""
        return (face.labels for face in self.faces)

    def set_epoch(self, epoch: int) -> None:
        """Read ``epoch``'s order in the next pass (loader workers are started per pass)."""
        self.epoch = int(epoch)

    def _indices(self) -> list[int]:
        rank, world = resolve_ranks(self._rank, self._world_size)
        order = list(range(len(self.faces)))
        if self.train:
            random.Random(self.seed * 1_000_003 + self.epoch).shuffle(order)
            per_rank = len(order) // world
            order = order[rank * per_rank : (rank + 1) * per_rank]
        else:
            order = order[rank::world]
        info = get_worker_info()
        if info is not None:
            order = order[info.id :: info.num_workers]
        return order

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for index in self._indices():
            face = self.faces[index]
            yield {
                "image": _read_image(face.path, self.image_size),  # (3, S, S) uint8
                "labels": dict(face.labels),
                "key": face.key,
            }


def _fraction(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise LabelledFaceError(f"{name} must be a number between 0 and 1, got {value!r}")
    return float(value)


def _split(faces: list[LabelledFace], split: str, fraction: float, seed: int, where: object):
    if split not in SPLITS:
        raise LabelledFaceError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    chosen = [face for face in faces if held_out(face.key, fraction, seed) == (split == "val")]
    if not chosen:
        raise LabelledFaceError(
            f"the {split} split of {where} is empty ({len(faces)} faces, val_fraction={fraction})"
        )
    return chosen


class FairFace(LabelledFaces):
    """A FairFace label CSV's faces (see :func:`read_fairface`).

    Args:
        csv: the label CSV (``fairface_label_train.csv``); image paths relative to its folder.
        val_csv: FairFace's val CSV (``fairface_label_val.csv``) for ``split="val"``;
            ``None``: hold out ``val_fraction`` of ``csv``'s faces instead.
        val_fraction: the held-out share when there is no ``val_csv``.
        split: ``train`` or ``val``.
    """

    def __init__(
        self,
        csv: str,
        val_csv: str | None = None,
        val_fraction: float = 0.1,
        split: str = "train",
        train: bool = True,
        image_size: int = FACE_SIZE,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        fraction = _fraction(val_fraction, "faces.val_fraction")
        if split not in SPLITS:
            raise LabelledFaceError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        if val_csv:
            faces = read_fairface(val_csv if split == "val" else csv)
        else:
            faces = _split(read_fairface(csv), split, fraction, seed, csv)
        super().__init__(faces, train, image_size, seed, rank, world_size)


class UTKFace(LabelledFaces):
    """A UTKFace directory's faces (see :func:`read_utkface`), ``val_fraction`` held out.

    ``skipped`` counts the image files whose names are not UTKFace labels.
    """

    def __init__(
        self,
        root: str,
        val_fraction: float = 0.1,
        split: str = "train",
        train: bool = True,
        image_size: int = FACE_SIZE,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        fraction = _fraction(val_fraction, "faces.val_fraction")
        faces, self.skipped = read_utkface(root)
        if not faces:
            raise LabelledFaceError(
                f"no labelled UTKFace images in {root} ({self.skipped} files skipped: names "
                "must be [age]_[gender]_[race]_[date&time].jpg)"
            )
        faces = _split(faces, split, fraction, seed, root)
        super().__init__(faces, train, image_size, seed, rank, world_size)


def shard_labels(meta: dict[str, Any]) -> dict[str, Any]:
    """The attribute labels of a shard sample's ``meta`` (gender, age, ethnicity)."""
    labels = meta.get("labels") or {}
    out: dict[str, Any] = {}
    for name in ("gender", "age", "ethnicity"):
        value = labels.get(name)
        if value is None or value == "":
            continue
        if name == "age":
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise LabelledFaceError(
                    f"sample {meta.get('key', '?')}: age {value!r} is not a number of years"
                ) from None
        else:
            value = str(value).strip().lower()
        out[name] = value
    return out


class ShardFaces(IterableDataset):
    """The aligned crops and labels of a :class:`~speech2face.data.ShardDataset` (built with
    ``with_image=True``), as ``{"image", "labels", "key"}`` items at ``image_size``."""

    def __init__(self, shards: Any, image_size: int = FACE_SIZE) -> None:
        super().__init__()
        self.shards = shards
        self.image_size = int(image_size)

    @property
    def train(self) -> bool:
        return self.shards.train

    @property
    def num_samples(self) -> int | None:
        return self.shards.num_samples

    def set_epoch(self, epoch: int) -> None:
        self.shards.set_epoch(epoch)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        import torch.nn.functional as F

        for sample in self.shards:
            image = sample["image"]  # (3, 224, 224) uint8
            if image.shape[-1] != self.image_size:
                image = (
                    F.interpolate(image[None].float(), size=(self.image_size,) * 2, mode="area")[0]
                    .round_()
                    .clamp_(0, 255)
                    .to(torch.uint8)
                )
            yield {"image": image, "labels": shard_labels(sample["meta"]), "key": sample["key"]}


def collate_faces(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A batch: ``image`` ``(B, 3, S, S)`` uint8, ``labels`` and ``key`` lists."""
    if not samples:
        raise ValueError("cannot collate an empty batch")
    return {
        "image": torch.stack([s["image"] for s in samples]),
        "labels": [s["labels"] for s in samples],
        "key": [s["key"] for s in samples],
    }


def build_face_loader(
    dataset: IterableDataset, batch_size: int, num_workers: int = 2, pin_memory: bool = False
) -> DataLoader:
    """A DataLoader of :func:`collate_faces` batches (the last partial batch dropped when
    training). Workers start afresh each pass, so they read the epoch last set."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_faces,
        drop_last=bool(getattr(dataset, "train", False)),
        pin_memory=pin_memory,
    )


def check_labels(labels: dict[str, Any], key: str) -> None:
    """A one-line :class:`LabelledFaceError` for a label outside the vocabularies."""
    gender, ethnicity, age = labels.get("gender"), labels.get("ethnicity"), labels.get("age")
    if gender is not None and gender not in GENDERS:
        raise LabelledFaceError(f"{key}: gender {gender!r} is not one of {', '.join(GENDERS)}")
    if ethnicity is not None and ethnicity not in ETHNICITIES:
        raise LabelledFaceError(
            f"{key}: ethnicity {ethnicity!r} is not one of {', '.join(ETHNICITIES)}"
        )
    if age is not None and (not math.isfinite(float(age)) or float(age) < 0):
        raise LabelledFaceError(f"{key}: age {age!r} is not a number of years")
