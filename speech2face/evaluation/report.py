"""The evaluation's report: plots, a self-contained ``report.html`` and a terminal summary.

:func:`write_report` reads the metrics dict of ``s2f-eval`` (schema version 1, documented in
``docs/evaluation.md``) and writes, under the run's output directory::

    media/plots/recall_at_k.png          recall@K per window: model, mean face, chance, paper
    media/plots/confusion_<...>.png      one heatmap per attribute table
    media/plots/craniofacial.png         Pearson r per measurement beside random and paper
    report.html                          every figure beside the paper's, gallery, plots

``report.html`` has inline CSS, no scripts, and refers only to files under the output
directory by relative paths, so it opens from disk with no network. Every string taken
from the metrics (keys, speakers, notes, reasons) is HTML-escaped. Missing sections and
sections of the form ``{"skipped": reason}`` render as text instead of failing.

:func:`summary_table` is the short plain-text version printed by the command line.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

SCHEMA_VERSION = 1
PLOTS_DIR = PurePosixPath("media") / "plots"
REPORT_NAME = "report.html"
PLOT_DPI = 100
GALLERY_IMAGE_PX = 128  # displayed width and height of each gallery portrait
SHA_SHORT = 12  # hex digits of the checkpoint's sha256 shown
MISSING = "\u2013"  # en dash for a figure that does not exist (None, NaN, absent)
PERCENT = 100.0  # recalls and shares are fractions in [0, 1]; tables show percent

WINDOW_ORDER = ("3s", "6s", "clip")
METRIC_ORDER = ("cosine", "l2", "l1")
PREDICTOR_ORDER = ("model", "mean_face", "chance")
SIMILARITY_KEYS = ("angle_deg", "cosine", "l2_unit", "l1_unit", "l2_raw", "l1_raw")
# Our similarity key -> the paper's key set beside it (its L2/L1 scale is unstated).
PAPER_SIMILARITY_KEYS = {"angle_deg": "angle_deg", "l2_unit": "l2", "l1_unit": "l1"}
SUMMARY_KS = (1, 5, 10)
P_VALUE_FLOOR = 1e-3  # smaller p-values are shown in scientific notation

PREDICTOR_NAMES = {"model": "model", "mean_face": "mean face", "chance": "chance"}
LABELLING_NAMES = {
    "true_face": "true face",
    "dataset": "dataset labels",
    "s2f": "S2F",
    "f2f": "F2F",
}
PLOT_COLORS = {"model": "tab:blue", "mean_face": "tab:orange", "chance": "tab:gray"}
METRIC_LINESTYLES = {"cosine": "-", "l2": "--", "l1": ":"}
PAPER_MARKERS = {"cosine": "o", "l2": "s", "l1": "^"}

CSS = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f2f2f2; } td.text, th.text { text-align: left; }
td.empty { background: #e6e6e6; color: #888; }
.skipped { color: #a05000; font-style: italic; }
.note { color: #555; font-size: 0.9em; }
figure { margin: 0.8em 0; } img.plot { max-width: 100%; height: auto; }
footer { margin-top: 3em; color: #666; font-size: 0.85em; }
"""


# ---------------------------------------------------------------- value formatting


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _esc(x: Any) -> str:
    """Escaped text of any value; ``None`` as an en dash."""
    if x is None:
        return MISSING
    if isinstance(x, float) and not math.isfinite(x):
        return MISSING
    if isinstance(x, dict | list | tuple):
        return html.escape(json.dumps(x, default=str))
    return html.escape(str(x))


def _num(x: Any, digits: int = 2) -> str:
    return f"{x:.{digits}f}" if _is_number(x) else MISSING


def _pct(x: Any, digits: int = 1) -> str:
    """A fraction in [0, 1] as a percentage (no sign)."""
    return f"{x * PERCENT:.{digits}f}" if _is_number(x) else MISSING


def _p_value(p: Any) -> str:
    """A p-value: three decimals, or scientific notation under 0.001."""
    if not _is_number(p):
        return MISSING
    return f"{p:.1e}" if p < P_VALUE_FLOOR else f"{p:.3f}"


def _label(x: Any) -> str:
    """A predicted or dataset label: whole floats (ages) without decimals."""
    if isinstance(x, float) and math.isfinite(x):
        return str(int(x)) if x.is_integer() else f"{x:.1f}"
    return _esc(x) if x is not None else MISSING


def _figure_pct(fig: Any, interval: bool = True) -> str:
    """``{"value", "low", "high"}`` as ``v [l, h]`` in percent; ``-`` when absent."""
    if not isinstance(fig, Mapping) or not _is_number(fig.get("value")):
        return MISSING
    text = _pct(fig["value"])
    low, high = fig.get("low"), fig.get("high")
    if interval and _is_number(low) and _is_number(high) and low != high:
        text += f" [{_pct(low)}, {_pct(high)}]"
    return text


def _mean_std(stat: Any, digits: int = 2) -> str:
    """``{"mean", "std"}`` or the paper's ``[mean, std]`` as ``m ± s``."""
    if isinstance(stat, Mapping):
        mean, std = stat.get("mean"), stat.get("std")
    elif isinstance(stat, Sequence) and not isinstance(stat, str) and len(stat) == 2:
        mean, std = stat
    else:
        return MISSING
    if not _is_number(mean):
        return MISSING
    return f"{mean:.{digits}f} \u00b1 {_num(std, digits)}"


# ---------------------------------------------------------------- schema access


def _section(metrics: Mapping[str, Any], key: str) -> tuple[Mapping[str, Any] | None, str | None]:
    """``(section, None)``, or ``(None, reason)`` when absent, skipped or malformed."""
    value = metrics.get(key)
    if value is None:
        return None, "not computed"
    if not isinstance(value, Mapping):
        return None, "malformed section"
    if isinstance(value.get("skipped"), str):
        return None, value["skipped"]
    return value, None


def _k_get(mapping: Any, k: Any) -> Any:
    """``mapping[K]`` with K a string (JSON) or an int (before serialisation)."""
    if not isinstance(mapping, Mapping):
        return None
    for key in (str(k), k):
        if key in mapping:
            return mapping[key]
    if isinstance(k, str) and k.isdigit():
        return mapping.get(int(k))
    return None


def _ks(section: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """The section's K values, or those found in its rows' recalls."""
    ks = section.get("ks")
    if isinstance(ks, Sequence) and ks:
        return [int(k) for k in ks]
    found = {int(k) for row in rows for k in (row.get("recall") or {}) if str(k).isdigit()}
    return sorted(found)


def _rows(section: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    rows = section.get("rows")
    return [r for r in rows if isinstance(r, Mapping)] if isinstance(rows, list) else []


def _ordered(values: Iterable[Any], order: Sequence[str]) -> list[Any]:
    """Distinct ``values`` in first-seen order, those named in ``order`` first."""
    seen = list(dict.fromkeys(values))
    return [v for v in order if v in seen] + [v for v in seen if v not in order]


def _find_row(
    rows: Sequence[Mapping[str, Any]], window: Any, metric: Any, predictor: Any
) -> Mapping[str, Any] | None:
    for row in rows:
        if (row.get("window"), row.get("metric"), row.get("predictor")) == (
            window,
            metric,
            predictor,
        ):
            return row
    return None


def _paper(metrics: Mapping[str, Any], *keys: Any) -> Any:
    """``metrics["paper"][k0][k1]...`` or ``None``."""
    node: Any = metrics.get("paper")
    for key in keys:
        node = _k_get(node, key) if isinstance(node, Mapping) else None
        if node is None:
            return None
    return node


def _paper_attribute_key(table: Mapping[str, Any]) -> str | None:
    """The paper's per-class figures comparable with an attribute table, if any.

    The paper compares portraits with the true face's predicted label: gender agreement per
    class and the diagonal of the ethnicity matrix, for S2F and for F2F.
    """
    if table.get("reference") != "true_face":
        return None
    base = {"gender": "gender_agreement", "ethnicity": "ethnicity_diagonal"}.get(
        table.get("attribute")
    )
    suffix = {"s2f": "", "f2f": "_f2f"}.get(table.get("compared"))
    return None if base is None or suffix is None else base + suffix


def _safe_src(path: Any) -> str | None:
    """A media path as a URL relative to the output directory, or ``None`` if it could
    leave it (absolute, ``..``, a scheme, a backslash)."""
    if not isinstance(path, str) or not path or "\\" in path or ":" in path:
        return None
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts:
        return None
    return html.escape(quote(pure.as_posix()), quote=True)


def _plot_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "plot"


# ---------------------------------------------------------------- plots


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, out_dir: Path, name: str) -> str:
    """Save ``fig`` as ``media/plots/<name>.png``, close it, return the relative path."""
    rel = PLOTS_DIR / f"{name}.png"
    try:
        fig.savefig(out_dir / rel, dpi=PLOT_DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    return rel.as_posix()


def _nan(x: Any) -> float:
    return float(x) if _is_number(x) else math.nan


def _plot_recall(plt: Any, metrics: Mapping[str, Any], out_dir: Path) -> str | None:
    """Recall@K (percent) against K, one panel per window."""
    section, _ = _section(metrics, "retrieval")
    rows = _rows(section) if section else []
    if not rows:
        return None
    ks = _ks(section, rows)
    windows = _ordered((r.get("window") for r in rows), WINDOW_ORDER)
    fig, axes = plt.subplots(
        1, len(windows), figsize=(4.2 * len(windows), 3.6), squeeze=False, sharey=True
    )
    for ax, window in zip(axes[0], windows, strict=True):
        metrics_here = _ordered((r.get("metric") for r in rows if r.get("window") == window), ())
        for metric in _ordered(metrics_here, METRIC_ORDER):
            for predictor in PREDICTOR_ORDER:
                row = _find_row(rows, window, metric, predictor)
                if row is None:
                    continue
                figs = [_k_get(row.get("recall"), k) or {} for k in ks]
                value = [PERCENT * _nan(f.get("value")) for f in figs]
                ax.plot(
                    ks,
                    value,
                    linestyle=METRIC_LINESTYLES.get(metric, "-."),
                    color=PLOT_COLORS.get(predictor, "black"),
                    marker=".",
                    label=f"{PREDICTOR_NAMES.get(predictor, predictor)} ({metric})",
                )
                if predictor != "chance" and metric == "cosine":
                    ax.fill_between(
                        ks,
                        [PERCENT * _nan(f.get("low")) for f in figs],
                        [PERCENT * _nan(f.get("high")) for f in figs],
                        color=PLOT_COLORS.get(predictor, "black"),
                        alpha=0.15,
                        linewidth=0,
                    )
            paper = _paper(metrics, "retrieval", window, metric)
            if isinstance(paper, Mapping):
                pks = [k for k in ks if _is_number(_k_get(paper, k))]
                if pks:
                    ax.plot(
                        pks,
                        [_k_get(paper, k) for k in pks],
                        linestyle="none",
                        marker=PAPER_MARKERS.get(metric, "x"),
                        markerfacecolor="none",
                        color="black",
                        label=f"paper ({metric})",
                    )
        ax.set_title(f"window {window}")
        ax.set_xlabel("K")
        ax.set_xticks(ks)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("recall@K (%)")
    legend: dict[str, Any] = {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    axes[0][-1].legend(
        legend.values(),
        legend.keys(),
        fontsize="x-small",
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
    )
    return _save(plt, fig, out_dir, "recall_at_k")


def _plot_confusion(plt: Any, table: Mapping[str, Any], out_dir: Path, name: str) -> str | None:
    """Row-normalised confusion heatmap; rows without faces (``null``) in grey."""
    import numpy as np

    classes = [str(c) for c in table.get("classes") or []]
    norm = table.get("normalised") or []
    n = len(classes)
    if n == 0 or len(norm) != n:
        return None
    values = np.array([[_nan(v) for v in (row or [None] * n)] for row in norm], dtype=float)
    if values.shape != (n, n):
        return None
    import matplotlib

    cmap = matplotlib.colormaps["Blues"].with_extremes(bad="lightgrey")
    side = max(3.0, 0.55 * n + 1.8)
    fig, ax = plt.subplots(figsize=(side, side * 0.9))
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=0.0, vmax=1.0)
    for i in range(n):
        for j in range(n):
            if math.isfinite(values[i, j]):
                ax.text(
                    j,
                    i,
                    f"{values[i, j] * PERCENT:.0f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if values[i, j] > 0.5 else "black",
                )
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ref = LABELLING_NAMES.get(table.get("reference"), str(table.get("reference")))
    cmp_ = LABELLING_NAMES.get(table.get("compared"), str(table.get("compared")))
    ax.set_ylabel(ref)
    ax.set_xlabel(cmp_)
    ax.set_title(f"{table.get('attribute')}: {cmp_} vs {ref} (% of row)", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return _save(plt, fig, out_dir, name)


def _plot_craniofacial(plt: Any, metrics: Mapping[str, Any], out_dir: Path) -> str | None:
    """Grouped bars of Pearson r per measurement: ours, random pairing, the paper's."""
    import numpy as np

    section, _ = _section(metrics, "craniofacial")
    items = section.get("measurements") if section else None
    if not isinstance(items, list) or not items:
        return None
    names = [str(m.get("name")) for m in items]
    x = np.arange(len(names))
    width = 0.27
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(names) + 2.0), 3.6))
    for offset, key, label, color in (
        (-width, "r", "S2F vs F2F", "tab:blue"),
        (0.0, "random_r", "random pairs", "silver"),
        (width, "paper_r", "paper", "black"),
    ):
        ax.bar(x + offset, [_nan(m.get(key)) for m in items], width, label=label, color=color)
    paper_random = section.get("paper_random_r")
    if _is_number(paper_random):
        ax.axhline(paper_random, color="black", linestyle=":", linewidth=1, label="paper random")
    ax.axhline(0.0, color="black", linewidth=0.5)
    ax.set_xticks(x, names, rotation=45, ha="right")
    ax.set_ylabel("Pearson r")
    ax.legend(fontsize="x-small")
    ax.grid(axis="y", alpha=0.3)
    return _save(plt, fig, out_dir, "craniofacial")


def _write_plots(metrics: Mapping[str, Any], out_dir: Path) -> dict[str, str]:
    """Every plot the metrics allow: ``{name: path relative to out_dir}``."""
    plt = _pyplot()
    (out_dir / PLOTS_DIR).mkdir(parents=True, exist_ok=True)
    plots: dict[str, str] = {}
    recall = _plot_recall(plt, metrics, out_dir)
    if recall:
        plots["recall_at_k"] = recall
    for name, table in _confusion_names(metrics).items():
        path = _plot_confusion(plt, table, out_dir, name)
        if path:
            plots[name] = path
    cranio = _plot_craniofacial(plt, metrics, out_dir)
    if cranio:
        plots["craniofacial"] = cranio
    return plots


def _confusion_names(metrics: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """A distinct file-safe plot name for each attribute table, in table order."""
    section, _ = _section(metrics, "attributes")
    tables = section.get("tables") if section else None
    names: dict[str, Mapping[str, Any]] = {}
    for table in tables if isinstance(tables, list) else []:
        if not isinstance(table, Mapping):
            continue
        attribute, compared, reference = (
            table.get(k) for k in ("attribute", "compared", "reference")
        )
        base = _plot_name(f"confusion_{attribute}_{compared}_vs_{reference}")
        name, i = base, 2
        while name in names:
            name, i = f"{base}_{i}", i + 1
        names[name] = table
    return names


# ---------------------------------------------------------------- html sections


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], text_cols: int = 1) -> str:
    """An HTML table; cells are already-escaped HTML; the first ``text_cols`` left-aligned."""

    def cell(tag: str, i: int, content: str) -> str:
        cls = ' class="text"' if i < text_cols else ""
        if content == MISSING and tag == "td":
            cls = ' class="empty"'
        return f"<{tag}{cls}>{content}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>\n" for row in rows
    )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>\n"


def _skipped(reason: str | None) -> str:
    return f'<p class="skipped">Skipped: {_esc(reason)}</p>\n'


def _plot_img(plots: Mapping[str, str], name: str, alt: str) -> str:
    src = _safe_src(plots.get(name))
    if src is None:
        return ""
    return f'<figure><img class="plot" src="{src}" alt="{_esc(alt)}"></figure>\n'


def _html_header(metrics: Mapping[str, Any]) -> str:
    ckpt = metrics.get("checkpoint") if isinstance(metrics.get("checkpoint"), Mapping) else {}
    data = metrics.get("data") if isinstance(metrics.get("data"), Mapping) else {}
    sha = ckpt.get("sha256")
    rows = [
        ("checkpoint", _esc(ckpt.get("path"))),
        ("sha256", _esc(sha[:SHA_SHORT] if isinstance(sha, str) else None)),
        ("step", _esc(ckpt.get("step"))),
        ("face encoder", _esc(ckpt.get("face_encoder"))),
        ("feature dim", _esc(ckpt.get("feature_dim"))),
        ("training window (s)", _esc(ckpt.get("window_seconds"))),
        ("data root", _esc(data.get("root"))),
        ("split", _esc(data.get("split"))),
        ("samples", _esc(data.get("samples"))),
        ("speakers", _esc(data.get("speakers"))),
        ("dataset labels", _esc(", ".join(map(str, data.get("labels") or [])) or None)),
    ]
    out = ["<h1>Speech2Face evaluation</h1>\n", _table(("", "value"), rows, text_cols=2)]
    settings = metrics.get("settings")
    if isinstance(settings, Mapping) and settings:
        out.append("<h3>Settings</h3>\n")
        out.append(
            _table(("setting", "value"), ((_esc(k), _esc(v)) for k, v in settings.items()), 2)
        )
    notes = metrics.get("notes")
    if isinstance(notes, list) and notes:
        out.append("<h3>Notes</h3>\n<ul>\n")
        out.extend(f"<li>{_esc(note)}</li>\n" for note in notes)
        out.append("</ul>\n")
    windows = metrics.get("windows")
    if isinstance(windows, Mapping) and windows:
        out.append("<h3>Audio windows</h3>\n<ul>\n")
        for name, info in windows.items():
            desc = info.get("description") if isinstance(info, Mapping) else info
            out.append(f"<li><b>{_esc(name)}</b>: {_esc(desc)}</li>\n")
        out.append("</ul>\n")
    return "".join(out)


def _labels_text(labels: Any) -> str:
    if not isinstance(labels, Mapping) or not labels:
        return MISSING
    return "<br>".join(f"{_esc(k)}: {_label(v)}" for k, v in labels.items())


def _html_gallery(metrics: Mapping[str, Any]) -> str:
    gallery = metrics.get("gallery")
    out = ["<h2>Gallery</h2>\n"]
    if not isinstance(gallery, list) or not gallery:
        return out[0] + _skipped("no gallery")
    images = (("true", "true face"), ("f2f", "F2F"), ("s2f", "S2F"), ("infer", "s2f-infer"))
    header = ["speaker", "voice", *(title for _, title in images), "dataset labels"]
    rows = []
    for entry in gallery:
        if not isinstance(entry, Mapping):
            continue
        predicted = entry.get("predicted") if isinstance(entry.get("predicted"), Mapping) else {}
        speaker = _esc(entry.get("speaker"))
        row = [f'{speaker}<br><span class="note">{_esc(entry.get("key"))}</span>']
        audio = _safe_src(entry.get("audio"))
        row.append(f'<audio controls preload="none" src="{audio}"></audio>' if audio else MISSING)
        for image, title in images:
            src = _safe_src(entry.get(image))
            cell = (
                f'<img src="{src}" width="{GALLERY_IMAGE_PX}" height="{GALLERY_IMAGE_PX}" '
                f'alt="{_esc(title)} of {speaker}">'
                if src
                else MISSING
            )
            if image == "infer" and not src and entry.get("infer_note"):
                cell += f'<br><span class="note">{_esc(entry["infer_note"])}</span>'

            if image in predicted:
                cell += f'<br><span class="note">{_labels_text(predicted[image])}</span>'
            row.append(cell)
        row.append(_labels_text(entry.get("labels")))
        rows.append(row)
    out.append(_table(header, rows, text_cols=len(header)))
    out.append(
        '<p class="note">Under each image: the attribute backend\'s labels for it. '
        "F2F: the decoder on the true face's feature; S2F: on the voice's prediction from "
        "its 6 s window (the figures' protocol); s2f-infer: the portrait <code>s2f-infer</code> "
        "draws from the whole segment (silence left out, its windows averaged).</p>\n"
    )
    return "".join(out)


def _judge_text(judge: Any) -> str:
    if not isinstance(judge, Mapping) or judge.get("value") is None:
        return MISSING
    text = f"{_figure_pct(judge)} ({_esc(judge.get('hits'))} of {_esc(judge.get('total'))})"
    return text


def _html_real_voices(metrics: Mapping[str, Any]) -> str:
    out = ["<h2>Real voices</h2>\n"]
    section, reason = _section(metrics, "real_voices")
    if section is None:
        return out[0] + _skipped(reason)
    genders = section.get("genders") if isinstance(section.get("genders"), Mapping) else {}
    out.append(
        '<p class="note">Voices the model never heard: other speech engines than the '
        "training corpus's and recordings of people "
        f"({_esc(genders.get('female'))} female, {_esc(genders.get('male'))} male; "
        f"set: {_esc(section.get('source'))}). Each portrait is drawn as <code>s2f-infer</code> "
        "draws it. Two judges: the attribute backend reading the portrait, and the dataset "
        "gender of the evaluated split's true face nearest to the predicted feature. A model "
        "that ignored the voice would say one gender for all: the floor is the larger "
        "gender's share.</p>\n"
    )
    judges = section.get("judges") if isinstance(section.get("judges"), Mapping) else {}
    rows = [
        (
            _esc(name),
            _judge_text(judge),
            _pct(judge.get("one_gender_floor")) if isinstance(judge, Mapping) else MISSING,
        )
        for name, judge in judges.items()
    ]
    if rows:
        out.append(_table(("judge", "voice's gender", "one-gender floor"), rows, text_cols=1))
    for note in section.get("notes") or []:
        out.append(f'<p class="note">{_esc(note)}</p>\n')
    sheet = _safe_src(section.get("contact_sheet"))
    if sheet:
        out.append(
            f'<figure><img class="plot" src="{sheet}" alt="contact sheet of the portraits">'
            "<figcaption>Portraits of the female voices (upper rows) and of the male voices "
            "(lower rows).</figcaption></figure>\n"
        )
    body = []
    for row in section.get("rows") or []:
        if not isinstance(row, Mapping):
            continue
        audio = _safe_src(row.get("audio"))
        portrait = _safe_src(row.get("portrait"))
        body.append(
            (
                f"{_esc(row.get('file'))}<br>"
                f'<span class="note">{_esc(row.get("engine"))} {_esc(row.get("voice"))}, '
                f"{_esc(row.get('language'))}; {_esc(row.get('licence'))}</span>",
                f'<audio controls preload="none" src="{audio}"></audio>' if audio else MISSING,
                f'<img src="{portrait}" width="{GALLERY_IMAGE_PX}" '
                f'height="{GALLERY_IMAGE_PX}" alt="portrait of {_esc(row.get("file"))}">'
                if portrait
                else _esc(row.get("note") or MISSING),
                _label(row.get("gender")),
                _label(row.get("attributes")),
                _label(row.get("nearest")),
            )
        )
    if body:
        header = ("voice", "player", "portrait", "gender", "attributes say", "nearest face")
        out.append(_table(header, body, text_cols=len(header)))
    return "".join(out)


def _html_similarity(metrics: Mapping[str, Any]) -> str:
    out = ["<h2>Feature similarity</h2>\n"]
    section, reason = _section(metrics, "similarity")
    if section is None:
        return out[0] + _skipped(reason)
    for window in _ordered(section.keys(), WINDOW_ORDER):
        stats = section[window] if isinstance(section[window], Mapping) else {}
        model = stats.get("model") if isinstance(stats.get("model"), Mapping) else {}
        mean_face = stats.get("mean_face") if isinstance(stats.get("mean_face"), Mapping) else {}
        keys = _ordered([*SIMILARITY_KEYS, *model.keys()], SIMILARITY_KEYS)
        rows = []
        for key in keys:
            paper_key = PAPER_SIMILARITY_KEYS.get(key)
            paper = _paper(metrics, "similarity", window, paper_key) if paper_key else None
            mark = "*" if paper_key in ("l2", "l1") and paper is not None else ""
            rows.append(
                (
                    _esc(key),
                    _mean_std(model.get(key)),
                    _mean_std(mean_face.get(key)),
                    _mean_std(paper) + mark if paper is not None else MISSING,
                )
            )
        out.append(f"<h3>Window {_esc(window)}</h3>\n")
        out.append(_table(("", "model", "mean face", "paper"), rows))
    out.append(
        '<p class="note">Mean \u00b1 std over test pairs. * The paper\'s L2 and L1 are on an '
        "unstated feature scale: they are not the unit-vector distances l2_unit / l1_unit "
        "(about 0.23 times them at the same angle, an estimate); see "
        "<code>speech2face.metrics.similarity</code>. The angle compares directly.</p>\n"
    )
    return "".join(out)


def _retrieval_table(
    metrics: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], ks: Sequence[int], window: Any
) -> str:
    body = []
    here = [r for r in rows if r.get("window") == window]
    for metric in _ordered((r.get("metric") for r in here), METRIC_ORDER):
        predictors = _ordered(
            (r.get("predictor") for r in here if r.get("metric") == metric), PREDICTOR_ORDER
        )
        for predictor in predictors:
            row = _find_row(here, window, metric, predictor)
            recall = row.get("recall") if row else None
            body.append(
                [
                    _esc(metric),
                    _esc(PREDICTOR_NAMES.get(predictor, predictor)),
                    *(_figure_pct(_k_get(recall, k)) for k in ks),
                ]
            )
        paper = _paper(metrics, "retrieval", window, metric)
        if isinstance(paper, Mapping):
            body.append(
                [
                    _esc(metric),
                    "paper",
                    *(_num(_k_get(paper, k), 1) for k in ks),
                ]
            )
    header = ("metric", "", *(f"R@{k} (%)" for k in ks))
    return _table(header, body, text_cols=2)


def _html_retrieval(metrics: Mapping[str, Any], plots: Mapping[str, str]) -> str:
    out = ["<h2>Retrieval</h2>\n"]
    section, reason = _section(metrics, "retrieval")
    if section is None:
        out.append(_skipped(reason))
    else:
        rows = _rows(section)
        ks = _ks(section, rows)
        out.append(
            f"<p>Recall@K of each voice's own face among {_esc(section.get('pool_size'))} "
            f"faces ({_esc(section.get('pool_requested'))} requested; the paper: 5,000). "
            "Value [95 % bootstrap interval], percent.</p>\n"
        )
        for window in _ordered((r.get("window") for r in rows), WINDOW_ORDER):
            out.append(f"<h3>Window {_esc(window)}</h3>\n")
            out.append(_retrieval_table(metrics, rows, ks, window))
        out.append(_plot_img(plots, "recall_at_k", "recall at K per window"))
    out.append("<h3>Pooled retrieval (SF2F: pools of identities)</h3>\n")
    pooled, reason = _section(metrics, "pooled_retrieval")
    if pooled is None:
        out.append(_skipped(reason))
        return "".join(out)
    rows = _rows(pooled)
    out.append(
        f"<p>Pools of {_esc(pooled.get('pool_size'))} identities, "
        f"{_esc(pooled.get('num_pools'))} pools per query, window "
        f"{_esc(pooled.get('window'))}, features: {_esc(pooled.get('features'))}.</p>\n"
    )
    if pooled.get("features_note"):
        out.append(f'<p class="note">{_esc(pooled.get("features_note"))}</p>\n')
    ks = _ks(pooled, rows)
    for window in _ordered((r.get("window") for r in rows), WINDOW_ORDER):
        out.append(_retrieval_table({}, rows, ks, window))
    return "".join(out)


def _confusion_html(table: Mapping[str, Any]) -> str:
    classes = list(table.get("classes") or [])
    counts = table.get("counts") or []
    norm = table.get("normalised") or []
    rows = []
    for i, cls in enumerate(classes):
        count_row = counts[i] if i < len(counts) and isinstance(counts[i], list) else []
        norm_row = norm[i] if i < len(norm) and isinstance(norm[i], list) else []
        cells = [f"<b>{_esc(cls)}</b>"]
        for j in range(len(classes)):
            share = norm_row[j] if j < len(norm_row) else None
            count = count_row[j] if j < len(count_row) else None
            cells.append(f"{_pct(share)} ({_esc(count)})" if _is_number(share) else MISSING)
        rows.append(cells)
    ref = LABELLING_NAMES.get(table.get("reference"), table.get("reference"))
    cmp_ = LABELLING_NAMES.get(table.get("compared"), table.get("compared"))
    header = (f"{_esc(ref)} \u2193 / {_esc(cmp_)} \u2192", *(_esc(c) for c in classes))
    return _table(header, rows)


def _html_attributes(metrics: Mapping[str, Any], plots: Mapping[str, str]) -> str:
    out = ["<h2>Attributes</h2>\n"]
    section, reason = _section(metrics, "attributes")
    if section is None:
        return out[0] + _skipped(reason)
    out.append(
        f"<p>Backend: <b>{_esc(section.get('backend'))}</b> "
        f"({_esc(section.get('description'))}); attributes: "
        f"{_esc(', '.join(map(str, section.get('attributes') or [])) or None)}.</p>\n"
    )
    missing = section.get("missing")
    if isinstance(missing, Mapping) and missing:
        out.append("<ul>\n")
        out.extend(
            f'<li class="skipped">{_esc(attr)} missing: {_esc(why)}</li>\n'
            for attr, why in missing.items()
        )
        out.append("</ul>\n")
    for name, table in _confusion_names(metrics).items():
        ref = LABELLING_NAMES.get(table.get("reference"), table.get("reference"))
        cmp_ = LABELLING_NAMES.get(table.get("compared"), table.get("compared"))
        out.append(f"<h3>{_esc(table.get('attribute'))}: {_esc(cmp_)} vs {_esc(ref)}</h3>\n")
        floors = [
            f"{label} {_figure_pct(table.get(key))} %"
            for key, label in (("mean_face", "mean-face portrait"), ("majority", "majority class"))
            if isinstance(table.get(key), Mapping)
        ]
        floor = f" (floors: {_esc('; '.join(floors))})" if floors else ""
        out.append(
            f"<p>Agreement: <b>{_figure_pct(table.get('agreement'))} %</b>{floor} over "
            f"{_esc(table.get('samples'))} faces. Rows: {_esc(ref)}; columns: {_esc(cmp_)}; "
            "share of the row in percent (count).</p>\n"
        )
        out.append(_confusion_html(table))
        paper_key = _paper_attribute_key(table)
        paper = _paper(metrics, paper_key) if paper_key else None
        per_class = table.get("per_class")
        if isinstance(per_class, Mapping) and per_class:
            rows = [
                (
                    _esc(cls),
                    _pct(share),
                    _pct(_k_get(paper, cls)) if isinstance(paper, Mapping) else MISSING,
                )
                for cls, share in per_class.items()
            ]
            out.append(_table(("class", "agreement (%)", "paper (%)"), rows))
        out.append(_plot_img(plots, name, f"confusion matrix, {name}"))
    skipped = section.get("skipped_tables")
    if isinstance(skipped, list) and skipped:
        out.append("<h3>Tables left out</h3>\n<ul>\n")
        for item in skipped:
            item = item if isinstance(item, Mapping) else {"reason": item}
            out.append(
                f'<li class="skipped">{_esc(item.get("attribute"))} against '
                f"{_esc(LABELLING_NAMES.get(item.get('reference'), item.get('reference')))}: "
                f"{_esc(item.get('reason'))}</li>\n"
            )
        out.append("</ul>\n")
    return "".join(out)


def _html_craniofacial(metrics: Mapping[str, Any], plots: Mapping[str, str]) -> str:
    out = ["<h2>Craniofacial measurements</h2>\n"]
    section, reason = _section(metrics, "craniofacial")
    if section is None:
        return out[0] + _skipped(reason)
    out.append(
        f"<p>Pearson r between F2F and S2F portraits over {_esc(section.get('detected'))} "
        f"of {_esc(section.get('samples'))} pairs (both with landmarks); random: the same "
        f"with pairs shuffled (the paper's random: {_num(section.get('paper_random_r'))}).</p>\n"
    )
    items = section.get("measurements")
    rows = [
        (
            _esc(m.get("name")),
            _num(m.get("r")),
            _p_value(m.get("p")),
            _num(m.get("random_r")),
            _num(m.get("paper_r")),
        )
        for m in (items if isinstance(items, list) else [])
        if isinstance(m, Mapping)
    ]
    out.append(_table(("measurement", "r", "p", "random r", "paper r"), rows))
    out.append(_plot_img(plots, "craniofacial", "craniofacial correlations"))
    return "".join(out)


def render_html(metrics: Mapping[str, Any]) -> str:
    """The report as one HTML5 document; plot paths are read from ``metrics["plots"]``."""
    plots = metrics.get("plots") if isinstance(metrics.get("plots"), Mapping) else {}
    body = [
        _html_header(metrics),
        _html_gallery(metrics),
        _html_similarity(metrics),
        _html_retrieval(metrics, plots),
        _html_attributes(metrics, plots),
        _html_craniofacial(metrics, plots),
        _html_real_voices(metrics),
        f"<footer>Created {_esc(metrics.get('created'))} by speech2face "
        f"{_esc(metrics.get('speech2face_version'))} (metrics schema "
        f"{_esc(metrics.get('schema'))} v{_esc(metrics.get('version'))}).</footer>\n",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        "<title>Speech2Face evaluation</title>\n"
        f"<style>{CSS}</style>\n</head>\n<body>\n{''.join(body)}</body>\n</html>\n"
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
        raise ValueError(f"metrics schema version {version!r}; this report reads version 1")
    out_dir = Path(out_dir)
    metrics["plots"] = _write_plots(metrics, out_dir)
    (out_dir / REPORT_NAME).write_text(render_html(metrics), encoding="utf-8")


# ---------------------------------------------------------------- terminal summary


def _slash(values: Iterable[str]) -> str:
    return "/".join(values)


def summary_table(metrics: Mapping[str, Any]) -> str:
    """A dozen-line plain-text summary: recall, angle, gender agreement, craniofacial r."""
    lines: list[str] = []
    data = metrics.get("data") if isinstance(metrics.get("data"), Mapping) else {}
    ckpt = metrics.get("checkpoint") if isinstance(metrics.get("checkpoint"), Mapping) else {}
    lines.append(
        f"step {ckpt.get('step', MISSING)}, {data.get('split', MISSING)} split: "
        f"{data.get('samples', MISSING)} samples, {data.get('speakers', MISSING)} speakers"
    )
    col = "{:<6}{:>17}{:>17}{:>17}{:>17}"
    section, reason = _section(metrics, "retrieval")
    if section is None:
        lines.append(f"retrieval: skipped ({reason})")
    else:
        rows = _rows(section)
        lines.append(
            f"recall@{_slash(map(str, SUMMARY_KS))} (cosine, %, pool "
            f"{section.get('pool_size', MISSING)})"
        )
        lines.append(col.format("", "model", "mean face", "chance", "paper"))
        for window in _ordered((r.get("window") for r in rows), WINDOW_ORDER):
            cells = []
            for predictor in PREDICTOR_ORDER:
                row = _find_row(rows, window, "cosine", predictor)
                recall = row.get("recall") if row else None
                cells.append(
                    _slash(_pct((_k_get(recall, k) or {}).get("value")) for k in SUMMARY_KS)
                )
            paper = _paper(metrics, "retrieval", window, "cosine")
            paper_cells = [_num(_k_get(paper, k), 1) for k in SUMMARY_KS]
            cells.append(MISSING if set(paper_cells) == {MISSING} else _slash(paper_cells))
            lines.append(col.format(str(window), *cells))
    sim, reason = _section(metrics, "similarity")
    if sim is None:
        lines.append(f"similarity: skipped ({reason})")
    else:
        lines.append("mean angle (deg)")
        lines.append(col.format("", "model", "mean face", "", "paper"))
        for window in _ordered(sim.keys(), WINDOW_ORDER):
            stats = sim[window] if isinstance(sim[window], Mapping) else {}
            angle = [(stats.get(p) or {}).get("angle_deg") for p in ("model", "mean_face")]
            paper = _paper(metrics, "similarity", window, "angle_deg")
            cells = [_mean_std(a, 1) for a in angle]
            lines.append(col.format(str(window), *cells, "", _mean_std(paper, 1)))
    lines.extend(_summary_gender(metrics))
    lines.append(_summary_craniofacial(metrics))
    lines.append(_summary_real_voices(metrics))
    return "\n".join(lines)


def _summary_real_voices(metrics: Mapping[str, Any]) -> str:
    section, reason = _section(metrics, "real_voices")
    if section is None:
        return f"real voices: skipped ({reason})"
    judges = section.get("judges") if isinstance(section.get("judges"), Mapping) else {}
    said = ", ".join(
        f"{name} {_figure_pct(judge)}"
        for name, judge in judges.items()
        if isinstance(judge, Mapping)
    )
    return (
        f"real voices ({section.get('voices', MISSING)} never heard): the portrait has the voice's "
        f"gender by {said or MISSING}"
    )


def _summary_gender(metrics: Mapping[str, Any]) -> list[str]:
    section, reason = _section(metrics, "attributes")
    if section is None:
        return [f"attributes: skipped ({reason})"]
    tables = [t for t in section.get("tables") or [] if isinstance(t, Mapping)]
    paper = _paper(metrics, "gender_agreement")
    paper_text = (
        ", ".join(f"{k} {_pct(v, 0)} %" for k, v in paper.items())
        if isinstance(paper, Mapping)
        else MISSING
    )
    lines = []
    for reference, extra in (("true_face", f" (paper per class: {paper_text})"), ("dataset", "")):
        table = next(
            (
                t
                for t in tables
                if (t.get("attribute"), t.get("reference"), t.get("compared"))
                == ("gender", reference, "s2f")
            ),
            None,
        )
        if table is not None:
            floor = table.get("mean_face")
            floor_text = (
                f", mean-face portrait {_figure_pct(floor)} %" if isinstance(floor, Mapping) else ""
            )
            lines.append(
                f"gender agreement S2F vs {LABELLING_NAMES[reference]}: "
                f"{_figure_pct(table.get('agreement'))} %{floor_text}{extra}"
            )
    return lines or ["gender agreement: no gender tables"]


def _summary_craniofacial(metrics: Mapping[str, Any]) -> str:
    section, reason = _section(metrics, "craniofacial")
    if section is None:
        return f"craniofacial: skipped ({reason})"
    items = [m for m in section.get("measurements") or [] if isinstance(m, Mapping)]

    def mean(key: str) -> float | None:
        values = [m[key] for m in items if _is_number(m.get(key))]
        return sum(values) / len(values) if values else None

    return (
        f"craniofacial mean r {_num(mean('r'))} vs random {_num(mean('random_r'))} "
        f"(paper {_num(mean('paper_r'))}, paper random {_num(section.get('paper_random_r'))}; "
        f"{section.get('detected', MISSING)}/{section.get('samples', MISSING)} pairs)"
    )
