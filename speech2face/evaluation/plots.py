"""The report's plots, drawn with matplotlib's Agg backend under ``media/plots``: recall@K per
window, one confusion heatmap per attribute table, craniofacial correlations."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from speech2face.evaluation.figures import (
    LABELLING_NAMES,
    METRIC_ORDER,
    PERCENT,
    PREDICTOR_NAMES,
    PREDICTOR_ORDER,
    confusion_names,
    find_row,
    get_section,
    is_number,
    k_get,
    ordered,
    paper_value,
    row_windows,
    section_ks,
    section_rows,
)

PLOTS_DIR = PurePosixPath("media") / "plots"
PLOT_DPI = 100
PLOT_COLORS = {"model": "tab:blue", "mean_face": "tab:orange", "chance": "tab:gray"}
METRIC_LINESTYLES = {"cosine": "-", "l2": "--", "l1": ":"}
PAPER_MARKERS = {"cosine": "o", "l2": "s", "l1": "^"}


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
    return float(x) if is_number(x) else math.nan


def _plot_recall(plt: Any, metrics: Mapping[str, Any], out_dir: Path) -> str | None:
    """Recall@K (percent) against K, one panel per window."""
    section, _ = get_section(metrics, "retrieval")
    rows = section_rows(section) if section else []
    if not rows:
        return None
    ks = section_ks(section, rows)
    windows = row_windows(rows)
    fig, axes = plt.subplots(
        1, len(windows), figsize=(4.2 * len(windows), 3.6), squeeze=False, sharey=True
    )
    for ax, window in zip(axes[0], windows, strict=True):
        metrics_here = ordered((r.get("metric") for r in rows if r.get("window") == window), ())
        for metric in ordered(metrics_here, METRIC_ORDER):
            for predictor in PREDICTOR_ORDER:
                row = find_row(rows, window, metric, predictor)
                if row is None:
                    continue
                figs = [k_get(row.get("recall"), k) or {} for k in ks]
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
            paper = paper_value(metrics, "retrieval", window, metric)
            if isinstance(paper, Mapping):
                pks = [k for k in ks if is_number(k_get(paper, k))]
                if pks:
                    ax.plot(
                        pks,
                        [k_get(paper, k) for k in pks],
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

    section, _ = get_section(metrics, "craniofacial")
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
    if is_number(paper_random):
        ax.axhline(paper_random, color="black", linestyle=":", linewidth=1, label="paper random")
    ax.axhline(0.0, color="black", linewidth=0.5)
    ax.set_xticks(x, names, rotation=45, ha="right")
    ax.set_ylabel("Pearson r")
    ax.legend(fontsize="x-small")
    ax.grid(axis="y", alpha=0.3)
    return _save(plt, fig, out_dir, "craniofacial")


def write_plots(metrics: Mapping[str, Any], out_dir: Path) -> dict[str, str]:
    """Every plot the metrics allow: ``{name: path relative to out_dir}``."""
    plt = _pyplot()
    (out_dir / PLOTS_DIR).mkdir(parents=True, exist_ok=True)
    plots: dict[str, str] = {}
    recall = _plot_recall(plt, metrics, out_dir)
    if recall:
        plots["recall_at_k"] = recall
    for name, table in confusion_names(metrics).items():
        path = _plot_confusion(plt, table, out_dir, name)
        if path:
            plots[name] = path
    cranio = _plot_craniofacial(plt, metrics, out_dir)
    if cranio:
        plots["craniofacial"] = cranio
    return plots
