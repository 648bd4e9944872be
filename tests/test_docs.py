"""The snippets of README.md and data/README.md run as written, offline, on a CPU.

Each document's ```python and ```bash blocks run in the document's order, in a new empty
directory, in one new Python process (this module run as a script is the runner), the way a
reader pastes them one after the other:

- python blocks share one namespace: a block may use names an earlier block of the same
  document defined (the README's models snippet uses the audio snippet's ``spec``);
- bash blocks run with ``bash -e -c`` in the same directory and see the files earlier blocks
  wrote (the synthetic corpus a python block made, the shards ``s2f-preprocess`` wrote).

The environment is a newcomer's with ``.venv`` activated, and offline: the checkout's
virtual environment comes first on PATH and is linked into the directory as ``.venv`` (so
``source .venv/bin/activate`` and ``.venv/bin/s2f-...`` work as from the repository's root),
``S2F_OFFLINE=1`` forbids downloads, ``S2F_HOME`` is a fresh directory (no cached weights)
and ``CUDA_VISIBLE_DEVICES`` is empty, so a GPU machine runs them on its CPU too.

A block is skipped only when the line right before its opening fence is an HTML comment
``<!-- not run: REASON -->`` (downloads, placeholders for the reader's own data, ``make
test`` itself). :func:`test_skips_carry_reasons` checks that every such comment has a
reason and stands before a python or bash block, and that no other fenced language (which
the runner would pass over silently) appears; untagged fences are listings, not code.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "data/README.md")
LANGUAGES = ("python", "bash")  # fenced code the runner runs; "" is a listing
FENCE = re.compile(r"^```(\S*)\s*$")
SKIP = re.compile(r"^<!--\s*not run:(.*?)-->\s*$")
# Files a run must leave behind: the flows really ran (not merely exited 0).
EXPECTED = {
    "README.md": ("voice.wav", "voice.spec.npy", "voice.spec.png", "out/shards.json"),
    "data/README.md": ("corpus/clips.csv", "OUT/shards.json"),
}
TIMEOUT_S = 600  # a whole document; the two take ~25-40 s each on a busy 2-core machine


@dataclass(frozen=True)
class Block:
    doc: str  # path relative to the repository root
    line: int  # 1-based line of the block's first code line
    lang: str
    code: str
    skip: str | None  # the "not run" reason, or None


def parse(doc: str) -> list[Block]:
    """The fenced blocks of ``doc``, each with the reason it is not run, if any."""
    lines = (ROOT / doc).read_text(encoding="utf-8").splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        start = i + 1
        end = start
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        assert end < len(lines), f"{doc}:{i + 1}: unclosed code fence"
        marker = SKIP.match(lines[i - 1]) if i else None
        blocks.append(
            Block(
                doc=doc,
                line=start + 1,
                lang=opening.group(1),
                code="\n".join(lines[start:end]) + "\n",
                skip=marker.group(1).strip() if marker else None,
            )
        )
        i = end + 1
    return blocks


@pytest.mark.parametrize("doc", DOCS)
def test_skips_carry_reasons(doc):
    lines = (ROOT / doc).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if "not run" in line and line.lstrip().startswith("<!--"):
            marker = SKIP.match(line)
            assert marker and marker.group(1).strip(), f"{doc}:{number}: a skip needs a reason"
            following = lines[number] if number < len(lines) else ""
            fence = FENCE.match(following)
            assert fence and fence.group(1) in LANGUAGES, (
                f"{doc}:{number}: a 'not run' comment must stand right before a python or "
                "bash block"
            )
    blocks = parse(doc)
    for block in blocks:
        assert block.lang in ("", *LANGUAGES), (
            f"{doc}:{block.line}: fence language '{block.lang}' is neither run nor a listing"
        )
    ran = [b for b in blocks if b.lang in LANGUAGES and b.skip is None]
    assert any(b.lang == "python" for b in ran), f"{doc}: no python block runs"


@pytest.mark.slow
@pytest.mark.parametrize("doc", DOCS)
def test_snippets_run(doc, tmp_path):
    if sys.prefix == sys.base_prefix:
        pytest.skip("the snippets use .venv: run the tests from the project's virtual env")
    blocks = [b for b in parse(doc) if b.lang in LANGUAGES and b.skip is None]
    work = tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    plan = tmp_path / "blocks.json"
    plan.write_text(json.dumps([asdict(b) for b in blocks]))
    bin_dir = str(Path(sys.executable).parent)
    env = os.environ | {
        "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
        "S2F_OFFLINE": "1",
        "S2F_HOME": str(tmp_path / "s2f_home"),
        "CUDA_VISIBLE_DEVICES": "",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    result = subprocess.run(
        [sys.executable, __file__, str(plan)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    output = f"{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
    assert result.returncode == 0, f"a snippet of {doc} failed:\n{output}"
    for name in EXPECTED[doc]:
        assert (work / name).is_file(), f"{doc}'s snippets did not write {name}:\n{output}"


def run_blocks(plan: str) -> None:
    """Run the blocks listed in ``plan`` (JSON) in order, in the current directory."""
    namespace: dict = {"__name__": "__main__"}
    for block in json.loads(Path(plan).read_text()):
        where = f"{block['doc']}:{block['line']}"
        print(f"--- {where} ({block['lang']})", flush=True)
        began = time.perf_counter()
        if block["lang"] == "python":
            # Padded so that a traceback names the document's own line (and shows it).
            source = "\n" * (block["line"] - 1) + block["code"]
            exec(compile(source, str(ROOT / block["doc"]), "exec"), namespace)
            sys.stdout.flush()
        else:
            done = subprocess.run(["bash", "-e", "-c", block["code"]], check=False)
            if done.returncode:
                sys.exit(f"{where}: the bash block exited with {done.returncode}")
        print(f"--- {where}: {time.perf_counter() - began:.1f} s", flush=True)


if __name__ == "__main__":
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        del sys.path[0]  # tests/ (run as a script): its packages must not shadow a snippet's
    run_blocks(sys.argv[1])


def test_the_readme_quotes_the_demo_figures_as_the_demo_prints_them():
    """The Quickstart's demo figures: the windows the demo's lines name, in their order, and
    each figure written as the demo prints it (``24.2 % [13.6, 34.8]``)."""
    from speech2face.demo import figure_lines

    text = (ROOT / "README.md").read_text()
    start = text.index("`make demo` builds")
    paragraph = " ".join(text[start : text.index("\n\n", start)].split())

    def share(value, low=None, high=None):
        return {"value": value, "low": low if low is not None else value, "high": high or value}

    metrics = {  # the figures the README quotes, as metrics.json holds them
        "windows": {"3s": {"seconds": 3.0}, "6s": {"seconds": 6.0}, "clip": {"seconds": None}},
        "attributes": {
            "tables": [
                {
                    "attribute": "gender",
                    "reference": "dataset",
                    "compared": "s2f",
                    "agreement": share(0.977, 0.947, 1.0),
                    "samples": 131,
                    "mean_face": share(0.412, 0.303, 0.531),
                }
            ]
        },
        "retrieval": {
            "pool_size": 131,
            "rows": [
                {
                    "window": "clip",
                    "metric": "cosine",
                    "predictor": "model",
                    "recall": {"5": share(0.099, 0.045, 0.159)},
                }
            ],
        },
        "real_voices": {"voices": 27, "judges": {"attributes": share(0.963, 0.889, 1.0)}},
    }
    lines = figure_lines(metrics)
    windows = [line.split(":")[0].split(", ")[1] for line in lines]
    assert windows == ["6 s window", "whole segment", "whole recording"]
    at = 0
    for window, line in zip(windows, lines, strict=True):
        at = paragraph.find(window, at)
        assert at >= 0, f"the README does not name the {window!r} of: {line}"
    for figure in re.findall(
        r"\d+\.\d % \[[\d.]+, [\d.]+\]|\d+\.\d % of \d+|chance \d+\.\d %", " ".join(lines)
    ):
        assert figure in paragraph, figure
