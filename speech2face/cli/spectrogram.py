"""``s2f-spectrogram``: audio file -> the exact tensor the voice encoder consumes."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from speech2face.cli import hydra_entry

PREVIEW_FORMATS = (".png", ".jpg", ".jpeg", ".pdf", ".svg")


@hydra_entry("spectrogram")
def main(cfg: DictConfig) -> dict:
    from speech2face.config import require_bool, require_number
    from speech2face.fileio import atomic_outputs

    seconds = require_number(cfg.seconds, "seconds", minimum=0.025, strict=False)
    offset = require_number(cfg.offset, "offset", minimum=0)
    overwrite = require_bool(cfg.overwrite, "overwrite")
    source = input_path(cfg.input)
    output, png = output_paths(cfg.output, cfg.png, source, overwrite)

    from speech2face.audio import one_line_warnings
    from speech2face.spectrogram_io import save_preview, save_spectrogram, spectrogram_of_file

    with one_line_warnings("s2f-spectrogram"):
        spec = spectrogram_of_file(source, seconds=float(seconds), offset=float(offset))
    outputs = [output, *([png] if png else [])]
    with atomic_outputs(*outputs, overwrite=overwrite) as temps:
        save_spectrogram(spec, temps[0])
        if png:
            save_preview(spec, temps[1], image_format=png.suffix.lstrip(".").lower())
    print(f"{output}: {tuple(spec.shape)} float32")
    if png:
        print(f"{png}: preview")
    return {"shape": tuple(spec.shape)}


def input_path(value: object) -> Path:
    """The ``input`` key as an existing path that is not a directory.

    Whether the file decodes is :func:`speech2face.audio.load_audio`'s to say.
    """
    from speech2face.config import require_file_name
    from speech2face.errors import ConfigError

    source = Path(require_file_name(value, "input", "an audio or video file"))
    if source.is_dir():
        raise ConfigError(f"input '{value}' is a directory; name an audio or video file")
    if not source.exists():
        raise ConfigError(f"input '{value}' does not exist")
    return source


def output_paths(
    output: object, png: object, source: Path, overwrite: bool
) -> tuple[Path, Path | None]:
    """The ``.npy`` path (default ``<stem>.spec.npy`` beside ``source``) and the preview's.

    Both are checked before any work: the right suffix, not a directory, not the input,
    a writable directory, and no existing file unless ``overwrite``.
    """
    from speech2face.config import require_file_name

    if output is None:
        npy = source.with_name(source.stem + ".spec.npy")
    else:
        npy = Path(require_file_name(output, "output", "a .npy file"))
    _check_output(npy, "output", (".npy",), source, overwrite)
    if png is None:
        return npy, None
    image = Path(require_file_name(png, "png", "an image file"))
    _check_output(image, "png", PREVIEW_FORMATS, source, overwrite)
    return npy, image


def _check_output(
    path: Path, key: str, suffixes: tuple[str, ...], source: Path, overwrite: bool
) -> None:
    from speech2face.errors import ConfigError
    from speech2face.fileio import OutputExistsError, check_output

    if path.suffix.lower() not in suffixes:
        raise ConfigError(f"{key} must end in {' or '.join(suffixes)}, got '{path}'")
    try:
        check_output(path, inputs=[source], overwrite=overwrite)
    except OutputExistsError:
        other = f"{key}=OTHER{suffixes[0]}"
        raise ConfigError(f"{path} exists; pass overwrite=true, or {other}") from None
