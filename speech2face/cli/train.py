"""``s2f-train``: train the face decoder (task=decoder), then the voice encoder (task=voice);
or the attribute classifier evaluation uses (task=attributes).

Writes ``checkpoints/last.pt`` and ``best.pt``, TensorBoard events and ``config.yaml`` under
``output_dir``; run again with the same arguments, it resumes from ``last.pt``. Several
processes: ``torchrun --nproc_per_node=N $(which s2f-train) ...``.
"""

from __future__ import annotations

from omegaconf import DictConfig

from speech2face.cli import hydra_entry


@hydra_entry("train")
def main(cfg: DictConfig) -> dict:
    from speech2face.training import train

    return train(cfg)
