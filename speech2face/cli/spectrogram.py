"""``s2f-spectrogram``: audio file -> the exact tensor the voice encoder consumes."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from speech2face.cli import hydra_entry

PREVIEW_FORMATS = (".png", ".jpg", ".jpeg", ".pdf", ".svg")


@hydra_entry("spectrogram")
def main(cfg: DictConfig) -> dict:
    from speech2face.config import require_number
    from speech2face.errors import ConfigError
    from speech2face.fileio import atomic_outputs
    from speech2face.spectrogram_io import (
        save_preview,
        save_spectrogram,
        spectrogram_of_file,
    )

    seconds = require_number(cfg.seconds, "seconds", minimum=0.025, strict=False)
    offset = require_number(cfg.offset, "offset", minimum=0)
    png = Path(cfg.png) if cfg.png else None
    if png and png.suffix.lower() not in PREVIEW_FORMATS:
        raise ConfigError(f"png must end in one of {', '.join(PREVIEW_FORMATS)}, got '{png}'")
    source = Path(cfg.input)
    output = Path(cfg.output) if cfg.output else source.with_name(source.stem + ".spec.npy")
    spec = spectrogram_of_file(source, seconds=float(seconds), offset=float(offset))
    with atomic_outputs(output, *([png] if png else [])) as temps:
        save_spectrogram(spec, temps[0])
        if png:
            save_preview(spec, temps[1], image_format=png.suffix.lstrip(".").lower())
    print(f"{output}: {tuple(spec.shape)} float32")
    if png:
        print(f"{png}: preview")
    return {"shape": tuple(spec.shape)}
