"""``s2f-eval``: the paper's evaluation of a voice checkpoint, beside the paper's figures.

Writes ``metrics.json`` (schema: docs/evaluation.md), ``report.html`` and ``media/`` under
``output_dir``, all at once when the evaluation has finished.
"""

from __future__ import annotations

from omegaconf import DictConfig

from speech2face.cli import hydra_entry


@hydra_entry("eval")
def main(cfg: DictConfig) -> dict:
    from speech2face.evaluation import evaluate

    return evaluate(cfg)
