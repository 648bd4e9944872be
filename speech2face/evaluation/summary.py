"""The evaluation's plain-text summary, a dozen lines printed by ``s2f-eval``: recall,
mean angle, gender agreement, craniofacial r and the real voices beside the paper's."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from speech2face.evaluation.figures import (
    LABELLING_NAMES,
    MISSING,
    PREDICTOR_ORDER,
    WINDOW_ORDER,
    at_chance_warning,
    backend_checks,
    find_row,
    fmt_figure,
    fmt_mean_std,
    fmt_num,
    fmt_pct,
    get_section,
    is_number,
    k_get,
    nearest_by_judge,
    ordered,
    paper_value,
    row_windows,
    section_rows,
)

SUMMARY_KS = (1, 5, 10)


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
    section, reason = get_section(metrics, "retrieval")
    if section is None:
        lines.append(f"retrieval: skipped ({reason})")
    else:
        rows = section_rows(section)
        lines.append(
            f"recall@{_slash(map(str, SUMMARY_KS))} (cosine, %, pool "
            f"{section.get('pool_size', MISSING)})"
        )
        lines.append(col.format("", "model", "mean face", "chance", "paper"))
        for window in row_windows(rows):
            cells = []
            for predictor in PREDICTOR_ORDER:
                row = find_row(rows, window, "cosine", predictor)
                recall = row.get("recall") if row else None
                cells.append(
                    _slash(fmt_pct((k_get(recall, k) or {}).get("value")) for k in SUMMARY_KS)
                )
            paper = paper_value(metrics, "retrieval", window, "cosine")
            paper_cells = [fmt_num(k_get(paper, k), 1) for k in SUMMARY_KS]
            cells.append(MISSING if set(paper_cells) == {MISSING} else _slash(paper_cells))
            lines.append(col.format(str(window), *cells))
    sim, reason = get_section(metrics, "similarity")
    if sim is None:
        lines.append(f"similarity: skipped ({reason})")
    else:
        lines.append("mean angle (deg)")
        lines.append(col.format("", "model", "mean face", "", "paper"))
        for window in ordered(sim.keys(), WINDOW_ORDER):
            stats = sim[window] if isinstance(sim[window], Mapping) else {}
            angle = [(stats.get(p) or {}).get("angle_deg") for p in ("model", "mean_face")]
            paper = paper_value(metrics, "similarity", window, "angle_deg")
            cells = [fmt_mean_std(a, 1) for a in angle]
            lines.append(col.format(str(window), *cells, "", fmt_mean_std(paper, 1)))
    lines.extend(_summary_gender(metrics))
    lines.append(_summary_craniofacial(metrics))
    lines.append(_summary_judge(metrics))
    lines.append(_summary_real_voices(metrics))
    return "\n".join(lines)


def _summary_real_voices(metrics: Mapping[str, Any]) -> str:
    section, reason = get_section(metrics, "real_voices")
    if section is None:
        return f"real voices: skipped ({reason})"
    judges = section.get("judges") if isinstance(section.get("judges"), Mapping) else {}
    said = ", ".join(
        f"{name} {fmt_figure(judge)}"
        for name, judge in judges.items()
        if isinstance(judge, Mapping)
    )
    return (
        f"real voices ({section.get('voices', MISSING)} never heard): the portrait has the voice's "
        f"gender by {said or MISSING}"
    )


def _summary_gender(metrics: Mapping[str, Any]) -> list[str]:
    section, reason = get_section(metrics, "attributes")
    if section is None:
        return [f"attributes: skipped ({reason})"]
    tables = [t for t in section.get("tables") or [] if isinstance(t, Mapping)]
    paper = paper_value(metrics, "gender_agreement")
    paper_text = (
        ", ".join(f"{k} {fmt_pct(v, 0)} %" for k, v in paper.items())
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
                f", mean-face portrait {fmt_figure(floor)} %" if isinstance(floor, Mapping) else ""
            )
            lines.append(
                f"gender agreement S2F vs {LABELLING_NAMES[reference]}: "
                f"{fmt_figure(table.get('agreement'))} %{floor_text}{extra}"
            )
    for attribute, check in backend_checks(section).items():
        if check["at_chance"]:
            lines.append(f"WARNING: {at_chance_warning(section.get('backend'), attribute, check)}")
    return lines or ["gender agreement: no gender tables"]


def _summary_craniofacial(metrics: Mapping[str, Any]) -> str:
    section, reason = get_section(metrics, "craniofacial")
    if section is None:
        return f"craniofacial: skipped ({reason})"
    items = [m for m in section.get("measurements") or [] if isinstance(m, Mapping)]

    def mean(key: str) -> float | None:
        values = [m[key] for m in items if is_number(m.get(key))]
        return sum(values) / len(values) if values else None

    return (
        f"craniofacial mean r {fmt_num(mean('r'))} vs random {fmt_num(mean('random_r'))} "
        f"(paper {fmt_num(mean('paper_r'))}, paper random {fmt_num(section.get('paper_random_r'))}; "
        f"{section.get('samples', MISSING)} pairs, faces detected in both of "
        f"{section.get('detected', MISSING)}; beyond their permutation null at p <= 0.05: "
        f"{sum(1 for m in items if is_number(m.get('p_permutation')) and m['p_permutation'] <= 0.05)}"
        f"/{len(items)})"
    )


def _summary_judge(metrics: Mapping[str, Any]) -> str:
    """``judge sface: S2F pooled recall@1/5/10 ..., own face nearest ...; dlib (training
    encoder): ...``."""
    section, reason = get_section(metrics, "judge")
    if section is None:
        return f"independent judge: skipped ({reason})"
    nearest = nearest_by_judge(section)
    parts = []
    for name in dict.fromkeys(r.get("judge") for r in section_rows(section)):
        row = next(
            (
                r
                for r in section_rows(section)
                if (r.get("judge"), r.get("predictor")) == (name, "s2f")
            ),
            None,
        )
        if row is None:
            continue
        recall = _slash(
            fmt_pct((k_get(row.get("recall"), k) or {}).get("value")) for k in SUMMARY_KS
        )
        own = fmt_pct((nearest.get((name, "s2f")) or {}).get("value"))
        role = " (training encoder)" if name == section.get("training_encoder") else " (judge)"
        parts.append(f"{name}{role} {recall}, own face nearest {own}")
    return (
        f"S2F portraits, pooled recall@{_slash(map(str, SUMMARY_KS))} (%, pools of "
        f"{section.get('pool_size', MISSING)}): " + "; ".join(parts)
    )
