"""``s2f-demo``: the whole pipeline offline on a synthetic corpus, then ``s2f-infer`` works.

Builds a corpus, preprocesses it, trains the decoder, the voice encoder and an attribute
classifier, evaluates on held-out speakers, draws their portraits and installs the voice
checkpoint as ``s2f-infer``'s default. A rerun skips the finished stages.
"""

from __future__ import annotations

from omegaconf import DictConfig

from speech2face.cli import hydra_entry


@hydra_entry("demo")
def main(cfg: DictConfig) -> dict:
    from speech2face.demo import run_demo

    return run_demo(cfg)
