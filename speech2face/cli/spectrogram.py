"""``s2f-spectrogram``: audio file -> the exact tensor the voice encoder consumes."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from speech2face.cli import hydra_entry


@hydra_entry("spectrogram")
def main(cfg: DictConfig) -> dict:
    from speech2face.errors import ConfigError
    from speech2face.spectrogram_io import save_preview, save_spectrogram, spectrogram_of_file

    if cfg.seconds <= 0:
        raise ConfigError(f"seconds must be positive, got {cfg.seconds}")
    source = Path(cfg.input)
    output = Path(cfg.output) if cfg.output else source.with_name(source.stem + ".spec.npy")
    spec = spectrogram_of_file(source, seconds=float(cfg.seconds), offset=float(cfg.offset))
    save_spectrogram(spec, output)
    print(f"{output}: {tuple(spec.shape)} float32")
    if cfg.png:
        save_preview(spec, Path(cfg.png))
        print(f"{cfg.png}: preview")
    return {"shape": tuple(spec.shape)}
