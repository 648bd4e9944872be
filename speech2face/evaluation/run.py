"""``s2f-eval``: the paper's evaluation of a voice checkpoint on one split of shards.

:func:`evaluate` loads the bundle, checks the shards against it, runs
:class:`~speech2face.evaluation.collect.Collector` over the split, gathers the tables of
:mod:`~speech2face.evaluation.tables` into the metrics (:func:`compute_metrics`), and writes
``metrics.json``, ``report.html`` and ``media/`` into ``output_dir`` all at once at the end.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from speech2face.audio import SAMPLE_RATE
from speech2face.config import require_file_name
from speech2face.errors import ConfigError, S2FError
from speech2face.evaluation.collect import (
    IMAGES,
    WINDOW_DESCRIPTIONS,
    WINDOWS,
    Collected,
    Collector,
)
from speech2face.evaluation.tables import (
    ATTRIBUTE_CLASSES,
    attribute_tables,
    craniofacial_table,
    judge_table,
    paper_figures,
    pooled_retrieval_table,
    retrieval_table,
    similarity_table,
    speaker_retrieval_table,
)
from speech2face.weights import sha256_of

SCHEMA = "speech2face.eval"
SCHEMA_VERSION = 2
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.html"
MEDIA_DIR = "media"


class EvalError(S2FError, ValueError):
    """An evaluation that cannot run on these inputs (one line for the user)."""


# --------------------------------------------------------------------------- the run

# Printed where FaceNet's weights are missing; tests run every command the report names.
FETCH_FACENET = "s2f-weights action=fetch name=facenet_vggface2"


def _settings(cfg: Any) -> dict[str, Any]:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def split_dataset(cfg: Any, bundle: Any):
    """The split's samples (whole segments, images), checked against the bundle."""
    from speech2face.data import ShardDataset

    data = cfg.data
    root = data.get("root")
    split = str(data.split)
    dataset = ShardDataset(
        root=None if data.get("urls") else require_file_name(root, "data.root", "shards"),
        urls=data.get("urls"),
        split=split,
        train=False,
        clip_samples=None,
        with_image=True,
        require_audio=True,
        rank=0,
        world_size=1,
    )
    where = root or data.get("urls")
    if dataset.num_samples == 0:
        raise EvalError(f"the {split} split of {where} is empty: choose another with data.split=")
    first = next(iter(dataset), None)
    if first is None:
        raise EvalError(f"the {split} split of {where} holds no sample with audio")
    width = int(first["feature"].shape[0])
    made_by = first["meta"].get("face_encoder")
    if width != bundle.feature_dim or (made_by and made_by != bundle.face_encoder):
        by = f" by {made_by}" if made_by else ""
        raise EvalError(
            f"shards in {where} hold {width}-D features{by}, but the checkpoint was trained on "
            f"{bundle.feature_dim}-D {bundle.face_encoder} features: evaluate on shards made "
            "with the same face encoder"
        )
    return dataset


def pool_encoder(bundle: Any, wanted: str) -> tuple[Any, str, str]:
    """The face encoder whose features the pooled retrieval compares: ``(encoder or None,
    name, note)``. FaceNet (SF2F's choice) when its weights are on this machine, else the
    checkpoint's own face encoder when it can run here, else the predicted features."""
    from speech2face.models import build_face_encoder

    candidates = ["facenet", bundle.face_encoder] if wanted == "auto" else [wanted]
    for name in dict.fromkeys(candidates):
        if name == "predicted":
            break
        if name != "dlib" and not _weights_here(name):
            continue
        encoder = build_face_encoder(name)
        if hasattr(encoder, "load_weights") and name != "dlib":
            encoder.load_weights(_weights_file(name))
        encoder.eval()
        note = (
            "FaceNet (VGGFace2) features of the S2F portraits against those of the true faces, "
            "as SF2F"
            if name == "facenet"
            else f"{name} features of the S2F portraits against those of the true faces "
            f"(FaceNet's weights are not on this machine: {FETCH_FACENET})"
        )
        return encoder, name, note
    return (
        None,
        "predicted",
        "the predicted features against the true ones (no face encoder could run on the "
        "portraits here)",
    )


_ENCODER_WEIGHTS = {"facenet": "facenet_vggface2", "vggface": "vgg_face_dag"}


def build_judge(name: Any, training_encoder: str) -> Any:
    """The independent face judge ``judge=`` names (``sface``), or ``None`` for ``null``."""
    if name in (None, False, "none", "null"):
        return None
    if str(name) != "sface":
        raise ConfigError(f"judge must be sface or null, got {name!r}")
    if str(name) == training_encoder:
        raise ConfigError(
            f"judge={name} is the encoder the checkpoint was trained against: it is not "
            "an independent judge"
        )
    from speech2face.faces.judge import SFaceJudge

    return SFaceJudge()


def _weights_file(name: str) -> Path | None:
    from speech2face.weights import WeightsError, local_path

    entry = _ENCODER_WEIGHTS.get(name)
    if entry is None:
        return None
    try:
        return local_path(entry)
    except WeightsError:
        return None


def _weights_here(name: str) -> bool:
    path = _weights_file(name)
    return path is not None and path.is_file()


def compute_metrics(
    cfg: Any,
    bundle: Any,
    collected: Collected,
    backend: Any,
    pool: tuple[Any, str, str],
    judge: Any = None,
) -> dict[str, Any]:
    """Every table of ``docs/evaluation.md`` except ``gallery`` and ``plots``."""
    notes: list[str] = []
    seed, resamples = int(cfg.seed), int(cfg.bootstrap_resamples)
    ks = [int(k) for k in cfg.ks]
    mean = bundle.mean_feature.cpu() if bundle.mean_feature is not None else None
    mean_portrait = None  # (1, 3, S, S): drawn once, for the attribute and pooled floors
    if mean is None:
        notes.append("the checkpoint holds no mean training feature: no mean-face baseline")
    else:
        with torch.no_grad():
            mean_portrait = bundle.portrait(bundle.mean_feature[None])
    labels = sorted({key for row in collected.labels for key, v in row.items() if v is not None})
    if collected.infer_refused:
        notes.append(
            f"infer window: s2f-infer refuses {len(collected.infer_refused)} of "
            f"{len(collected)} segments (too little sound); their clip prediction stands in"
        )
    if pool[1] == bundle.face_encoder:
        notes.append(
            f"pooled retrieval: read through {pool[1]}, the encoder the decoder was trained "
            "against, so it measures how well the portraits please it; "
            + (
                f"the independent judge ({judge.name}) reads them too"
                if judge is not None
                else "no independent judge ran (judge=null)"
            )
        )
    judge_mean = None
    if judge is not None and mean_portrait is not None:
        from speech2face.images import to_uint8

        judge_mean = torch.from_numpy(judge.embed_aligned(to_uint8(mean_portrait).numpy()))[0]
    pooled = pooled_retrieval_table(
        collected,
        pool[1],
        pool[2],
        int(cfg.sf2f.pool_size),
        int(cfg.sf2f.num_pools),
        ks,
        resamples,
        seed,
        notes,
        mean_query(mean, mean_portrait, pool[0]),
    )
    return {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "created": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "speech2face_version": importlib.metadata.version("speech2face"),
        "checkpoint": {
            "path": str(cfg.checkpoint),
            "sha256": sha256_of(str(cfg.checkpoint)),
            "task": bundle.task,
            "step": bundle.step,
            "face_encoder": bundle.face_encoder,
            "feature_dim": bundle.feature_dim,
            "window_seconds": int(bundle.audio.get("clip_samples", 0)) / SAMPLE_RATE,
        },
        "data": {
            "root": str(cfg.data.get("root") or cfg.data.get("urls")),
            "split": str(cfg.data.split),
            "samples": len(collected),
            "speakers": len(set(collected.speakers)),
            "labels": [key for key in labels if key in ATTRIBUTE_CLASSES],
        },
        "settings": _settings(cfg),
        "notes": notes,
        "intervals": intervals(collected, resamples),
        "windows": {
            name: {"seconds": seconds, "description": WINDOW_DESCRIPTIONS[name]}
            for name, seconds in WINDOWS.items()
        },
        "similarity": similarity_table(collected, mean),
        "retrieval": retrieval_table(
            collected, mean, int(cfg.pool_size), ks, resamples, seed, notes
        ),
        "speaker_retrieval": speaker_retrieval_table(collected, mean, ks, resamples, seed),
        "pooled_retrieval": pooled,
        "judge": judge_table(
            collected,
            judge,
            bundle.face_encoder,
            pooled,
            int(cfg.sf2f.pool_size),
            int(cfg.sf2f.num_pools),
            ks,
            resamples,
            seed,
            judge_mean,
        ),
        "attributes": attribute_tables(
            collected, backend, resamples, seed, notes, mean_face_labels(mean_portrait, backend)
        ),
        "craniofacial": craniofacial_table(collected, seed, int(cfg.permutations)),
        "gallery": [],
        "paper": paper_figures(),
        "plots": {},
    }


def intervals(collected: Collected, resamples: int) -> dict[str, Any]:
    """How every interval of the evaluated split was drawn (``metrics.json``'s
    ``intervals``): a percentile bootstrap that resamples speakers, each with all its
    segments (:mod:`speech2face.metrics.bootstrap`)."""
    return {
        "method": "percentile bootstrap",
        "confidence": 0.95,
        "resamples": resamples,
        "unit": "speaker",
        "speakers": len(set(collected.speakers)),
        "samples": len(collected),
    }


@torch.no_grad()
def mean_query(mean: Tensor | None, portrait: Tensor | None, encoder: Any) -> Tensor | None:
    """``(E,)`` the pooled retrieval's query for the mean face: its ``(1, 3, S, S)``
    portrait through the pooling encoder, or the ``(D,)`` mean feature itself when
    portraits are not encoded."""
    if mean is None or portrait is None:
        return None
    if encoder is None:
        return mean
    return encoder(portrait.float().cpu())[0].float()


def mean_face_labels(portrait: Tensor | None, backend: Any) -> dict[str, Any] | None:
    """The backend's labels of the mean training feature's ``(1, 3, S, S)`` portrait."""
    from speech2face.images import to_uint8

    if backend is None or portrait is None:
        return None
    return backend.predict(to_uint8(portrait))[0]


def write_gallery(collected: Collected, stage: Path, backend: Any) -> list[dict[str, Any]]:
    """The gallery's PNGs and WAVs under ``stage/media/gallery``; its JSON entries, with the
    backend's labels of each image (the s2f-infer portrait's too) when there is one."""
    from PIL import Image

    from speech2face.data.shards import encode_wav

    folder = stage / MEDIA_DIR / "gallery"
    folder.mkdir(parents=True, exist_ok=True)
    index = {key: i for i, key in enumerate(collected.keys)}
    entries = []
    for number, item in enumerate(collected.gallery):
        stem = f"{number:03d}"
        entry: dict[str, Any] = {"key": item.key, "speaker": item.speaker, "labels": item.labels}
        images = (("true", item.true_face), ("f2f", item.f2f), ("s2f", item.s2f))
        for image, pixels in (*images, ("infer", item.infer)):
            if pixels is None:
                entry["infer_note"] = item.infer_note
                continue
            name = f"{stem}_{image}.png"
            Image.fromarray(pixels.permute(1, 2, 0).numpy()).save(folder / name)
            entry[image] = f"{MEDIA_DIR}/gallery/{name}"
        pcm = (item.wav.clamp(-1, 1) * 32767).round().to(torch.int16).numpy()
        (folder / f"{stem}.wav").write_bytes(encode_wav(pcm))
        entry["audio"] = f"{MEDIA_DIR}/gallery/{stem}.wav"
        if backend is not None:
            row = index[item.key]
            entry["predicted"] = {
                ("true" if image == "true_face" else image): collected.attributes[image][row]
                for image in IMAGES
            }
            if item.infer is not None:
                entry["predicted"]["infer"] = backend.predict(item.infer[None])[0]
        entries.append(entry)
    return entries


def real_voices(
    cfg: Any, collector: Collector, collected: Collected, backend: Any, stage: Path
) -> dict[str, Any]:
    """The "Real voices" table (:mod:`speech2face.evaluation.real_voices`) of the set that
    ``cfg.real_voices`` names, or ``{"skipped": reason}`` when it is ``null``."""
    from speech2face.evaluation.real_voices import real_voice_table
    from speech2face.inference import Portraitist

    source = cfg.get("real_voices")
    if source in (None, False, "none", "null"):
        return {"skipped": "real_voices=null"}
    if collector.portraitist is None:
        collector.portraitist = Portraitist(collector.bundle, collector.device, fast=False)
    return real_voice_table(
        str(source),
        collector.portraitist,
        collected,
        backend,
        stage,
        int(cfg.bootstrap_resamples),
        int(cfg.seed),
        MEDIA_DIR,
    )


def _publish(stage: Path, output: Path) -> None:
    """Move ``media/``, ``metrics.json`` and ``report.html`` from ``stage`` into ``output``,
    the report last, replacing an earlier evaluation's."""
    media, old = output / MEDIA_DIR, output / f".{MEDIA_DIR}.old"
    shutil.rmtree(old, ignore_errors=True)
    if media.exists():
        os.replace(media, old)
    os.replace(stage / MEDIA_DIR, media)
    os.replace(stage / METRICS_FILE, output / METRICS_FILE)
    os.replace(stage / REPORT_FILE, output / REPORT_FILE)
    shutil.rmtree(old, ignore_errors=True)


def evaluate(cfg: Any) -> dict[str, Any]:
    """Run ``s2f-eval`` as ``configs/eval.yaml`` describes; returns the metrics."""
    from tqdm import tqdm

    from speech2face.attributes import build_backend
    from speech2face.evaluation.report import summary_table, write_report
    from speech2face.inference import load_voice_bundle, resolve_device
    from speech2face.runlock import hold_directory

    checkpoint = require_file_name(cfg.checkpoint, "checkpoint", "a voice checkpoint")
    output = Path(require_file_name(cfg.output_dir, "output_dir", "a directory"))
    for name in ("batch_size", "gallery_size", "bootstrap_resamples", "pool_size", "permutations"):
        if int(cfg[name]) < (0 if name == "gallery_size" else 1):
            raise ConfigError(f"{name} must be a positive number, got {cfg[name]}")
    limit = cfg.get("max_samples")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise ConfigError(
            f"max_samples must be a whole number of at least 1, or null; got {limit!r}"
        )
    device = resolve_device(str(cfg.device))
    bundle = load_voice_bundle(checkpoint, device)
    dataset = split_dataset(cfg, bundle)
    backend = build_backend(cfg.attributes)
    landmarker = None
    if cfg.craniofacial:
        from speech2face.faces.landmarks import Landmarker

        landmarker = Landmarker()
    pool = pool_encoder(bundle, str(cfg.sf2f.features))
    judge = build_judge(cfg.get("judge"), bundle.face_encoder)
    collector = Collector(
        bundle,
        device,
        backend,
        landmarker,
        pool[0],
        int(cfg.gallery_size),
        judge=judge,
        reuse_stored=pool[1] == bundle.face_encoder,
    )
    total = dataset.num_samples if limit is None else min(int(limit), dataset.num_samples or 0)
    samples = iter(dataset)
    if limit is not None:
        import itertools

        samples = itertools.islice(samples, int(limit))
    with hold_directory(output, "s2f-eval"):
        stage = output / f".s2f-eval.{os.getpid()}.tmp"
        for stale in output.glob(".s2f-eval.*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)
        try:
            with tqdm(
                total=total, desc="s2f-eval", unit="sample", disable=not cfg.progress
            ) as progress:
                collected = collector.run(samples, int(cfg.batch_size), progress)
            if not collected.keys:
                raise EvalError(f"the {cfg.data.split} split holds no sample with audio")
            metrics = compute_metrics(cfg, bundle, collected, backend, pool, judge)
            metrics["gallery"] = write_gallery(collected, stage, backend)
            metrics["real_voices"] = real_voices(cfg, collector, collected, backend, stage)
            write_report(metrics, stage)
            (stage / METRICS_FILE).write_text(json.dumps(metrics, indent=1) + "\n")
            _publish(stage, output)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    for note in metrics["notes"]:
        print(f"note: {note}", file=sys.stderr)
    print(summary_table(metrics))
    print(f"report: {output / REPORT_FILE}")
    return metrics
