"""The tables of ``metrics.json``, computed from one pass over a split
(:class:`~speech2face.evaluation.collect.Collected`): feature similarity, retrieval, pooled
retrieval, attribute agreement, craniofacial correlations, and the paper's figures beside
them. Every figure is ``{"value", "low", "high"}`` or a plain number, ``None`` when absent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from speech2face.errors import S2FError
from speech2face.evaluation.collect import IMAGES, PORTRAIT_WINDOW, WINDOWS, Collected
from speech2face.evaluation.figures import backend_checks
from speech2face.metrics import (
    METRICS,
    bootstrap_ci,
    confusion,
    craniofacial_correlations,
    feature_similarity,
    nearest,
    pooled_ranks,
    recall_cis,
    recall_from_ranks,
    retrieval_ranks,
)
from speech2face.metrics.attributes import (
    AGE_BINS,
    ETHNICITIES,
    GENDERS,
    PAPER_ETHNICITY_DIAGONAL,
    PAPER_ETHNICITY_DIAGONAL_F2F,
    PAPER_GENDER_AGREEMENT,
    PAPER_GENDER_AGREEMENT_F2F,
    age_bin,
)
from speech2face.metrics.bootstrap import cluster_index
from speech2face.metrics.craniofacial import PAPER_CORRELATIONS, PAPER_RANDOM_CORRELATION
from speech2face.metrics.retrieval import PAPER_RETRIEVAL
from speech2face.metrics.similarity import PAPER_FEATURE_SIMILARITY

MIN_CORRELATION_PAIRS = 3  # Pearson r needs at least 3 pairs to have a p-value
MIN_POOL_IDENTITIES = 2  # a pool needs the query's own face and one other speaker's
ATTRIBUTE_CLASSES = {"gender": GENDERS, "age": AGE_BINS, "ethnicity": ETHNICITIES}


def figure(value: float, interval: tuple[float, float] | None = None) -> dict[str, float | None]:
    """``{"value", "low", "high"}``; ``low`` = ``high`` = ``value`` without an interval."""
    low, high = interval if interval is not None else (value, value)
    return {"value": _number(value), "low": _number(low), "high": _number(high)}


def _number(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _recall_rows(
    ranks: Tensor,
    ks: Sequence[int],
    resamples: int,
    seed: int,
    speakers: Sequence[str],
    **row: Any,
) -> dict[str, Any]:
    """One retrieval row: recall@K with bootstrap intervals (speakers resampled), from
    1-based ranks; ``speakers``: each query's speaker."""
    recall = recall_from_ranks(ranks, ks)
    cis = recall_cis(ranks, ks, n_resamples=resamples, seed=seed, clusters=speakers)
    return {**row, "recall": {str(k): figure(recall[k], cis[k]) for k in ks}}


def _chance_row(pool: int, ks: Sequence[int], **row: Any) -> dict[str, Any]:
    return {
        **row,
        "predictor": "chance",
        "recall": {str(k): figure(min(k / pool, 1.0)) for k in ks},
    }


# --------------------------------------------------------------------------- metrics


def similarity_table(collected: Collected, mean: Tensor | None) -> dict[str, Any]:
    """``{window: {"model": {...}, "mean_face": {...}}}`` of feature similarity."""
    assert collected.true is not None
    out: dict[str, Any] = {}
    for window in WINDOWS:
        row = {"model": _mean_std(feature_similarity(collected.predicted[window], collected.true))}
        if mean is not None:
            baseline = mean.expand_as(collected.true)
            row["mean_face"] = _mean_std(feature_similarity(baseline, collected.true))
        out[window] = row
    return out


def _mean_std(values: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    return {key: {"mean": _number(v.mean), "std": _number(v.std)} for key, v in values.items()}


def retrieval_table(
    collected: Collected,
    mean: Tensor | None,
    pool_size: int,
    ks: Sequence[int],
    resamples: int,
    seed: int,
    notes: list[str],
) -> dict[str, Any]:
    """Recall@K of each voice's own face among ``pool_size`` faces (a fixed random subset of
    the split when it has more; all of them when it has fewer, with a note)."""
    assert collected.true is not None
    n = len(collected)
    pool = min(int(pool_size), n)
    if pool < int(pool_size):
        notes.append(
            f"retrieval: a pool of {pool_size} faces was asked for; the split has {n}, so "
            f"the pool is all {n}"
        )
    chosen = torch.from_numpy(np.sort(np.random.default_rng(seed).permutation(n)[:pool]))
    true = collected.true[chosen]
    speakers = [collected.speakers[i] for i in chosen.tolist()]
    ks = [k for k in ks if k <= pool] or [pool]
    predicted = {window: collected.predicted[window][chosen] for window in WINDOWS}
    rows = _recall_rows_by_window(predicted, true, mean, speakers, ks, resamples, seed)
    return {"pool_size": pool, "pool_requested": int(pool_size), "ks": list(ks), "rows": rows}


def _recall_rows_by_window(
    predicted: dict[str, Tensor],
    true: Tensor,
    mean: Tensor | None,
    speakers: list[str],
    ks: Sequence[int],
    resamples: int,
    seed: int,
) -> list[dict[str, Any]]:
    """Recall rows of each window's predictions (``predicted[window]``: (Q, D), query i's
    own face is ``true[i]``, (Q, D)), of the mean face when given, and of chance, for every
    metric; intervals by speaker (``speakers``: query i's speaker)."""
    pool = len(true)
    targets = torch.arange(pool)
    rows = []
    for window, queries in predicted.items():
        for metric in METRICS:
            predictors = {"model": queries}
            if mean is not None:
                predictors["mean_face"] = mean.expand_as(true)
            for name, values in predictors.items():
                ranks = retrieval_ranks(values, true, targets, metric)
                rows.append(
                    _recall_rows(
                        ranks,
                        ks,
                        resamples,
                        seed,
                        speakers,
                        window=window,
                        metric=metric,
                        predictor=name,
                    )
                )
            rows.append(_chance_row(pool, ks, window=window, metric=metric))
    return rows


def pooled_retrieval_table(
    collected: Collected,
    features_name: str,
    features_note: str,
    pool_size: int,
    num_pools: int,
    ks: Sequence[int],
    resamples: int,
    seed: int,
    notes: list[str] | None = None,
    mean_query: Tensor | None = None,
) -> dict[str, Any]:
    """SF2F's recall@K within random pools of ``pool_size`` identities (speakers); pools of
    all the split's speakers when it has fewer (with a note). ``mean_query``: ``(E,)`` the
    mean face's query (its portrait through the pooling encoder), for the baseline rows."""
    speakers, requested = len(set(collected.speakers)), pool_size
    if speakers < MIN_POOL_IDENTITIES:
        return {
            "skipped": f"pools of identities need at least {MIN_POOL_IDENTITIES} speakers; "
            f"the split has {speakers}"
        }
    if speakers < pool_size:
        if notes is not None:
            notes.append(
                f"pooled retrieval: pools of {pool_size} identities were asked for; the split "
                f"has {speakers} speakers, so each pool holds all {speakers}"
            )
        pool_size = speakers
    if collected.pooled:
        queries, gallery = collected.pooled["query"], collected.pooled["gallery"]
    else:
        assert collected.true is not None
        queries, gallery = collected.predicted[PORTRAIT_WINDOW], collected.true
    targets = torch.arange(len(collected))
    labels = np.asarray(collected.speakers)
    ks = [k for k in ks if k <= pool_size]
    predictors = {"model": queries}
    if mean_query is not None:  # the mean face's portrait (or feature) for every voice
        predictors["mean_face"] = mean_query.reshape(1, -1).expand_as(queries)
    rows = []
    for metric in METRICS:
        for predictor, values in predictors.items():
            ranks = pooled_ranks(
                values, gallery, targets, pool_size, metric, seed, num_pools, labels
            )
            row = dict(window=PORTRAIT_WINDOW, metric=metric, predictor=predictor)
            rows.append(_recall_rows(ranks, ks, resamples, seed, collected.speakers, **row))
        rows.append(_chance_row(pool_size, ks, window=PORTRAIT_WINDOW, metric=metric))
    return {
        "pool_size": pool_size,
        "pool_requested": requested,
        "num_pools": num_pools,
        "features": features_name,
        "features_note": features_note,
        "window": PORTRAIT_WINDOW,
        "ks": ks,
        "rows": rows,
    }


def judge_table(
    collected: Collected,
    judge: Any,
    training_encoder: str,
    pooled: dict[str, Any],
    pool_size: int,
    num_pools: int,
    ks: Sequence[int],
    resamples: int,
    seed: int,
    mean_query: Tensor | None = None,
) -> dict[str, Any]:
    """The portraits read by a face-identity network other than the training encoder:
    SF2F's pooled recall@K (the S2F portrait, the F2F portrait, the mean face's portrait
    against the true faces, all through the judge) and the share of portraits whose nearest
    true face of the split (cosine) is the speaker's own; beside the same figures through
    the training encoder when the pooled retrieval used it (``pooled``'s features).
    ``mean_query``: ``(128,)`` the judge's embedding of the mean face's portrait."""
    if judge is None or not collected.judged:
        return {"skipped": "no independent judge (judge=null)"}
    speakers = len(set(collected.speakers))
    if speakers < MIN_POOL_IDENTITIES:
        return {"skipped": f"pools of identities need at least {MIN_POOL_IDENTITIES} speakers"}
    pool_size = min(pool_size, speakers)
    ks = [k for k in ks if k <= pool_size]
    judges = {judge.name: collected.judged}
    training_rows = pooled.get("features") == training_encoder and bool(collected.pooled)
    if training_rows:
        judges[training_encoder] = {
            "s2f": collected.pooled["query"],
            "true": collected.pooled["gallery"],
        }
    targets = torch.arange(len(collected))
    labels = np.asarray(collected.speakers)
    rows, nearest_rows = [], []
    for name, features in judges.items():
        predictors = {key: features[key] for key in ("s2f", "f2f") if key in features}
        if name == judge.name and mean_query is not None:
            predictors["mean_face"] = mean_query.reshape(1, -1).expand_as(features["s2f"])
        for predictor, queries in predictors.items():
            ranks = pooled_ranks(
                queries, features["true"], targets, pool_size, "cosine", seed, num_pools, labels
            )
            row = dict(judge=name, window=PORTRAIT_WINDOW, metric="cosine", predictor=predictor)
            rows.append(_recall_rows(ranks, ks, resamples, seed, collected.speakers, **row))
            found = nearest(queries, features["true"], "cosine").numpy()
            hits = (labels[found] == labels).astype(np.float64)
            interval = bootstrap_ci(
                hits, n_resamples=resamples, seed=seed, clusters=collected.speakers
            )
            nearest_rows.append(
                {
                    "judge": name,
                    "predictor": predictor,
                    "own_face_nearest": figure(hits.mean(), interval),
                }
            )
        rows.append(
            {**_chance_row(pool_size, ks, window=PORTRAIT_WINDOW, metric="cosine"), "judge": name}
        )
    chance = {
        "judge": "chance",
        "predictor": "chance",
        "own_face_nearest": figure(_own_chance(labels)),
    }
    return {
        "judge": judge.name,
        "description": judge.description,
        "training_encoder": training_encoder,
        "same_as_training": judge.name == training_encoder,
        "training_rows": training_rows,
        "pool_size": pool_size,
        "num_pools": num_pools,
        "window": PORTRAIT_WINDOW,
        "ks": ks,
        "rows": rows,
        "nearest": [*nearest_rows, chance],
    }


def _own_chance(labels: np.ndarray) -> float:
    """The share of queries whose nearest face, drawn at random, is their speaker's own."""
    _, counts = np.unique(labels, return_counts=True)
    return float((counts * counts).sum() / len(labels) ** 2)


def speaker_retrieval_table(
    collected: Collected,
    mean: Tensor | None,
    ks: Sequence[int],
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    """SF2F's multi-segment setting: each speaker's predictions averaged over all its
    segments (per window), retrieved among the speakers' mean true features (the speaker's
    faces averaged): one query per speaker."""
    assert collected.true is not None
    names = list(dict.fromkeys(collected.speakers))
    if len(names) < MIN_POOL_IDENTITIES:
        return {"skipped": f"retrieval among speakers needs at least {MIN_POOL_IDENTITIES}"}
    # Each segment's speaker number, in the first-seen order of ``names``.
    index = torch.from_numpy(cluster_index(collected.speakers, len(collected))[0])
    counts = torch.bincount(index, minlength=len(names)).float()[:, None]

    def by_speaker(values: Tensor) -> Tensor:  # (N, D) -> (S, D) per-speaker means
        total = torch.zeros(len(names), values.shape[1], dtype=torch.float64)
        return (total.index_add_(0, index, values.double()) / counts).float()

    true = by_speaker(collected.true)
    ks = [k for k in ks if k <= len(names)] or [len(names)]
    predicted = {window: by_speaker(collected.predicted[window]) for window in WINDOWS}
    rows = _recall_rows_by_window(predicted, true, mean, names, ks, resamples, seed)
    return {
        "speakers": len(names),
        "segments": len(collected),
        "segments_per_speaker": {
            "min": int(counts.min()),
            "mean": float(counts.mean()),
            "max": int(counts.max()),
        },
        "ks": ks,
        "rows": rows,
    }


def _label(attribute: str, value: Any) -> str | None:
    """A label in the attribute's classes (ages binned), ``None`` when unknown."""
    if value is None:
        return None
    if attribute == "age":
        try:
            return age_bin(float(value))
        except (TypeError, ValueError, S2FError):
            return None
    text = str(value).strip().lower()
    if attribute == "ethnicity" and text and text not in ETHNICITIES:
        return "other"
    return text if text in ATTRIBUTE_CLASSES[attribute] else None


def attribute_tables(
    collected: Collected,
    backend: Any,
    resamples: int,
    seed: int,
    notes: list[str],
    mean_face: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Confusion matrices of every (reference, compared) pair the labels allow, each with
    its floors: the backend's labels of the mean face's portrait said for every sample
    (``mean_face``, a voice model that learnt nothing draws it), and the reference's most
    common class said for every sample (``majority``)."""
    if backend is None:
        return {"skipped": "no attribute backend (attributes=none)"}
    predicted = {
        image: [
            [_label(a, p.get(a)) for p in collected.attributes[image]] for a in ATTRIBUTE_CLASSES
        ]
        for image in IMAGES
    }
    dataset = [[_label(a, labels.get(a)) for labels in collected.labels] for a in ATTRIBUTE_CLASSES]
    tables, skipped = [], []
    for index, attribute in enumerate(ATTRIBUTE_CLASSES):
        if attribute not in backend.attributes:
            reason = backend.missing.get(attribute, f"{backend.name} does not predict it")
            skipped.append({"attribute": attribute, "reference": "true_face", "reason": reason})
            notes.append(f"{attribute}: {reason}")
            continue
        references = {"true_face": predicted["true_face"][index]}
        if any(label is not None for label in dataset[index]):
            references["dataset"] = dataset[index]
        else:
            skipped.append(
                {
                    "attribute": attribute,
                    "reference": "dataset",
                    "reason": f"the shards carry no {attribute} labels",
                }
            )
        for reference, ref_labels in references.items():
            compared_images = ("s2f", "f2f") + (("true_face",) if reference == "dataset" else ())
            for compared in compared_images:
                table = _table(
                    attribute,
                    reference,
                    compared,
                    ref_labels,
                    predicted[compared][index],
                    resamples,
                    seed,
                    collected.speakers,
                )
                known = [label for label in ref_labels if label is not None]
                known_speakers = [
                    speaker
                    for speaker, label in zip(collected.speakers, ref_labels, strict=True)
                    if label is not None
                ]
                if known:
                    common = max(set(known), key=known.count)
                    table["majority"] = figure(known.count(common) / len(known))
                if mean_face is not None and compared != "true_face":
                    constant = _label(attribute, mean_face.get(attribute))
                    hits = np.asarray([label == constant for label in known], dtype=np.float64)
                    if len(hits) > 1:
                        interval = bootstrap_ci(
                            hits, n_resamples=resamples, seed=seed, clusters=known_speakers
                        )
                        table["mean_face"] = figure(float(hits.mean()), interval)
                tables.append(table)
    section = {
        "backend": backend.name,
        "description": backend.description,
        "attributes": list(backend.attributes),
        "missing": dict(backend.missing),
        "tables": tables,
        "skipped_tables": skipped,
    }
    section["backend_check"] = backend_checks(section)
    section["at_chance"] = [a for a, c in section["backend_check"].items() if c["at_chance"]]
    return section


def _table(
    attribute: str,
    reference: str,
    compared: str,
    ref_labels: list[str | None],
    cmp_labels: list[str | None],
    resamples: int,
    seed: int,
    speakers: Sequence[str],
) -> dict[str, Any]:
    matrix = confusion(ref_labels, cmp_labels, ATTRIBUTE_CLASSES[attribute])
    pairs = [
        (a == b, speaker)
        for a, b, speaker in zip(ref_labels, cmp_labels, speakers, strict=True)
        if a is not None and b is not None
    ]
    hits = np.asarray([hit for hit, _ in pairs], dtype=np.float64)
    interval = (
        bootstrap_ci(
            hits, n_resamples=resamples, seed=seed, clusters=[speaker for _, speaker in pairs]
        )
        if len(hits) > 1
        else None
    )
    normalised = matrix.normalised()
    return {
        "attribute": attribute,
        "reference": reference,
        "compared": compared,
        "classes": list(matrix.classes),
        "counts": matrix.counts.tolist(),
        "normalised": [
            None if np.isnan(row).all() else [_number(v) for v in row] for row in normalised
        ],
        "agreement": figure(matrix.agreement(), interval),
        "per_class": {k: _number(v) for k, v in matrix.per_class().items()},
        "samples": matrix.total,
    }


def craniofacial_table(collected: Collected, seed: int, permutations: int) -> dict[str, Any]:
    """Pearson r of each measurement between the F2F and S2F portraits of every sample, with
    its permutation null (speakers re-paired ``permutations`` times)."""
    if not collected.landmarks:
        return {"skipped": "craniofacial measurements were turned off (craniofacial=false)"}
    n = len(collected)
    if n < MIN_CORRELATION_PAIRS:
        return {"skipped": f"Pearson r needs at least {MIN_CORRELATION_PAIRS} portraits, got {n}"}
    correlations = craniofacial_correlations(
        collected.landmarks["f2f"],
        collected.landmarks["s2f"],
        n_random=permutations,
        seed=seed,
        clusters=collected.speakers,
    )
    found = collected.detected
    detected = int((found["f2f"] & found["s2f"]).sum()) if found else None
    return {
        "samples": n,
        "detected": detected,
        "permutations": permutations,
        "permutation_unit": "speaker",
        "measurements": [
            {
                "name": name,
                "r": _number(c.r),
                "p": _number(c.p),
                "p_permutation": _number(c.p_permutation),
                "null_r95": _number(c.null_r95),
                "random_r": _number(c.random_r),
                "paper_r": PAPER_CORRELATIONS.get(name),
            }
            for name, c in correlations.items()
        ],
        "paper_random_r": PAPER_RANDOM_CORRELATION,
    }


def paper_figures() -> dict[str, Any]:
    """The paper's figures, as ``docs/evaluation.md`` lays them out."""
    return {
        "similarity": {
            window: {key: list(value) for key, value in row.items()}
            for window, row in PAPER_FEATURE_SIMILARITY.items()
        },
        "retrieval": {
            window: {metric: {str(k): v for k, v in row.items()} for metric, row in rows.items()}
            for window, rows in PAPER_RETRIEVAL.items()
        },
        "gender_agreement": dict(PAPER_GENDER_AGREEMENT),
        "gender_agreement_f2f": dict(PAPER_GENDER_AGREEMENT_F2F),
        "ethnicity_diagonal": dict(PAPER_ETHNICITY_DIAGONAL),
        "ethnicity_diagonal_f2f": dict(PAPER_ETHNICITY_DIAGONAL_F2F),
        "craniofacial": dict(PAPER_CORRELATIONS),
        "craniofacial_random": PAPER_RANDOM_CORRELATION,
    }
