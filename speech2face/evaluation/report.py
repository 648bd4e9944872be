"""The evaluation's report: plots and a self-contained ``report.html`` from ``metrics.json``.

:func:`write_report` reads the metrics dict of ``s2f-eval`` (schema version 2, documented in
``docs/evaluation.md``) and writes, under the run's output directory::

    media/plots/recall_at_k.png          recall@K per window: model, mean face, chance, paper
    media/plots/confusion_<...>.png      one heatmap per attribute table
    media/plots/craniofacial.png         Pearson r per measurement beside random and paper
    report.html                          every figure beside the paper's, gallery, plots

This module shapes each section's figures into rows of text; the page's markup lives in the
Jinja2 templates under ``templates/`` (``report.html`` and one template per section), which
escape every value they print. ``report.html`` has inline CSS, no scripts, and refers only
to files under the output directory by relative paths, so it opens from disk with no
network. Missing sections and sections of the form ``{"skipped": reason}`` render as text
instead of failing. :func:`summary_table` is the short plain-text version printed by the
command line.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from speech2face.evaluation.figures import (
    LABELLING_NAMES,
    METRIC_ORDER,
    MISSING,
    PREDICTOR_NAMES,
    PREDICTOR_ORDER,
    WINDOW_NAMES,
    WINDOW_ORDER,
    as_text,
    at_chance_warning,
    backend_checks,
    confusion_names,
    find_row,
    fmt_figure,
    fmt_label,
    fmt_mean_std,
    fmt_num,
    fmt_p,
    fmt_pct,
    get_section,
    is_number,
    k_get,
    nearest_by_judge,
    ordered,
    paper_attribute_key,
    paper_value,
    row_windows,
    safe_src,
    section_ks,
    section_rows,
)
from speech2face.evaluation.plots import write_plots
from speech2face.evaluation.summary import summary_table

__all__ = ["SCHEMA_VERSION", "render_html", "summary_table", "write_report"]

SCHEMA_VERSION = 2
REPORT_NAME = "report.html"
GALLERY_IMAGE_PX = 128  # displayed width and height of each gallery portrait
SHA_SHORT = 12  # hex digits of the checkpoint's sha256 shown
SIMILARITY_KEYS = ("angle_deg", "cosine", "l2_unit", "l1_unit", "l2_raw", "l1_raw")
# Our similarity key -> the paper's key set beside it (its L2/L1 scale is unstated).
PAPER_SIMILARITY_KEYS = {"angle_deg": "angle_deg", "l2_unit": "l2", "l1_unit": "l1"}
GALLERY_IMAGES = (("true", "true face"), ("f2f", "F2F"), ("s2f", "S2F"), ("infer", "s2f-infer"))
GALLERY_LABELS = ("gender", "age", "ethnicity")  # dataset labels shown; the rest collapsed
HEADLINE_KS = (1, 5, 10)
PORTRAIT_WINDOW = "6s"  # the S2F portraits' (and their attributes') audio window

Table = dict[str, Any]  # {"header": [...], "rows": [[...]], "text_cols": n}
Context = dict[str, Any]  # one template's variables; {"skipped": reason} when not shown


def _escape(value: Any) -> Markup:
    """What every ``{{ value }}`` prints: markup as it is, anything else as
    :func:`~speech2face.evaluation.figures.as_text` escaped by :func:`html.escape`."""
    if hasattr(value, "__html__"):
        return Markup(value)
    return Markup(html.escape(as_text(value)))


_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("speech2face.evaluation", "templates"),
    autoescape=True,
    finalize=_escape,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_TEMPLATES.filters["text"] = as_text
_TEMPLATES.globals.update(missing=MISSING, image_px=GALLERY_IMAGE_PX)


def _table(header: Sequence[Any], rows: Sequence[Sequence[Any]], text_cols: int = 1) -> Table:
    """A table of text cells; the first ``text_cols`` columns left-aligned."""
    return {"header": list(header), "rows": [list(r) for r in rows], "text_cols": text_cols}


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _label_lines(labels: Any) -> list[str]:
    """``key: label`` per label, or a lone en dash when there are none."""
    if not isinstance(labels, Mapping) or not labels:
        return [MISSING]
    return [f"{as_text(k)}: {fmt_label(v)}" for k, v in labels.items()]


def _plot(plots: Mapping[str, str], name: str, alt: str) -> Context | None:
    src = safe_src(plots.get(name))
    return {"src": src, "alt": alt} if src else None


# ---------------------------------------------------------------- sections


def _header(metrics: Mapping[str, Any]) -> Context:
    ckpt, data = _mapping(metrics.get("checkpoint")), _mapping(metrics.get("data"))
    sha = ckpt.get("sha256")
    rows = [
        ("checkpoint", ckpt.get("path")),
        ("sha256", sha[:SHA_SHORT] if isinstance(sha, str) else None),
        ("step", ckpt.get("step")),
        ("face encoder", ckpt.get("face_encoder")),
        ("feature dim", ckpt.get("feature_dim")),
        ("training window (s)", ckpt.get("window_seconds")),
        ("data root", data.get("root")),
        ("split", data.get("split")),
        ("samples", data.get("samples")),
        ("speakers", data.get("speakers")),
        ("dataset labels", ", ".join(map(str, data.get("labels") or [])) or None),
    ]
    settings, notes, windows = (metrics.get(k) for k in ("settings", "notes", "windows"))
    return {
        "step": ckpt.get("step"),
        **{k: data.get(k) for k in ("split", "samples", "speakers")},
        "table": _table(("", "value"), rows, text_cols=2),
        "settings": (
            _table(("setting", "value"), list(settings.items()), text_cols=2)
            if isinstance(settings, Mapping) and settings
            else None
        ),
        "notes": notes if isinstance(notes, list) else [],
        "windows": [
            (name, info.get("description") if isinstance(info, Mapping) else info)
            for name, info in (windows.items() if isinstance(windows, Mapping) else ())
        ],
    }


def _gallery(metrics: Mapping[str, Any]) -> Context:
    gallery = metrics.get("gallery")
    if not isinstance(gallery, list) or not gallery:
        return {"skipped": "no gallery"}
    entries = []
    for entry in gallery:
        if not isinstance(entry, Mapping):
            continue
        predicted = _mapping(entry.get("predicted"))
        images = []
        for image, title in GALLERY_IMAGES:
            src = safe_src(entry.get(image))
            note = entry.get("infer_note") if image == "infer" and not src else None
            images.append(
                {
                    "src": src,
                    "title": title,
                    "note": note or None,
                    "labels": _label_lines(predicted[image]) if image in predicted else None,
                }
            )
        entries.append(
            {
                "speaker": entry.get("speaker"),
                "key": entry.get("key"),
                "audio": safe_src(entry.get("audio")),
                "images": images,
                **_gallery_labels(entry.get("labels")),
            }
        )
    header = ["speaker", "voice", *(title for _, title in GALLERY_IMAGES), "dataset labels"]
    return {"header": header, "entries": entries}


def _gallery_labels(labels: Any) -> Context:
    """The dataset's attribute labels shown (``labels``) and every other label, such as a
    synthetic corpus's generator parameters, folded away (``more``)."""
    labels = _mapping(labels)
    shown = {k: v for k, v in labels.items() if k in GALLERY_LABELS}
    rest = {k: v for k, v in labels.items() if k not in GALLERY_LABELS}
    return {"labels": _label_lines(shown), "more": _label_lines(rest) if rest else []}


def _window_name(window: Any) -> str:
    return WINDOW_NAMES.get(window, f"window {as_text(window)}")


def _find_table(section: Mapping[str, Any] | None, *key: str) -> Mapping[str, Any] | None:
    tables = section.get("tables") if section else None
    for table in tables if isinstance(tables, list) else []:
        if isinstance(table, Mapping) and (
            (table.get("attribute"), table.get("reference"), table.get("compared")) == key
        ):
            return table
    return None


def _slashed(recall: Any, digits: int = 1) -> str:
    cells = [fmt_pct((k_get(recall, k) or {}).get("value"), digits) for k in HEADLINE_KS]
    return MISSING if set(cells) == {MISSING} else " / ".join(cells)


def _headline(metrics: Mapping[str, Any]) -> Context:
    """The key figures against their floors, one row each with its audio window."""
    rows: list[list[Any]] = []
    section, _ = get_section(metrics, "retrieval")
    if section is not None:
        found = section_rows(section)
        for window in row_windows(found):
            cells = []
            for predictor in PREDICTOR_ORDER:
                row = find_row(found, window, "cosine", predictor)
                cells.append(_slashed(row.get("recall") if row else None))
            paper = paper_value(metrics, "retrieval", window, "cosine")
            paper_cells = [fmt_num(k_get(paper, k), 1) for k in HEADLINE_KS]
            rows.append(
                [
                    f"recall@{'/'.join(map(str, HEADLINE_KS))}, own face among "
                    f"{as_text(section.get('pool_size'))} (%)",
                    _window_name(window),
                    *cells,
                    MISSING if set(paper_cells) == {MISSING} else " / ".join(paper_cells),
                ]
            )
    attributes, _ = get_section(metrics, "attributes")
    checks = backend_checks(attributes)
    warnings = [
        at_chance_warning(attributes.get("backend"), attribute, check)
        for attribute, check in checks.items()
        if check["at_chance"] and attributes is not None
    ]
    paper = paper_value(metrics, "gender_agreement")
    for reference in ("true_face", "dataset"):
        table = _find_table(attributes, "gender", reference, "s2f")
        if table is None:
            continue
        majority = table.get("majority")
        mark = " ⚠ backend at chance" if checks.get("gender", {}).get("at_chance") else ""
        rows.append(
            [
                f"gender agreement, S2F portrait vs {LABELLING_NAMES[reference]} (%){mark}",
                _window_name(PORTRAIT_WINDOW),
                fmt_figure(table.get("agreement")),
                fmt_figure(table.get("mean_face")),
                f"{fmt_figure(majority, interval=False)} (majority)"
                if isinstance(majority, Mapping)
                else MISSING,
                ", ".join(f"{k} {fmt_pct(v, 0)}" for k, v in paper.items())
                if reference == "true_face" and isinstance(paper, Mapping)
                else MISSING,
            ]
        )
    voices, _ = get_section(metrics, "real_voices")
    judges = _mapping(voices.get("judges")) if voices else {}
    for name, what in (("attributes", "backend reads"), ("nearest", "nearest true face's")):
        judge = judges.get(name)
        if not isinstance(judge, Mapping) or judge.get("value") is None:
            continue
        rows.append(
            [
                f"real voices never heard: portrait's gender ({what}) is the voice's (%)",
                _window_name("clip"),
                _judge_text(judge),
                MISSING,
                f"{fmt_pct(judge.get('one_gender_floor'))} (one gender)",
                MISSING,
            ]
        )
    if not rows:
        return {"skipped": "no retrieval, attribute or real-voice figures"}
    header = ("figure", "audio", "model", "mean face", "chance", "paper")
    return {"table": _table(header, rows, text_cols=2), "warnings": warnings}


def _similarity(metrics: Mapping[str, Any]) -> Context:
    section, reason = get_section(metrics, "similarity")
    if section is None:
        return {"skipped": reason}
    windows = []
    for window in ordered(section.keys(), WINDOW_ORDER):
        stats = _mapping(section[window])
        model, mean_face = _mapping(stats.get("model")), _mapping(stats.get("mean_face"))
        rows = []
        for key in ordered([*SIMILARITY_KEYS, *model.keys()], SIMILARITY_KEYS):
            paper_key = PAPER_SIMILARITY_KEYS.get(key)
            paper = paper_value(metrics, "similarity", window, paper_key) if paper_key else None
            mark = "*" if paper_key in ("l2", "l1") and paper is not None else ""
            rows.append(
                (
                    key,
                    fmt_mean_std(model.get(key)),
                    fmt_mean_std(mean_face.get(key)),
                    fmt_mean_std(paper) + mark if paper is not None else MISSING,
                )
            )
        windows.append((window, _table(("", "model", "mean face", "paper"), rows)))
    return {"windows": windows}


def _retrieval_table(
    metrics: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], ks: Sequence[int], window: Any
) -> Table:
    body = []
    here = [r for r in rows if r.get("window") == window]
    for metric in ordered((r.get("metric") for r in here), METRIC_ORDER):
        predictors = ordered(
            (r.get("predictor") for r in here if r.get("metric") == metric), PREDICTOR_ORDER
        )
        for predictor in predictors:
            row = find_row(here, window, metric, predictor)
            recall = row.get("recall") if row else None
            body.append(
                [
                    metric,
                    PREDICTOR_NAMES.get(predictor, predictor),
                    *(fmt_figure(k_get(recall, k)) for k in ks),
                ]
            )
        paper = paper_value(metrics, "retrieval", window, metric)
        if isinstance(paper, Mapping):
            body.append([metric, "paper", *(fmt_num(k_get(paper, k), 1) for k in ks)])
    header = ("metric", "", *(f"R@{k} (%)" for k in ks))
    return _table(header, body, text_cols=2)


def _retrieval(metrics: Mapping[str, Any], plots: Mapping[str, str]) -> Context:
    context: Context = {}
    section, reason = get_section(metrics, "retrieval")
    if section is None:
        context["skipped"] = reason
    else:
        rows = section_rows(section)
        ks = section_ks(section, rows)
        context["pool_size"] = section.get("pool_size")
        context["pool_requested"] = section.get("pool_requested")
        context["windows"] = [
            (window, _retrieval_table(metrics, rows, ks, window)) for window in row_windows(rows)
        ]
        context["plot"] = _plot(plots, "recall_at_k", "recall at K per window")
    context["speakers"] = _speaker_retrieval(metrics)
    context["judge"] = _judge(metrics)
    pooled, reason = get_section(metrics, "pooled_retrieval")
    if pooled is None:
        context["pooled"] = {"skipped": reason}
        return context
    rows = section_rows(pooled)
    ks = section_ks(pooled, rows)
    context["pooled"] = {
        **{k: pooled.get(k) for k in ("pool_size", "num_pools", "window", "features")},
        "features_note": pooled.get("features_note") or None,
        "self_judged": pooled.get("features")
        == _mapping(metrics.get("checkpoint")).get("face_encoder"),
        "tables": [_retrieval_table({}, rows, ks, window) for window in row_windows(rows)],
    }
    return context


def _speaker_retrieval(metrics: Mapping[str, Any]) -> Context:
    """The per-speaker rows: predictions averaged over each speaker's segments."""
    section, reason = get_section(metrics, "speaker_retrieval")
    if section is None:
        return {"skipped": reason}
    rows = section_rows(section)
    ks = section_ks(section, rows)
    spread = _mapping(section.get("segments_per_speaker"))
    return {
        "speakers": section.get("speakers"),
        "segments": section.get("segments"),
        "per_speaker": f"{as_text(spread.get('min'))} to {as_text(spread.get('max'))}",
        "windows": [
            (window, _retrieval_table({}, rows, ks, window)) for window in row_windows(rows)
        ],
    }


def _judge(metrics: Mapping[str, Any]) -> Context:
    """The independent judge's figures beside the training encoder's."""
    section, reason = get_section(metrics, "judge")
    if section is None:
        return {"skipped": reason}
    rows = section_rows(section)
    ks = section_ks(section, rows)
    nearest = nearest_by_judge(section)
    body = []
    for row in rows:
        judge, predictor = row.get("judge"), row.get("predictor")
        key = ("chance", "chance") if predictor == "chance" else (judge, predictor)
        body.append(
            [
                as_text(judge),
                PREDICTOR_NAMES.get(predictor, as_text(predictor)),
                *(fmt_figure(k_get(row.get("recall"), k)) for k in ks),
                fmt_figure(nearest.get(key)),
            ]
        )
    header = ("judge", "portrait", *(f"R@{k} (%)" for k in ks), "own face nearest (%)")
    judge, training = section.get("judge"), section.get("training_encoder")
    if section.get("same_as_training"):
        warning = (
            f"the judge ({as_text(judge)}) is the encoder the decoder was trained against: "
            "these figures measure how well the portraits please it"
        )
    else:
        warning = None
    return {
        "judge": judge,
        "description": section.get("description"),
        "training_encoder": training,
        "training_rows": bool(section.get("training_rows")),
        "pool_size": section.get("pool_size"),
        "num_pools": section.get("num_pools"),
        "window": section.get("window"),
        "warning": warning,
        "table": _table(header, body, text_cols=2),
    }


def _confusion(table: Mapping[str, Any], ref: Any, cmp_: Any) -> Context:
    classes = list(table.get("classes") or [])
    counts = table.get("counts") or []
    norm = table.get("normalised") or []
    rows = []
    for i, cls in enumerate(classes):
        count_row = counts[i] if i < len(counts) and isinstance(counts[i], list) else []
        norm_row = norm[i] if i < len(norm) and isinstance(norm[i], list) else []
        cells = []
        for j in range(len(classes)):
            share = norm_row[j] if j < len(norm_row) else None
            count = count_row[j] if j < len(count_row) else None
            cells.append(f"{fmt_pct(share)} ({as_text(count)})" if is_number(share) else MISSING)
        rows.append((cls, cells))
    return {
        "corner": f"{as_text(ref)} \u2193 / {as_text(cmp_)} \u2192",
        "classes": classes,
        "rows": rows,
    }


def _attribute_table(
    metrics: Mapping[str, Any], plots: Mapping[str, str], name: str, table: Mapping[str, Any]
) -> Context:
    ref = LABELLING_NAMES.get(table.get("reference"), table.get("reference"))
    cmp_ = LABELLING_NAMES.get(table.get("compared"), table.get("compared"))
    floors = [
        f"{label} {fmt_figure(table.get(key))} %"
        for key, label in (("mean_face", "mean-face portrait"), ("majority", "majority class"))
        if isinstance(table.get(key), Mapping)
    ]
    paper_key = paper_attribute_key(table)
    paper = paper_value(metrics, paper_key) if paper_key else None
    per_class = table.get("per_class")
    return {
        "attribute": table.get("attribute"),
        "reference": ref,
        "compared": cmp_,
        "agreement": fmt_figure(table.get("agreement")),
        "floors": "; ".join(floors) or None,
        "samples": table.get("samples"),
        "confusion": _confusion(table, ref, cmp_),
        "per_class": (
            _table(
                ("class", "agreement (%)", "paper (%)"),
                [
                    (
                        cls,
                        fmt_pct(share),
                        fmt_pct(k_get(paper, cls)) if isinstance(paper, Mapping) else MISSING,
                    )
                    for cls, share in per_class.items()
                ],
            )
            if isinstance(per_class, Mapping) and per_class
            else None
        ),
        "plot": _plot(plots, name, f"confusion matrix, {name}"),
    }


def _attributes(metrics: Mapping[str, Any], plots: Mapping[str, str]) -> Context:
    section, reason = get_section(metrics, "attributes")
    if section is None:
        return {"skipped": reason}
    missing = section.get("missing")
    skipped = section.get("skipped_tables")
    left_out = []
    for item in skipped if isinstance(skipped, list) else []:
        item = item if isinstance(item, Mapping) else {"reason": item}
        ref = item.get("reference")
        left_out.append((item.get("attribute"), LABELLING_NAMES.get(ref, ref), item.get("reason")))
    checks = backend_checks(section)
    return {
        "backend": section.get("backend"),
        "description": section.get("description"),
        "warnings": {
            attribute: at_chance_warning(section.get("backend"), attribute, check)
            for attribute, check in checks.items()
            if check["at_chance"]
        },
        "attributes": ", ".join(map(str, section.get("attributes") or [])) or None,
        "missing": list(missing.items()) if isinstance(missing, Mapping) else [],
        "tables": [
            _attribute_table(metrics, plots, name, table)
            for name, table in confusion_names(metrics).items()
        ],
        "left_out": left_out,
    }


def _craniofacial(metrics: Mapping[str, Any], plots: Mapping[str, str]) -> Context:
    section, reason = get_section(metrics, "craniofacial")
    if section is None:
        return {"skipped": reason}
    items = section.get("measurements")
    rows = [
        (
            m.get("name"),
            fmt_num(m.get("r")),
            fmt_p(m.get("p")),
            fmt_p(m.get("p_permutation")),
            fmt_num(m.get("null_r95")),
            fmt_num(m.get("random_r")),
            fmt_num(m.get("paper_r")),
        )
        for m in (items if isinstance(items, list) else [])
        if isinstance(m, Mapping)
    ]
    header = ("measurement", "r", "p (t)", "p (permutation)", "|r| 95 % null", "random r")
    return {
        "detected": section.get("detected"),
        "samples": section.get("samples"),
        "permutations": section.get("permutations"),
        "paper_random_r": fmt_num(section.get("paper_random_r")),
        "table": _table((*header, "paper r"), rows),
        "plot": _plot(plots, "craniofacial", "craniofacial correlations"),
    }


def _judge_text(judge: Any) -> str:
    if not isinstance(judge, Mapping) or judge.get("value") is None:
        return MISSING
    return f"{fmt_figure(judge)} ({as_text(judge.get('hits'))} of {as_text(judge.get('total'))})"


def _real_voices(metrics: Mapping[str, Any]) -> Context:
    section, reason = get_section(metrics, "real_voices")
    if section is None:
        return {"skipped": reason}
    judges = [
        (
            name,
            _judge_text(judge),
            fmt_pct(judge.get("one_gender_floor")) if isinstance(judge, Mapping) else MISSING,
        )
        for name, judge in _mapping(section.get("judges")).items()
    ]
    rows = [
        {
            **{k: row.get(k) for k in ("file", "engine", "voice", "language", "licence")},
            "audio": safe_src(row.get("audio")),
            "portrait": safe_src(row.get("portrait")),
            "note": as_text(row.get("note") or MISSING),
            "labels": [fmt_label(row.get(k)) for k in ("gender", "attributes", "nearest")],
        }
        for row in section.get("rows") or []
        if isinstance(row, Mapping)
    ]
    return {
        "genders": _mapping(section.get("genders")),
        "source": section.get("source"),
        "judges": (
            _table(("judge", "voice's gender", "one-gender floor"), judges) if judges else None
        ),
        "notes": list(section.get("notes") or []),
        "contact_sheet": safe_src(section.get("contact_sheet")),
        "header": ("voice", "player", "portrait", "gender", "attributes say", "nearest face"),
        "rows": rows,
    }


def interval_sentence(metrics: Mapping[str, Any]) -> str:
    """What a bracketed figure is: ``95 % interval [low, high]: speakers resampled (...)``."""
    section = _mapping(metrics.get("intervals"))
    if section.get("unit") != "speaker":
        return "Value [95 % bootstrap interval]."
    same = section.get("speakers") == section.get("samples")
    return (
        f"Value [95 % interval: a bootstrap over speakers, each drawn with all its segments, "
        f"{section.get('speakers')} speakers, {section.get('samples')} segments, "
        f"{section.get('resamples')} resamples]."
        + (
            " Each speaker has one segment here, so this is also a bootstrap over segments."
            if same
            else ""
        )
    )


def render_html(metrics: Mapping[str, Any]) -> str:
    """The report as one HTML5 document; plot paths are read from ``metrics["plots"]``."""
    plots = _mapping(metrics.get("plots"))
    return _TEMPLATES.get_template("report.html").render(
        header=_header(metrics),
        headline=_headline(metrics),
        gallery=_gallery(metrics),
        similarity=_similarity(metrics),
        retrieval=_retrieval(metrics, plots),
        attributes=_attributes(metrics, plots),
        craniofacial=_craniofacial(metrics, plots),
        real_voices=_real_voices(metrics),
        interval=interval_sentence(metrics),
        footer={k: metrics.get(k) for k in ("created", "speech2face_version", "schema", "version")},
    )


def write_report(metrics: dict[str, Any], out_dir: Path) -> None:
    """Write the plots and ``report.html`` under ``out_dir``; set ``metrics["plots"]``.

    ``out_dir`` already holds the gallery's media (paths in ``metrics["gallery"]``). Plots go
    to ``out_dir / "media/plots"``; ``metrics["plots"]`` becomes ``{name: relative posix
    path}`` (``recall_at_k``, ``confusion_<attribute>_<compared>_vs_<reference>``,
    ``craniofacial``, each when its section has data). Raises ``ValueError`` for a schema
    version other than :data:`SCHEMA_VERSION`.
    """
    version = metrics.get("version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise ValueError(
            f"metrics schema version {version!r}; this report reads version {SCHEMA_VERSION}"
        )
    out_dir = Path(out_dir)
    metrics["plots"] = write_plots(metrics, out_dir)
    (out_dir / REPORT_NAME).write_text(render_html(metrics), encoding="utf-8")
