"""``s2f-demo``: the whole pipeline, offline, on a synthetic corpus, in minutes on a CPU.

Stages, each a real command of this project run in its own process (``python -m speech2face
...``), in ``output_dir``:

1. ``corpus``: a synthetic corpus (:func:`speech2face.data.synthetic.make_corpus`);
2. ``preprocess``: ``s2f-preprocess`` into shards, ``val_fraction`` of the speakers held
   out (the ``val`` split);
3. ``decoder``: ``s2f-train task=decoder debug=demo``;
4. ``voice``: ``s2f-train task=voice debug=demo`` against that decoder;
5. ``attributes``: ``s2f-train task=attributes`` on the training speakers' crops and the
   decoder's portraits of them (the classifier evaluation reads portraits with);
6. ``eval``: ``s2f-eval`` on the held-out speakers, with that classifier;
7. ``portraits``: a portrait for each held-out voice (:mod:`speech2face.inference`);
8. ``install``: the voice checkpoint becomes the default of ``s2f-infer`` (and of
   ``s2f-serve``, whose example voices are then this evaluation's held-out ones).

A finished stage leaves ``stages/<name>.done``; a rerun skips it, and the training commands
resume from their last checkpoint, so an interrupted demo continues where it stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speech2face.cli import hydra_override
from speech2face.config import require_file_name
from speech2face.errors import ConfigError, S2FError
from speech2face.fileio import write_atomic

STAGES_DIR = "stages"


class DemoError(S2FError, RuntimeError):
    """A stage of the demo that failed (its command's last words are in the message)."""


@dataclass(frozen=True)
class Paths:
    """Where each stage writes, under the demo's ``output_dir``."""

    root: Path

    @property
    def corpus(self) -> Path:
        return self.root / "corpus"

    @property
    def shards(self) -> Path:
        return self.root / "shards"

    @property
    def decoder(self) -> Path:
        return self.root / "runs" / "decoder"

    @property
    def voice(self) -> Path:
        return self.root / "runs" / "voice"

    @property
    def attributes(self) -> Path:
        return self.root / "runs" / "attributes"

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def portraits(self) -> Path:
        return self.root / "portraits"

    @staticmethod
    def last(run: Path) -> Path:
        return run / "checkpoints" / "last.pt"


def _command(name: str, *overrides: str) -> list[str]:
    """``python -m speech2face <name> <overrides>``: paths are passed quoted for Hydra
    (:func:`speech2face.cli.hydra_override`), so any folder name works."""
    return [sys.executable, "-m", "speech2face", name, *overrides]


def _run(command: list[str], quiet: bool) -> None:
    """Run one of this project's commands (its output shown unless ``quiet``); a failure
    raises with the command's last line (quiet) or a pointer to its output."""
    capture = subprocess.PIPE if quiet else None
    result = subprocess.run(command, stdout=capture, stderr=capture, text=True)
    if result.returncode == 0:
        return
    name = command[3]
    if quiet:
        lines = [line for line in (result.stderr or "").splitlines() if line.strip()]
        raise DemoError(f"{name} failed: {lines[-1] if lines else result.returncode}")
    raise DemoError(f"{name} failed with exit status {result.returncode} (its error is above)")


class Demo:
    """The demo's stages on ``cfg`` (``configs/demo.yaml``)."""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.paths = Paths(Path(require_file_name(cfg.output_dir, "output_dir", "a directory")))
        for key in ("speakers", "clips_per_speaker", "held_out_clips", "workers"):
            if int(cfg[key]) < 1:
                raise ConfigError(f"{key} must be at least 1, got {cfg[key]}")
        if int(cfg.speakers) < 5:
            raise ConfigError(f"speakers must be at least 5 to hold some out, got {cfg.speakers}")
        self.quiet = not bool(cfg.progress)
        from speech2face.config import config_dir

        model = str(cfg.voice.model)
        voice_models = sorted(p.stem for p in (config_dir() / "model").glob("voice_encoder*.yaml"))
        if model not in voice_models:
            raise ConfigError(
                f"voice.model must be one of {', '.join(voice_models)}, got {model!r}"
            )
        if model == "voice_encoder_ge2e":  # its weights come with an extra: say so before work
            from speech2face.models.speaker_encoder import resemblyzer_weights_path

            resemblyzer_weights_path()

    # ---------------------------------------------------------------- stages

    def stages(self) -> list[tuple[str, str, Callable[[], None]]]:
        """``(name, what it does, run)`` in order."""
        cfg = self.cfg
        return [
            ("corpus", f"{cfg.speakers} synthetic speakers", self.corpus),
            ("preprocess", "s2f-preprocess: faces, landmarks, dlib features", self.preprocess),
            ("decoder", f"s2f-train task=decoder, {cfg.decoder.steps} steps", self.decoder),
            ("voice", f"s2f-train task=voice, {cfg.voice.steps} steps", self.voice),
            (
                "attributes",
                f"s2f-train task=attributes, {cfg.attributes.steps} steps",
                self.attributes,
            ),
            ("eval", "s2f-eval on the held-out speakers", self.evaluate),
            ("portraits", "a portrait for each held-out voice", self.portraits),
            ("install", "the voice checkpoint becomes s2f-infer's default", self.install),
        ]

    def corpus(self) -> None:
        from speech2face.data.synthetic import make_corpus

        shutil.rmtree(self.paths.corpus, ignore_errors=True)  # an interrupted one
        make_corpus(
            self.paths.corpus,
            int(self.cfg.speakers),
            int(self.cfg.clips_per_speaker),
            seed=int(self.cfg.seed),
            workers=int(self.cfg.workers),
            fps=int(self.cfg.fps),
            sentences=self.cfg.get("sentences"),
            held_out_clips=int(self.cfg.held_out_clips),
            val_fraction=float(self.cfg.val_fraction),
        )

    def preprocess(self) -> None:
        corpus = self.paths.corpus
        _run(
            _command(
                "preprocess",
                "source=avspeech",
                hydra_override("source.csv", corpus / "clips.csv"),
                hydra_override("source.video_dir", f"{corpus / 'videos'}/"),
                hydra_override("source.labels", corpus / "labels.csv"),
                f"source.val_fraction={float(self.cfg.val_fraction)}",
                "source.test_fraction=0",
                "face_encoder=dlib",
                f"workers={int(self.cfg.workers)}",
                f"frames_per_clip={int(self.cfg.frames_per_clip)}",
                f"progress={str(not self.quiet).lower()}",
                hydra_override("output_dir", f"{self.paths.shards}/"),
            ),
            self.quiet,
        )

    def _train(self, task: str, output: Path, stage: Any, val_every: int, *overrides: str):
        """``s2f-train task=<task>`` with the stage's steps and batch size (``stage``: its
        config node), validating every ``val_every`` steps and keeping 4 checkpoints' worth."""
        steps = int(stage.steps)
        _run(
            _command(
                "train",
                f"task={task}",
                hydra_override("data.root", f"{self.paths.shards}/"),
                hydra_override("output_dir", f"{output}/"),
                f"trainer.progress={str(not self.quiet).lower()}",
                f"trainer.num_workers={int(self.cfg.workers) - 1}",
                f"trainer.batch_size={int(stage.batch_size)}",
                f"trainer.max_steps={steps}",
                f"trainer.val_every={val_every}",
                f"trainer.image_every={steps}",
                f"trainer.ckpt_every={max(steps // 4, 1)}",
                *overrides,
            ),
            self.quiet,
        )

    def decoder(self) -> None:
        stage = self.cfg.decoder
        self._train(
            "decoder",
            self.paths.decoder,
            stage,
            int(stage.steps),
            "face_encoder=dlib",
            "debug=demo",
            f"model.decoder.image_size={int(stage.image_size)}",
        )

    def voice(self) -> None:
        stage = self.cfg.voice
        regularise = []
        if stage.model == "voice_encoder_ge2e":
            regularise = [
                f"model.voice.embedding_noise={float(stage.embedding_noise)}",
                f"model.voice.embedding_dropout={float(stage.embedding_dropout)}",
                f"model.voice.heads={int(stage.heads)}",
            ]
        self._train(
            "voice",
            self.paths.voice,
            stage,
            max(int(stage.steps) // 2, 1),
            "face_encoder=dlib",
            "debug=demo",
            f"model@model.voice={stage.model}",
            f"model.voice.hidden_dim={int(stage.hidden_dim)}",
            *regularise,
            hydra_override("decoder_checkpoint", self.paths.last(self.paths.decoder)),
        )

    def attributes(self) -> None:
        stage = self.cfg.attributes
        self._train(
            "attributes",
            self.paths.attributes,
            stage,
            int(stage.steps),
            "debug=cpu",
            "optim=adamw_cosine",
            f"optim.optimizer.lr={float(stage.lr)}",
            "trainer.val_batches=null",
            hydra_override("decoder_checkpoint", self.paths.last(self.paths.decoder)),
        )

    def evaluate(self) -> None:
        _run(
            _command(
                "eval",
                hydra_override("checkpoint", self.paths.last(self.paths.voice)),
                hydra_override("data.root", f"{self.paths.shards}/"),
                "data.split=val",
                "attributes=classifier",
                hydra_override("attributes.checkpoint", self.paths.last(self.paths.attributes)),
                f"gallery_size={int(self.cfg.gallery_size)}",
                f"progress={str(not self.quiet).lower()}",
                hydra_override("output_dir", f"{self.paths.eval}/"),
            ),
            self.quiet,
        )

    def portraits(self) -> None:
        from speech2face.audio import SAMPLE_RATE
        from speech2face.data import ShardDataset
        from speech2face.fileio import atomic_outputs
        from speech2face.inference import Portraitist

        portraitist = Portraitist.from_checkpoint(self.paths.last(self.paths.voice))
        folder = self.paths.portraits
        folder.mkdir(parents=True, exist_ok=True)
        held_out = ShardDataset(str(self.paths.shards), "val", train=False, clip_samples=None)
        for number, sample in enumerate(held_out, 1):
            image = portraitist.portrait((sample["wav"], SAMPLE_RATE))
            with atomic_outputs(folder / portrait_name(number, sample["key"])) as (tmp,):
                image.save(tmp, format="PNG")

    def install(self) -> None:
        from speech2face.inference import install_default, install_gallery

        install_default(self.paths.last(self.paths.voice))
        install_gallery(self.paths.eval)

    # ---------------------------------------------------------------- the run

    def run(self) -> dict[str, Any]:
        stages = self.stages()
        marks = self.paths.root / STAGES_DIR
        marks.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        for number, (name, what, action) in enumerate(stages, 1):
            mark = marks / f"{name}.done"
            prefix = f"s2f-demo [{number}/{len(stages)}] {name}"
            if mark.exists():
                print(f"{prefix}: done earlier, skipped", flush=True)
                continue
            print(f"{prefix}: {what} ...", flush=True)
            began = time.perf_counter()
            action()
            seconds = time.perf_counter() - began
            write_atomic(mark, json.dumps({"seconds": round(seconds, 1)}).encode())
            print(f"{prefix}: done in {_duration(seconds)}", flush=True)
        summary = self.summary()
        print(f"s2f-demo: finished in {_duration(time.perf_counter() - start)}")
        for line in summary["lines"]:
            print(line)
        return summary

    def summary(self) -> dict[str, Any]:
        """The held-out figures the demo prints, from the evaluation's metrics.json."""
        metrics = json.loads((self.paths.eval / "metrics.json").read_text())
        lines = figure_lines(metrics)
        lines.append(f"report: {self.paths.eval / 'report.html'}")
        lines.append(f"portraits of the held-out voices: {self.paths.portraits}/")
        lines.append(
            f"{command_path('s2f-infer')} voice.wav now draws with this model "
            "(trained on synthetic voices)"
        )
        return {"metrics": metrics, "lines": lines}


def portrait_name(number: int, key: str) -> str:
    """``0001_<key>.png``: a held-out clip's portrait, numbered so that no name starts with
    ``-`` (a clip key may: YouTube IDs do), which shell tools would read as an option."""
    return f"{number:04d}_{key}.png"


def window_name(metrics: dict, window: str) -> str:
    """How the demo's lines name one of the evaluation's windows: ``6 s window``, or
    ``whole segment`` for ``clip`` (its windows averaged)."""
    seconds = (metrics.get("windows") or {}).get(window, {}).get("seconds")
    if window == "clip" or (seconds is None and window not in ("3s", "6s")):
        return "whole segment"
    if seconds is None:
        seconds = float(window.rstrip("s"))
    return f"{seconds:g} s window"


def figure_lines(metrics: dict) -> list[str]:
    """The demo's figures from ``metrics.json``, each naming its window."""
    from speech2face.evaluation.collect import PORTRAIT_WINDOW

    lines = []
    gender = next(
        (
            t
            for t in metrics["attributes"].get("tables", [])
            if (t["attribute"], t["reference"], t["compared"]) == ("gender", "dataset", "s2f")
        ),
        None,
    )
    if gender is not None:
        window = window_name(metrics, gender.get("window", PORTRAIT_WINDOW))
        lines.append(
            f"held-out voices, {window}: the portrait drawn from the voice has the "
            "speaker's gender in "
            f"{_pct(gender['agreement'])} of {gender['samples']} (the mean face's portrait: "
            f"{_pct(gender.get('mean_face'))})"
        )
    row = next(
        r
        for r in metrics["retrieval"]["rows"]
        if (r["window"], r["metric"], r["predictor"]) == ("clip", "cosine", "model")
    )
    pool = metrics["retrieval"]["pool_size"]
    k = "5" if "5" in row["recall"] else next(iter(row["recall"]))
    lines.append(
        f"held-out voices, {window_name(metrics, row['window'])}: the speaker's own face among "
        f"the {pool} held-out faces is in the predicted feature's top {k} for "
        f"{_pct(row['recall'][k])} (chance {100 * int(k) / pool:.1f} %)"
    )
    real = metrics.get("real_voices") or {}
    judges = real.get("judges") or {}
    if judges:
        said = " and ".join(f"{_pct(judge)} by the {name} judge" for name, judge in judges.items())
        lines.append(
            f"real voices, {REAL_VOICE_WINDOW}: portraits of {real['voices']} voices of other "
            "speech engines and recordings, never heard in training, have the voice's gender "
            f"in {said}"
        )
    return lines


# The real voices are drawn as s2f-infer draws: each whole recording, its windows averaged.
REAL_VOICE_WINDOW = "whole recording"


def command_path(name: str) -> str:
    """How to run this installation's ``name`` script from here: the bare name when it is
    the one on ``PATH``, else its path (relative when under the current directory, e.g.
    ``.venv/bin/s2f-infer``), quoted for a shell; ``python -m speech2face`` when no script
    is installed beside the interpreter."""
    bin_dir = Path(os.path.abspath(sys.executable)).parent
    script = bin_dir / name
    if not script.is_file():
        command = name.removeprefix("s2f-")
        return f"{_runnable(Path(os.path.abspath(sys.executable)))} -m speech2face {command}"
    found = shutil.which(name)
    if found and os.path.realpath(found) == os.path.realpath(script):
        return name
    return _runnable(script)


def _runnable(path: Path) -> str:
    import shlex

    try:
        relative = path.relative_to(Path.cwd())
    except ValueError:
        return shlex.quote(str(path))
    return shlex.quote(str(relative) if relative.parent != Path(".") else f"./{relative}")


def _pct(figure: dict | None) -> str:
    """``24.2 % [13.6, 34.8]``: a share and its interval, written as the README writes them."""
    if not figure:
        return "n/a"
    text = f"{100 * figure['value']:.1f} %"
    if figure.get("low") is not None and figure["low"] != figure["high"]:
        text += f" [{100 * figure['low']:.1f}, {100 * figure['high']:.1f}]"
    return text


def _duration(seconds: float) -> str:
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def run_demo(cfg: Any) -> dict[str, Any]:
    """``s2f-demo`` as ``configs/demo.yaml`` describes; one run per ``output_dir``."""
    from speech2face.runlock import hold_directory

    demo = Demo(cfg)
    os.makedirs(demo.paths.root, exist_ok=True)
    with hold_directory(demo.paths.root, "s2f-demo"):
        return demo.run()
