"""``s2f-train``: train the face decoder (task=decoder), then the voice encoder (task=voice);
or the attribute classifier evaluation uses (task=attributes).

Writes ``checkpoints/last.pt`` and ``best.pt``, TensorBoard events and ``config.yaml`` under
``output_dir``; run again with the same arguments, it resumes from ``last.pt``. Several
processes: ``torchrun --nproc_per_node=N $(which s2f-train) ...``.
"""

from __future__ import annotations

from omegaconf import DictConfig

from speech2face.cli import hydra_entry

TASKS = ("decoder", "voice", "attributes")

USAGE = """\
s2f-train: train the face decoder, then the voice encoder; or the attribute classifier

  s2f-train task=decoder data.root=OUT/ output_dir=RUN_DEC/
  s2f-train task=voice data.root=OUT/ decoder_checkpoint=RUN_DEC/checkpoints/last.pt \\
            output_dir=RUN_VOICE/
  s2f-train task=attributes faces=fairface faces.csv=FAIRFACE/fairface_label_train.csv \\
            output_dir=RUN_ATTR/          (or faces=utkface faces.root=UTKFace/, or
                                          data.root=OUT/ for shards made with labels)

tasks:
  decoder     the face decoder: face features -> a face (the paper's Fig. 3)
  voice       the voice encoder: a spectrogram -> a face feature, against a trained decoder
  attributes  the attribute classifier s2f-eval's attributes=classifier reads

required: task, output_dir, data.root (the s2f-preprocess output; task=attributes may read
  faces=... instead), and for task=voice decoder_checkpoint (the decoder's last.pt)

presets (add one):
  debug=cpu          tiny models, a few steps: checks that everything runs, in about a minute
  debug=demo         learns something on a CPU in minutes (what s2f-demo trains with)
  experiment=paper   the paper's settings

Writes output_dir/checkpoints/{{last,best,step-N}}.pt, output_dir/tensorboard/ and
output_dir/config.yaml; run again with the same arguments, it resumes from last.pt.
Several processes: torchrun --nproc_per_node=N $(which s2f-train) ...

config groups (group=option):
{groups}

s2f-train --cfg job [key=value ...] prints the composed config; --hydra-help, Hydra's options."""


def usage() -> str:
    """``s2f-train --help``: the tasks, the required values, examples and the presets."""
    import textwrap

    from hydra import compose, initialize_config_dir

    from speech2face.config import config_dir

    root = config_dir()
    with initialize_config_dir(str(root), version_base="1.3"):
        choices = compose("train", return_hydra_config=True).hydra.runtime.choices
    names = sorted({key.split("@")[0] for key in choices if not key.startswith("hydra")})
    groups = [
        textwrap.fill(
            ", ".join(sorted(p.stem for p in (root / name).glob("*.yaml"))),
            width=92,
            initial_indent=f"  {name + ':':<14}",
            subsequent_indent=" " * 16,
        )
        for name in names
        if (root / name).is_dir()
    ]
    return USAGE.format(groups="\n".join(groups))


def missing_values(cfg: DictConfig) -> list[str]:
    """The required values ``cfg`` lacks for its task (every one, not just the first)."""
    from omegaconf import OmegaConf

    absent = set(OmegaConf.missing_keys(cfg))
    task = None if "task" in absent else str(cfg.task)
    needed = []
    if task is None:
        needed.append(f"task=<{'|'.join(TASKS)}>")
    if "output_dir" in absent:
        needed.append("output_dir=...")
    if task in (None, "decoder", "voice") and "data.root" in absent:
        needed.append("data.root=...")
    if task in (None, "voice") and "decoder_checkpoint" in absent:
        needed.append("decoder_checkpoint=..." + (" (task=voice)" if task is None else ""))
    if task == "attributes":
        needed += [f"{key}=..." for key in sorted(absent) if key.startswith("faces.")]
    return needed


@hydra_entry("train", usage=usage)
def main(cfg: DictConfig) -> dict:
    from speech2face.errors import ConfigError
    from speech2face.training import train

    needed = missing_values(cfg)
    if needed:
        raise ConfigError(
            f"missing required values: {' '.join(needed)} (s2f-train --help gives examples)"
        )
    return train(cfg)
