"""Run a voice bundle over one split of shards and keep what the metrics need.

For every sample: the true feature, the predicted feature of each audio window
(:data:`WINDOWS`), the attribute backend's labels of the true face and of the F2F and S2F
portraits, dlib's 68 landmarks on both portraits, and the features the pooled (SF2F-style)
retrieval compares. Images are dropped once labelled, except the gallery's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from speech2face.audio import SAMPLE_RATE, spectrogram
from speech2face.images import to_uint8
from speech2face.training.checkpoint import Bundle
from speech2face.windows import clip_windows, fixed_window

# name -> window length in seconds (None: the whole segment, windows of the training length)
WINDOWS: dict[str, float | None] = {"3s": 3.0, "6s": 6.0, "clip": None, "infer": None}
WINDOW_DESCRIPTIONS = {
    "3s": "the first 3 s of each segment (tiled when shorter), as the paper's 3 s rows",
    "6s": "the first 6 s of each segment (tiled when shorter), as the paper's 6 s rows",
    "clip": (
        "the whole segment: windows of the checkpoint's training length with half a "
        "window's hop, their predictions averaged (one tiled window when shorter)"
    ),
    "infer": (
        "the whole segment as s2f-infer and the web page read it (speech2face.inference."
        "Portraitist, float32 as s2f-infer --precise): silence at the ends trimmed, mostly "
        "silent windows left out, the rest averaged; a segment it refuses (too little sound) "
        "takes its clip prediction, with a note"
    ),
}
PORTRAIT_WINDOW = "6s"  # the S2F portraits and their attributes: the paper's 6 s audio
IMAGES = ("true_face", "f2f", "s2f")
DETECT_SIZE = 224  # portraits are upsampled to this before dlib's face detector looks  # the three images per sample the attributes compare


@dataclass
class GalleryItem:
    """One sample shown in the report: ``(3, H, W)`` uint8 images and the voice."""

    key: str
    speaker: str
    labels: dict[str, Any]
    true_face: Tensor  # (3, 224, 224) uint8
    f2f: Tensor  # (3, S, S) uint8
    s2f: Tensor  # (3, S, S) uint8
    wav: Tensor  # (L,) float32 in [-1, 1], 16 kHz
    # (3, S, S) uint8: what s2f-infer draws from the whole segment (Portraitist: silence left
    # out, every window averaged); None when it refuses the segment (then ``infer_note``).
    infer: Tensor | None = None
    infer_note: str = ""


@dataclass
class Collected:
    """Per-sample results of one pass over a split (row ``i`` is sample ``i`` everywhere).

    Attributes:
        keys, speakers: each sample's key and speaker id.
        labels: the dataset's labels of each sample (``{}`` without labels).
        true: ``(N, D)`` the true face features (from the shards).
        predicted: window name -> ``(N, D)`` predicted features.
        attributes: image name (:data:`IMAGES`) -> the backend's labels per sample
            (empty without a backend).
        landmarks: ``f2f`` / ``s2f`` -> ``(N, 68, 2)`` landmarks on the portraits (empty
            when not measured): dlib's shape predictor fitted in the decoder's fixed face box.
        detected: ``f2f`` / ``s2f`` -> ``(N,)`` bool, whether dlib's frontal face detector
            finds a face in each portrait (upsampled to 224 px) (empty when not measured).
        pooled: ``query`` / ``gallery`` -> ``(N, E)`` features for SF2F-style retrieval:
            the S2F portraits and the true faces through the pooling
            encoder (the true faces' stored features when it is the checkpoint's own
            encoder) (empty when none).
        judged: ``s2f`` / ``f2f`` / ``true`` -> ``(N, 128)`` the independent judge's
            embeddings of the portraits and the true faces (empty without a judge).
        infer_refused: keys of the segments s2f-infer refuses (their ``infer`` prediction
            is their ``clip`` one).
        gallery: the samples the report shows.
    """

    keys: list[str] = field(default_factory=list)
    speakers: list[str] = field(default_factory=list)
    labels: list[dict[str, Any]] = field(default_factory=list)
    true: Tensor | None = None
    predicted: dict[str, Tensor] = field(default_factory=dict)
    attributes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    landmarks: dict[str, Tensor] = field(default_factory=dict)
    detected: dict[str, Tensor] = field(default_factory=dict)
    judged: dict[str, Tensor] = field(default_factory=dict)
    infer_refused: list[str] = field(default_factory=list)
    pooled: dict[str, Tensor] = field(default_factory=dict)
    gallery: list[GalleryItem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.keys)


def batches(samples: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for sample in samples:
        batch.append(sample)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class Collector:
    """Runs the bundle, the attribute backend, the landmarker and the pooling encoder.

    Args:
        bundle: a voice bundle (:func:`speech2face.training.load_bundle`), on ``device``.
        device: where the voice encoder and decoder run.
        backend: an attribute backend, or ``None``.
        landmarker: dlib's 68-point predictor (:class:`speech2face.faces.Landmarker`), or
            ``None`` to skip the craniofacial measurements.
        pool_encoder: a face encoder for the pooled retrieval's features, or ``None``.
        gallery_size: samples of distinct speakers kept for the report.
        judge: an independent face judge (:class:`speech2face.faces.judge.SFaceJudge`), or
            ``None``.
        reuse_stored: the pooling encoder is the checkpoint's own, whose features of the
            true faces the shards store: use those instead of encoding the faces again.
    """

    def __init__(
        self,
        bundle: Bundle,
        device: torch.device,
        backend: Any = None,
        landmarker: Any = None,
        pool_encoder: Any = None,
        gallery_size: int = 8,
        judge: Any = None,
        reuse_stored: bool = False,
    ) -> None:
        self.bundle = bundle
        self.device = device
        self.backend = backend
        self.landmarker = landmarker
        self.pool_encoder = pool_encoder
        self.gallery_size = int(gallery_size)
        self.judge = judge
        self.refused: list[str] = []  # keys of segments s2f-infer refuses
        self.reuse_stored = bool(reuse_stored)
        self.portraitist: Any = None  # made when the first gallery item is
        self.face_detector: Any = None  # dlib's, made when the first portrait is checked
        self.train_samples = int(bundle.audio.get("clip_samples", 6 * SAMPLE_RATE))

    def run(self, samples: Iterable[dict[str, Any]], batch_size: int, progress: Any) -> Collected:
        out = Collected()
        parts: dict[str, list[Tensor]] = {}
        for batch in batches(samples, batch_size):
            for name, value in self._batch(batch, out).items():
                parts.setdefault(name, []).append(value)
            progress.update(len(batch))
        if not out.keys:
            return out
        out.true = torch.cat(parts.pop("true"))
        out.infer_refused = list(self.refused)
        for name, values in parts.items():
            group, _, item = name.partition("/")
            getattr(out, group)[item] = torch.cat(values)
        return out

    @torch.no_grad()
    def _batch(self, batch: list[dict[str, Any]], out: Collected) -> dict[str, Tensor]:
        bundle = self.bundle
        true = torch.stack([s["feature"] for s in batch]).to(self.device)  # (B, D)
        values: dict[str, Tensor] = {"true": true.cpu()}
        for name, value in self._predict(batch).items():
            values[f"predicted/{name}"] = value.cpu()
        f2f = bundle.portrait(true)  # (B, 3, S, S)
        s2f = bundle.portrait(values[f"predicted/{PORTRAIT_WINDOW}"].to(self.device))
        f2f8, s2f8 = to_uint8(f2f), to_uint8(s2f)
        faces = torch.stack([s["image"] for s in batch])  # (B, 3, 224, 224) uint8
        if self.backend is not None:
            for image, pixels in zip(IMAGES, (faces, f2f8, s2f8), strict=True):
                out.attributes.setdefault(image, []).extend(self.backend.predict(pixels))
        if self.landmarker is not None:
            for image, pixels in (("f2f", f2f8), ("s2f", s2f8)):
                crops = pixels.permute(0, 2, 3, 1).numpy()
                points = np.stack([self.landmarker(crop) for crop in crops])
                values[f"landmarks/{image}"] = torch.from_numpy(points)
                values[f"detected/{image}"] = torch.tensor([self._face_found(c) for c in crops])
        if self.pool_encoder is not None:
            values["pooled/query"] = self.pool_encoder(s2f.float().cpu()).float()
            values["pooled/gallery"] = (
                true.float().cpu()
                if self.reuse_stored
                else self.pool_encoder(faces.float().div(255)).float()
            )
        if self.judge is not None:
            portraits = torch.cat([s2f8, f2f8]).numpy()
            judged = torch.from_numpy(self.judge.embed_aligned(portraits))
            values["judged/s2f"], values["judged/f2f"] = judged.split(len(batch))
            values["judged/true"] = torch.from_numpy(self.judge.embed_aligned(faces.numpy()))
        seen = {item.speaker for item in out.gallery}
        for i, sample in enumerate(batch):
            labels = dict(sample["meta"].get("labels") or {})
            out.keys.append(str(sample["key"]))
            out.speakers.append(str(sample["speaker"]))
            out.labels.append(labels)
            if len(out.gallery) < self.gallery_size and sample["speaker"] not in seen:
                seen.add(sample["speaker"])
                infer, note = self._infer(sample, values["predicted/infer"][i])
                out.gallery.append(
                    GalleryItem(
                        key=str(sample["key"]),
                        speaker=str(sample["speaker"]),
                        labels=labels,
                        true_face=faces[i],
                        f2f=f2f8[i],
                        s2f=s2f8[i],
                        wav=sample["wav"],
                        infer=infer,
                        infer_note=note,
                    )
                )
        return values

    def _face_found(self, crop: np.ndarray) -> bool:
        """Whether dlib's frontal face detector (HOG) finds a face in an ``(S, S, 3)`` uint8
        portrait, upsampled to :data:`DETECT_SIZE` px when smaller (its smallest face is
        about 80 px)."""
        if self.face_detector is None:
            import dlib

            self.face_detector = dlib.get_frontal_face_detector()
        if crop.shape[0] < DETECT_SIZE:
            from PIL import Image

            crop = np.asarray(
                Image.fromarray(crop).resize((DETECT_SIZE, DETECT_SIZE), Image.Resampling.BICUBIC)
            )
        return len(self.face_detector(np.ascontiguousarray(crop), 0)) > 0

    def _infer(self, sample: dict[str, Any], feature: Tensor) -> tuple[Tensor | None, str]:
        """s2f-infer's portrait of a segment (float32, as ``--precise`` draws it) from its
        ``(D,)`` infer-window feature, or ``None`` and the reason s2f-infer refuses it."""
        from speech2face.images import to_uint8
        from speech2face.inference import InferenceError

        if str(sample["key"]) in self.refused:
            try:
                self.portraitist.windows(sample["wav"])
            except InferenceError as error:
                return None, str(error).removeprefix("<waveform>: ")
        portrait = self.bundle.portrait(feature[None].to(self.device))  # (1, 3, S, S)
        return to_uint8(portrait)[0].cpu(), ""

    def _predict(self, batch: list[dict[str, Any]]) -> dict[str, Tensor]:
        """``{window: (B, D)}`` predicted features: one window per sample for a fixed length,
        every window of the whole segment averaged for ``clip``. The fixed window of the
        checkpoint's training length is the first of the segment's clip windows (the first
        samples, or the tiled segment when it is no longer): that output is reused, not
        computed twice."""
        bundle = self.bundle
        encoder = bundle.voice_encoder
        assert encoder is not None
        groups = [clip_windows(s["wav"], self.train_samples) for s in batch]
        outputs = encoder(spectrogram(torch.cat(groups).to(self.device)))  # (sum W, D)
        parts = outputs.split([len(group) for group in groups])
        raw: dict[str, Tensor] = {}
        for name, seconds in WINDOWS.items():
            if seconds is None:
                continue
            samples = round(seconds * SAMPLE_RATE)
            if samples == self.train_samples:
                raw[name] = torch.stack([part[0] for part in parts])
                continue
            wavs = torch.stack([fixed_window(s["wav"], samples) for s in batch])
            raw[name] = encoder(spectrogram(wavs.to(self.device)))  # (B, D)
        raw["clip"] = torch.stack([part.mean(0) for part in parts])
        raw["infer"] = self._infer_raw(batch, raw["clip"])
        return {name: bundle.place(value) for name, value in raw.items()}

    def _infer_raw(self, batch: list[dict[str, Any]], clip: Tensor) -> Tensor:
        """``(B, D)`` the averaged raw outputs s2f-infer computes for each segment
        (:meth:`~speech2face.inference.Portraitist.windows`, then the encoder on the kept
        windows of the whole batch at once); a refused segment takes its ``clip`` row and
        its key joins :attr:`Collected.infer_refused` (through :attr:`refused`)."""
        from speech2face.inference import InferenceError, Portraitist

        if self.portraitist is None:
            self.portraitist = Portraitist(self.bundle, self.device, fast=False)
        groups: list[Tensor | None] = []  # None: the clip row stands (refused, or the same)
        for sample in batch:
            try:
                clips = self.portraitist.windows(sample["wav"]).clips
            except InferenceError:
                groups.append(None)
                self.refused.append(str(sample.get("key", "")))
                continue
            # Nothing trimmed and no window left out: the clip window's windows exactly.
            same = clip_windows(sample["wav"], self.train_samples)
            groups.append(None if torch.equal(clips, same) else clips)
        kept = [g for g in groups if g is not None]
        if not kept:
            return clip.clone()
        outputs = iter(self.portraitist.raw_outputs(torch.cat(kept)).split([len(g) for g in kept]))
        return torch.stack(
            [clip[i] if g is None else next(outputs).mean(0) for i, g in enumerate(groups)]
        )
