"""How the evaluation's report reads ``metrics.json``: figures formatted as text (percent,
intervals, p-values, mean ± std) and tolerant access to its sections, rows and paper figures.

Shared by the HTML report, its plots and the terminal summary; nothing here escapes HTML.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

MISSING = "\u2013"  # en dash for a figure that does not exist (None, NaN, absent)
PERCENT = 100.0  # recalls and shares are fractions in [0, 1]; tables show percent
P_VALUE_FLOOR = 1e-3  # smaller p-values are shown in scientific notation

WINDOW_ORDER = ("3s", "6s", "clip", "infer")
METRIC_ORDER = ("cosine", "l2", "l1")
WINDOW_NAMES = {
    "3s": "3 s window",
    "6s": "6 s window",
    "clip": "whole clip",
    "infer": "as s2f-infer reads it",
}
PREDICTOR_ORDER = ("model", "mean_face", "chance")
PREDICTOR_NAMES = {
    "model": "model",
    "s2f": "S2F portrait",
    "f2f": "F2F portrait",
    "mean_face": "mean face",
    "chance": "chance",
}
LABELLING_NAMES = {
    "true_face": "true face",
    "dataset": "dataset labels",
    "s2f": "S2F",
    "f2f": "F2F",
}


def is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def as_text(x: Any) -> str:
    """The text of any value as the report shows it (not yet HTML-escaped): ``None`` and
    non-finite floats as an en dash, containers as JSON."""
    if x is None:
        return MISSING
    if isinstance(x, float) and not math.isfinite(x):
        return MISSING
    if isinstance(x, dict | list | tuple):
        return json.dumps(x, default=str)
    return str(x)


def fmt_num(x: Any, digits: int = 2) -> str:
    return f"{x:.{digits}f}" if is_number(x) else MISSING


def fmt_pct(x: Any, digits: int = 1) -> str:
    """A fraction in [0, 1] as a percentage (no sign)."""
    return f"{x * PERCENT:.{digits}f}" if is_number(x) else MISSING


def fmt_p(p: Any) -> str:
    """A p-value: three decimals, or scientific notation under 0.001."""
    if not is_number(p):
        return MISSING
    return f"{p:.1e}" if p < P_VALUE_FLOOR else f"{p:.3f}"


def fmt_label(x: Any) -> str:
    """A predicted or dataset label: whole floats (ages) without decimals."""
    if isinstance(x, float) and math.isfinite(x):
        return str(int(x)) if x.is_integer() else f"{x:.1f}"
    return as_text(x)


def fmt_figure(fig: Any, interval: bool = True) -> str:
    """``{"value", "low", "high"}`` as ``v [l, h]`` in percent; ``-`` when absent."""
    if not isinstance(fig, Mapping) or not is_number(fig.get("value")):
        return MISSING
    text = fmt_pct(fig["value"])
    low, high = fig.get("low"), fig.get("high")
    if interval and is_number(low) and is_number(high) and low != high:
        text += f" [{fmt_pct(low)}, {fmt_pct(high)}]"
    return text


def fmt_mean_std(stat: Any, digits: int = 2) -> str:
    """``{"mean", "std"}`` or the paper's ``[mean, std]`` as ``m ± s``."""
    if isinstance(stat, Mapping):
        mean, std = stat.get("mean"), stat.get("std")
    elif isinstance(stat, Sequence) and not isinstance(stat, str) and len(stat) == 2:
        mean, std = stat
    else:
        return MISSING
    if not is_number(mean):
        return MISSING
    return f"{mean:.{digits}f} \u00b1 {fmt_num(std, digits)}"


def get_section(
    metrics: Mapping[str, Any], key: str
) -> tuple[Mapping[str, Any] | None, str | None]:
    """``(section, None)``, or ``(None, reason)`` when absent, skipped or malformed."""
    value = metrics.get(key)
    if value is None:
        return None, "not computed"
    if not isinstance(value, Mapping):
        return None, "malformed section"
    if isinstance(value.get("skipped"), str):
        return None, value["skipped"]
    return value, None


def k_get(mapping: Any, k: Any) -> Any:
    """``mapping[K]`` with K a string (JSON) or an int (before serialisation)."""
    if not isinstance(mapping, Mapping):
        return None
    for key in (str(k), k):
        if key in mapping:
            return mapping[key]
    if isinstance(k, str) and k.isdigit():
        return mapping.get(int(k))
    return None


def section_ks(section: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """The section's K values, or those found in its rows' recalls."""
    ks = section.get("ks")
    if isinstance(ks, Sequence) and ks:
        return [int(k) for k in ks]
    found = {int(k) for row in rows for k in (row.get("recall") or {}) if str(k).isdigit()}
    return sorted(found)


def section_rows(section: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    rows = section.get("rows")
    return [r for r in rows if isinstance(r, Mapping)] if isinstance(rows, list) else []


def ordered(values: Iterable[Any], order: Sequence[str]) -> list[Any]:
    """Distinct ``values`` in first-seen order, those named in ``order`` first."""
    seen = list(dict.fromkeys(values))
    return [v for v in order if v in seen] + [v for v in seen if v not in order]


def row_windows(rows: Iterable[Mapping[str, Any]]) -> list[Any]:
    """The windows the rows hold, in the report's order (:data:`WINDOW_ORDER` first)."""
    return ordered((row.get("window") for row in rows), WINDOW_ORDER)


def nearest_by_judge(section: Mapping[str, Any]) -> dict[tuple[Any, Any], Any]:
    """The judge section's own-face-nearest figures by ``(judge, predictor)``."""
    return {
        (r.get("judge"), r.get("predictor")): r.get("own_face_nearest")
        for r in section.get("nearest") or []
        if isinstance(r, Mapping)
    }


def find_row(
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


def paper_value(metrics: Mapping[str, Any], *keys: Any) -> Any:
    """``metrics["paper"][k0][k1]...`` or ``None``."""
    node: Any = metrics.get("paper")
    for key in keys:
        node = k_get(node, key) if isinstance(node, Mapping) else None
        if node is None:
            return None
    return node


def paper_attribute_key(table: Mapping[str, Any]) -> str | None:
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


def safe_src(path: Any) -> str | None:
    """A media path as a URL relative to the output directory (percent-encoded, not yet
    HTML-escaped), or ``None`` if it could leave it (absolute, ``..``, a scheme, a
    backslash)."""
    if not isinstance(path, str) or not path or "\\" in path or ":" in path:
        return None
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts:
        return None
    return quote(pure.as_posix())


def plot_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "plot"


def confusion_names(metrics: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """A distinct file-safe plot name for each attribute table, in table order."""
    section, _ = get_section(metrics, "attributes")
    tables = section.get("tables") if section else None
    names: dict[str, Mapping[str, Any]] = {}
    for table in tables if isinstance(tables, list) else []:
        if not isinstance(table, Mapping):
            continue
        attribute, compared, reference = (
            table.get(k) for k in ("attribute", "compared", "reference")
        )
        base = plot_name(f"confusion_{attribute}_{compared}_vs_{reference}")
        name, i = base, 2
        while name in names:
            name, i = f"{base}_{i}", i + 1
        names[name] = table
    return names


def backend_checks(section: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Whether the attribute backend reads the true faces at all, per attribute with dataset
    labels: ``{attribute: {"agreement", "majority", "at_chance"}}`` from its table of the
    true faces against the dataset's labels.

    ``at_chance`` is true when the agreement's bootstrap interval reaches down to the rate of
    saying the dataset's most common class for every face (or the agreement is below it): a
    backend that cannot tell the true faces apart says nothing about the portraits either.
    """
    tables = section.get("tables") if isinstance(section, Mapping) else None
    checks: dict[str, dict[str, Any]] = {}
    for table in tables if isinstance(tables, list) else []:
        if not isinstance(table, Mapping) or (table.get("reference"), table.get("compared")) != (
            "dataset",
            "true_face",
        ):
            continue
        agreement, majority = table.get("agreement"), table.get("majority")
        if not isinstance(agreement, Mapping) or not isinstance(majority, Mapping):
            continue
        value, floor = agreement.get("value"), majority.get("value")
        if not is_number(value) or not is_number(floor):
            continue
        low = agreement.get("low")
        low = low if is_number(low) else value
        checks[str(table.get("attribute"))] = {
            "agreement": dict(agreement),
            "majority": dict(majority),
            "at_chance": bool(min(low, value) <= floor),
        }
    return checks


def at_chance_warning(backend: Any, attribute: str, check: Mapping[str, Any]) -> str:
    """One sentence saying that ``backend`` reads ``attribute`` at chance on the true faces."""
    text = (
        f"the {as_text(backend)} backend reads {attribute} at chance: on the true faces it "
        f"agrees with the dataset's labels {fmt_figure(check.get('agreement'))} %, no better "
        f"than saying the most common class for every face "
        f"({fmt_figure(check.get('majority'), interval=False)} %), so its {attribute} "
        "figures are not a result"
    )
    if backend != "classifier":
        text += (
            " (a classifier trained on this data can read these faces: train one with "
            "s2f-train task=attributes and evaluate with attributes=classifier "
            "attributes.checkpoint=RUN/checkpoints/last.pt)"
        )
    return text
