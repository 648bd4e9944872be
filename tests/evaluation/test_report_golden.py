"""The rendered report keeps its text and links: each variant of the example metrics renders
to the same text nodes (whitespace collapsed) and the same ``src``/``href`` attributes, in
order, as recorded in ``report_golden.json``.

Regenerate the reference (only when a change to the report's content is intended) with
``python -m tests.evaluation.test_report_golden``.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from speech2face.evaluation.report import render_html, write_report

HERE = Path(__file__).parent
EXAMPLE = HERE / "metrics_example.json"
GOLDEN = HERE / "report_golden.json"
HOSTILE = "<script>alert('x')</script>"


class DomText(HTMLParser):
    """Text nodes with whitespace collapsed, and every ``src``/``href`` in document order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links.extend(f"{tag}.{k}={v or ''}" for k, v in attrs if k in ("src", "href"))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        text = re.sub(r"\s+", " ", data).strip()
        if text:
            self.text.append(text)


def snapshot(page: str) -> dict[str, list[str]]:
    parser = DomText()
    parser.feed(page)
    parser.close()
    return {"text": parser.text, "links": parser.links}


def _example() -> dict[str, Any]:
    return json.loads(EXAMPLE.read_text(encoding="utf-8"))


def _hostile() -> dict[str, Any]:
    """Every section filled: hostile strings, pooled retrieval, unsafe paths, real voices, an
    attribute backend at chance."""
    metrics = _example()
    metrics["notes"].append(f"note {HOSTILE}")
    metrics["gallery"][0]["speaker"] = f"spk {HOSTILE}"
    metrics["gallery"][1]["s2f"] = "https://example.org/face.png"
    metrics["gallery"][1]["f2f"] = "../outside.png"
    metrics["gallery"][-1]["audio"] = "media/a b&c.wav"
    metrics["settings"][f"key {HOSTILE}"] = {"nested": [1, 2.5, None]}
    metrics["gallery"][0]["labels"][f"param {HOSTILE}"] = "#325a8c"
    metrics["gallery"][0]["predicted"]["infer"] = {"gender": f"x {HOSTILE}", "age": 30.0}
    # A backend at chance on the true faces: its warnings beside the gender figures.
    metrics["attributes"]["backend"] = f"backend {HOSTILE}"
    for table in metrics["attributes"]["tables"]:
        if (table["attribute"], table["reference"], table["compared"]) == (
            "gender",
            "dataset",
            "true_face",
        ):
            table["majority"] = {"value": 0.8, "low": 0.8, "high": 0.8}
    rows = [copy.deepcopy(r) for r in metrics["retrieval"]["rows"] if r["window"] == "3s"]
    metrics["pooled_retrieval"] = {
        "pool_size": 100,
        "num_pools": 10,
        "features": "dlib",
        "features_note": f"the checkpoint's face encoder {HOSTILE}",
        "window": "3s",
        "ks": [1, 2, 5, 10],
        "rows": rows,
    }
    metrics["real_voices"] = {
        "source": f"packaged {HOSTILE}",
        "voices": 3,
        "genders": {"female": 2, "male": 1},
        "judges": {
            "attributes": {
                "value": 0.667,
                "low": 0.3,
                "high": 1.0,
                "hits": 2,
                "total": 3,
                "one_gender_floor": 0.667,
            },
            "nearest": {"value": None, "one_gender_floor": 0.5},
        },
        "notes": [f"a note {HOSTILE}"],
        "contact_sheet": "media/real_voices/contact_sheet.png",
        "rows": [
            {
                "file": "f1.wav",
                "engine": "espeak",
                "voice": "en+f3",
                "language": "en",
                "licence": "GPL",
                "audio": "media/real_voices/f1.wav",
                "portrait": "media/real_voices/f1.png",
                "gender": "female",
                "attributes": "female",
                "nearest": "male",
            },
            {
                "file": f"m1 {HOSTILE}.wav",
                "engine": "piper",
                "voice": "x",
                "language": "de",
                "licence": "MIT",
                "audio": "/abs/m1.wav",
                "portrait": None,
                "note": "too short",
                "gender": "male",
                "attributes": 31.0,
                "nearest": None,
            },
            "not a row",
        ],
    }
    metrics["plots"] = {
        "recall_at_k": "media/plots/recall_at_k.png",
        "craniofacial": "C:/plots/craniofacial.png",
        "confusion_gender_s2f_vs_true_face": "media/plots/confusion gender.png",
    }
    return metrics


def _skipped() -> dict[str, Any]:
    metrics = _example()
    metrics["attributes"] = {"skipped": "no attribute backend <configured>"}
    metrics["craniofacial"] = {"skipped": "dlib is not installed"}
    metrics["similarity"] = {"skipped": "no faces"}
    metrics["retrieval"] = "malformed"
    metrics["real_voices"] = {"skipped": "real_voices=null"}
    metrics["gallery"] = []
    return metrics


def _missing() -> dict[str, Any]:
    return {"version": 1}


VARIANTS = {"hostile": _hostile, "skipped": _skipped, "missing": _missing}


def render_variants(tmp: Path) -> dict[str, dict[str, list[str]]]:
    """The example through :func:`write_report` (its plots drawn), the others through
    :func:`render_html` with the plot paths they name."""
    metrics = _example()
    write_report(metrics, tmp)
    pages = {"example": snapshot((tmp / "report.html").read_text(encoding="utf-8"))}
    for name, build in VARIANTS.items():
        pages[name] = snapshot(render_html(build()))
    return pages


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, dict[str, list[str]]]:
    return render_variants(tmp_path_factory.mktemp("golden"))


@pytest.mark.parametrize("variant", ["example", *VARIANTS])
def test_report_text_and_links_unchanged(rendered, variant):
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))[variant]
    assert rendered[variant]["links"] == golden["links"]
    assert rendered[variant]["text"] == golden["text"]


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        pages = render_variants(Path(tmp))
    GOLDEN.write_text(json.dumps(pages, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    sys.stdout.write(f"wrote {GOLDEN}\n")
