"""``task=attributes``: train the :class:`~speech2face.models.AttributeClassifier` (gender,
age bins, ethnicity) on labelled faces: a face set (``faces=fairface`` or
``faces=utkface``) or, without one, the shards' crops and labels (``data.root``). A head
is trained only on the faces labelled for it; validation reports each attribute's
accuracy on the held-out split beside the majority class of the training labels."""

from __future__ import annotations

import itertools
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speech2face.config import require_file_name
from speech2face.errors import ConfigError, S2FError
from speech2face.training.checkpoint import build_model, unwrap
from speech2face.training.instantiate import build, choice
from speech2face.training.tasks.base import Run, Task, loss_terms


class AttributeLoss:
    """Weighted cross-entropy of the attribute heads (``loss/<name>``, ``loss/total``).

    Each term is the mean over the faces labelled for that attribute (0 when the batch has
    none); ``total`` sums them with their weights. Age bins (9 classes, often ambiguous) start
    near a cross-entropy of 2.2 against gender's 0.69: weighted less, they do not crowd the
    other heads out of a small shared network.
    """

    def __init__(self, gender: float = 1.0, age: float = 0.3, ethnicity: float = 0.3) -> None:
        self.weights = {"gender": gender, "age": age, "ethnicity": ethnicity}
        for name, weight in self.weights.items():
            if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
                raise ConfigError(f"loss.attributes.{name} must be a weight >= 0, got {weight!r}")

    def __call__(
        self,
        logits: dict[str, Tensor],  # name -> (B, classes)
        targets: dict[str, Tensor],  # name -> (B,) class indices, -1: no label
        heads: tuple[str, ...],
    ) -> dict[str, Tensor]:
        terms: dict[str, Tensor] = {}
        total = None
        for name in heads:
            target = targets[name].to(logits[name].device)
            mask = target >= 0
            if bool(mask.any()):
                terms[name] = F.cross_entropy(logits[name][mask].float(), target[mask])
            else:
                terms[name] = logits[name].float().sum() * 0.0
            weighted = terms[name] * float(self.weights[name])
            total = weighted if total is None else total + weighted
        terms["total"] = total
        return terms


class AttributeTask(Task):
    """Train the attribute classifier on labelled faces (a face set, else the shards)."""

    name = "attributes"
    kind = "attribute_classifier"
    with_image = True
    with_landmarks = False
    require_audio = False
    reads_shards = False  # it checks its own data: a face set or the shards
    decoder_checkpoint = "optional"  # portraits shown beside the faces
    data_name = "face set"
    memory_hint = "model.attributes.image_size"

    def __init__(self, trainer: Run) -> None:
        from omegaconf import OmegaConf

        super().__init__(trainer)
        cfg = trainer.cfg
        self.model: nn.Module = build(cfg.model.attributes)
        self.loss = build(cfg.loss.attributes)
        self.faces = cfg.get("faces")
        if self.faces is not None and self.faces.get("_target_") is None:
            self.faces = None
        data_given = "data" in cfg and not OmegaConf.is_missing(cfg.data, "root")
        if self.faces is not None and data_given:
            raise ConfigError(
                "task=attributes reads either a face set (faces=...) or shards (data.root), "
                "not both: drop one"
            )
        if self.faces is None:
            if not data_given:
                raise ConfigError(
                    "task=attributes needs labelled faces: faces=fairface faces.csv=..., "
                    "faces=utkface faces.root=..., or shards with labels: data.root=..."
                )
            root = require_file_name(cfg.data.root, "data.root", "an s2f-preprocess output")
            self.source = f"shards {root}"
        else:
            self.source = f"faces={choice('faces') or self.faces._target_}"
        self.counts: dict[str, dict[str, int]] = {}
        self.majority: dict[str, int] = {}
        self.portraits: dict[str, Tensor] = {}  # key -> (3, S, S) uint8 (decoder_checkpoint)
        self.portrait_share = float(cfg.get("portrait_share", 0.5))
        if not 0.0 <= self.portrait_share <= 1.0:
            raise ConfigError(f"portrait_share must lie in [0, 1], got {self.portrait_share}")
        self._check_data()

    # ------------------------------------------------------------ data

    def dataset(self, split: str, train: bool, **kwargs: Any):
        """The labelled faces of ``split`` at the classifier's input size."""
        from speech2face.data.labelled_faces import ShardFaces

        size = self.model.config.image_size
        ranks = {} if train else {"rank": 0, "world_size": 1}
        seed = self.trainer.tcfg.seed
        if self.faces is not None:
            return build(self.faces, split=split, train=train, image_size=size, seed=seed, **ranks)
        fields = dict(split=split, train=train, with_image=True, require_audio=False, **ranks)
        fields.update({k: v for k, v in kwargs.items() if k != "with_landmarks"})
        return ShardFaces(build(self.trainer.cfg.data, **fields), image_size=size)

    def loader(self, dataset, batch_size: int, num_workers: int = 0, pin_memory: bool = False):
        from speech2face.data.labelled_faces import build_face_loader

        return build_face_loader(dataset, batch_size, num_workers, pin_memory)

    def _check_data(self) -> None:
        """The training split exists, holds a batch per process, and its first face reads."""
        trainer = self.trainer
        probe = self.dataset("train", train=False)
        if probe.num_samples == 0:
            raise S2FError(f"the train split of {self.source} is empty")
        sample = next(iter(probe), None)
        if sample is None:
            raise S2FError(f"the train split of {self.source} holds no face")
        needed = trainer.tcfg.batch_size * trainer.dist.world_size
        if probe.num_samples is not None and probe.num_samples < needed:
            raise ConfigError(
                f"the train split of {self.source} holds {probe.num_samples} faces, fewer than "
                f"one batch of {trainer.tcfg.batch_size} per process ({trainer.dist.world_size})"
            )

    def prepare(self, resuming: bool) -> None:
        """Count the training labels (up to ``trainer.mean_geometry_samples`` faces of shards;
        a face set's all): the heads to train, and each attribute's majority class."""
        from speech2face.models.attribute_classifier import ATTRIBUTE_CLASSES, label_targets

        trainer = self.trainer
        dataset = self.dataset("train", train=False)
        if hasattr(dataset, "labels"):  # a face set: labels without reading images
            labels = list(dataset.labels())
        else:
            from speech2face.data.labelled_faces import shard_labels

            shards = build(
                trainer.cfg.data, split="train", train=False, require_audio=False,
                rank=0, world_size=1,
            )  # fmt: skip
            labels = []
            for sample in shards:
                labels.append(shard_labels(sample["meta"]))
                if len(labels) >= trainer.tcfg.mean_geometry_samples:
                    break
        try:
            targets = label_targets(labels)
        except S2FError as error:
            raise S2FError(f"{self.source}: {error}") from None
        self.counts, self.majority = {}, {}
        for name, classes in ATTRIBUTE_CLASSES.items():
            known = targets[name][targets[name] >= 0]
            if known.numel() == 0:
                continue
            tally = torch.bincount(known, minlength=len(classes))
            self.counts[name] = {c: int(n) for c, n in zip(classes, tally.tolist(), strict=True)}
            self.majority[name] = int(tally.argmax())
        if not self.counts:
            raise S2FError(
                f"no labelled faces in the train split of {self.source}: gender, age or "
                "ethnicity labels are needed (s2f-preprocess source.labels=... for shards)"
            )
        unwrap(self.model).set_trained(tuple(self.counts))
        untrained = [name for name in ATTRIBUTE_CLASSES if name not in self.counts]
        note = f"; no labels for {', '.join(untrained)}" if untrained else ""
        trainer.log.message(
            f"training heads {', '.join(self.counts)} on {len(labels)} faces ({self.source}){note}"
        )
        if trainer.decoder_entry is not None:
            self._render_portraits()

    @torch.no_grad()
    def _render_portraits(self) -> None:
        """The decoder's portrait of each training face's feature, at the classifier's input
        size, by sample key: ``portrait_share`` of the training faces are shown as these, so
        the classifier also reads portraits (what evaluation gives it)."""
        from speech2face.data import collate

        trainer = self.trainer
        if self.faces is not None:
            raise ConfigError(
                "task=attributes with decoder_checkpoint draws portraits from the shards' face "
                "features: use data.root=... instead of faces=..."
            )
        assert trainer.decoder_entry is not None
        decoder = build_model(trainer.decoder_entry).to(trainer.device).eval()
        size = self.model.config.image_size
        shards = build(
            trainer.cfg.data, split="train", train=False, require_audio=False, rank=0, world_size=1
        )
        batch: list[dict[str, Any]] = []
        for sample in itertools.chain(shards, [None]):
            if sample is not None:
                batch.append(sample)
            if batch and (sample is None or len(batch) == trainer.tcfg.batch_size):
                features = collate(batch)["feature"].to(trainer.device)
                images = F.interpolate(decoder.render(features), size=(size, size), mode="area")
                pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8).cpu()
                self.portraits.update(zip((s["key"] for s in batch), pixels, strict=True))
                batch = []
        trainer.log.message(
            f"{len(self.portraits)} portraits of the training faces from decoder_checkpoint; "
            f"{self.portrait_share:.0%} of the faces shown as portraits"
        )

    # ------------------------------------------------------------ steps

    def _images(self, model: nn.Module, batch: dict[str, Any], augment: bool) -> Tensor:
        pixels = batch["image"]  # (B, 3, S, S) uint8
        if augment and self.portraits:  # some faces as the decoder draws them
            shown = (torch.rand(pixels.shape[0]) < self.portrait_share).tolist()
            pixels = pixels.clone()
            for i, key in enumerate(batch["key"]):
                if shown[i] and key in self.portraits:
                    pixels[i] = self.portraits[key]
        images = unwrap(model).prepare(pixels.to(self.trainer.device, non_blocking=True))
        if augment:  # mirror half the faces (the global RNG: a resumed run draws the same)
            flip = torch.rand(images.shape[0]) < 0.5
            images[flip.to(images.device)] = images[flip.to(images.device)].flip(-1)
        return images  # (B, 3, S, S) in [0, 1]

    def _losses(self, logits: dict[str, Tensor], targets: dict[str, Tensor]):
        terms = self.loss(logits, targets, tuple(self.counts))
        idle = [value for name, value in logits.items() if name not in self.counts]
        if idle:  # heads without labels get a zero gradient, so DDP's reduction completes
            terms["total"] = terms["total"] + sum(v.float().sum() for v in idle) * 0.0
        return terms

    def _targets(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        from speech2face.models.attribute_classifier import label_targets

        try:
            return label_targets(batch["labels"])
        except S2FError as error:
            raise S2FError(f"{self.source}: {error}") from None

    def step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, Tensor]:
        images = self._images(model, batch, augment=True)
        with self.trainer.autocast():
            logits = model(images)
        return self._losses(logits, self._targets(batch))

    @torch.no_grad()
    def validate(self, model: nn.Module, dataset) -> dict[str, float]:
        """On the val split: each loss term (``val/loss/<name>``), each trained attribute's
        accuracy (``val/<name>_accuracy``) beside the majority training class predicted for
        every face (``val/<name>_majority``), and the age error in years of the predicted
        bins' middles (``val/age_mae``)."""
        from speech2face.models.attribute_classifier import bin_middle

        loader = self.loader(dataset, self.trainer.tcfg.batch_size)
        limit = self.trainer.tcfg.val_batches
        sums: dict[str, float] = {}
        hits: dict[str, list[int]] = {name: [0, 0, 0] for name in self.counts}  # right, base, n
        age_error, count = 0.0, 0
        for index, batch in enumerate(loader):
            if limit is not None and index >= limit:
                break
            targets = self._targets(batch)
            logits = model(self._images(model, batch, augment=False))
            n = len(batch["key"])
            for name, value in loss_terms(self._losses(logits, targets), "val/loss/").items():
                sums[name] = sums.get(name, 0.0) + value * n
            count += n
            for name in self.counts:
                target = targets[name].to(logits[name].device)
                mask = target >= 0
                predicted = logits[name].argmax(dim=1)
                hits[name][0] += int((predicted == target)[mask].sum())
                hits[name][1] += int((target[mask] == self.majority[name]).sum())
                hits[name][2] += int(mask.sum())
                if name == "age" and bool(mask.any()):
                    ages = torch.tensor([float(row.get("age", 0.0)) for row in batch["labels"]])
                    middles = torch.tensor([bin_middle(int(i)) for i in predicted.tolist()])
                    age_error += float((middles - ages)[mask.cpu()].abs().sum())
        values = {name: total / max(count, 1) for name, total in sums.items()}
        for name, (right, base, total) in hits.items():
            if total:
                values[f"val/{name}_accuracy"] = right / total
                values[f"val/{name}_majority"] = base / total
                if name == "age":
                    values["val/age_mae"] = age_error / total
        return values

    def bundle(self) -> dict[str, Any]:
        """What the checkpoint says about the training data: the trained attributes, the
        training label counts per class, the majority classes and the input size; and the
        run's config."""
        from omegaconf import OmegaConf

        from speech2face.models.attribute_classifier import ATTRIBUTE_CLASSES

        return {
            "attributes": list(self.counts),
            "label_counts": self.counts,
            "majority": {k: ATTRIBUTE_CLASSES[k][v] for k, v in self.majority.items()},
            "image_size": int(self.model.config.image_size),
            "source": self.source,
            "portrait_share": self.portrait_share if self.portraits else 0.0,
            "config": OmegaConf.to_yaml(self.trainer.cfg),
        }
