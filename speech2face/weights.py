"""Registry of pretrained weight files: where each comes from, its checksum, its local cache.

Files are downloaded on first use into ``$S2F_HOME/weights`` (default
``~/.cache/speech2face/weights``) with a progress bar. A download is written to
``<name>.part``, checked against the registered SHA-256 and size where they are known, and
renamed into place only then; an interrupted download resumes from its ``.part`` with an
HTTP ``Range`` request (or starts over when the server does not honour it). Setting
``S2F_OFFLINE=1`` (or passing ``download=False``) never touches the network: a missing file
then raises :class:`WeightsError` whose one-line message names the file, its URL and the
path to put it at.

A file already in the cache (downloaded earlier, or put there by hand as that message
suggests) is checked on first use too: its size first (a fast one-line failure), then its
SHA-256. A successful check is remembered in a sidecar ``<file>.sha256`` holding the digest
with the file's size and mtime, so later calls do not hash the file again until it changes.
A cached file that fails raises :class:`WeightsError` naming the file, the expected and the
actual value and what to do; the file itself is never deleted.

Checksums: the registry stores a SHA-256 and size only where one has been published;
``sha256=None`` / ``size=None`` mean *unverified*: such a file is accepted as it is, and
``python -m speech2face weights`` lists it as unverified.

- ``vgg_face_dag``: the PyTorch conversion of Oxford's VGG-Face (Parkhi et al. 2015) by
  S. Albanie (``vgg_face_dag.pth``, a plain state dict). No checksum or exact size has been
  published for it: unverified.
- ``facenet_vggface2``: facenet-pytorch's InceptionResnetV1 trained on VGGFace2
  (``20180402-114759-vggface2.pt``, release v2.2.9, 111,898,327 bytes). Its SHA-256 and
  size are the ones recorded by a public project that pins this file together with
  facenet-pytorch's bundled MTCNN weights (whose recorded hashes match the files that
  facenet-pytorch 2.5.3 ships).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from speech2face.errors import S2FError
from speech2face.fileio import write_atomic

HOME_ENV = "S2F_HOME"
OFFLINE_ENV = "S2F_OFFLINE"
DEFAULT_HOME = Path("~/.cache/speech2face")
WEIGHTS_SUBDIR = "weights"
PART_SUFFIX = ".part"
VERIFIED_SUFFIX = ".sha256"  # sidecar remembering a successful check of a cached file
CHUNK_BYTES = 1 << 20  # 1 MiB per read while downloading and hashing
TIMEOUT_S = 60.0  # socket timeout of one download request
USER_AGENT = "speech2face-weights/1"


class WeightsError(S2FError, RuntimeError):
    """A weight file that is missing, cannot be downloaded, or fails its checksum."""


@dataclass(frozen=True)
class WeightsEntry:
    """One downloadable weight file.

    Attributes:
        name: registry key (``fetch(name)``, ``weights=<name>`` in configs).
        filename: file name in the cache directory.
        url: where to download it from (``http(s)://`` or ``file://``).
        sha256: hex digest of the file, or ``None`` when no checksum is published.
        size: size in bytes, or ``None`` when unknown.
        description: one line for listings.
    """

    name: str
    filename: str
    url: str
    sha256: str | None
    size: int | None
    description: str

    @property
    def verified(self) -> bool:
        """Whether a download of this entry is checked against a known SHA-256."""
        return self.sha256 is not None


REGISTRY: dict[str, WeightsEntry] = {
    entry.name: entry
    for entry in (
        WeightsEntry(
            name="vgg_face_dag",
            filename="vgg_face_dag.pth",
            url="https://www.robots.ox.ac.uk/~albanie/models/pytorch-mcn/vgg_face_dag.pth",
            sha256=None,  # none published: unverified
            size=None,
            description="VGG-Face (VGG-16, 2,622 identities), the paper's face encoder",
        ),
        WeightsEntry(
            name="facenet_vggface2",
            filename="20180402-114759-vggface2.pt",
            url=(
                "https://github.com/timesler/facenet-pytorch/releases/download/"
                "v2.2.9/20180402-114759-vggface2.pt"
            ),
            sha256="281cebca8662831adb987a874bdcb36e73f5b1c6dc5ee5878f305e985625d99b",
            size=111_898_327,
            description="FaceNet InceptionResnetV1 trained on VGGFace2 (512-D, 8,631 classes)",
        ),
    )
}


def weights_home() -> Path:
    """Directory that holds downloaded weights: ``$S2F_HOME/weights``."""
    home = os.environ.get(HOME_ENV)
    return (Path(home) if home else DEFAULT_HOME).expanduser() / WEIGHTS_SUBDIR


def offline() -> bool:
    """Whether ``$S2F_OFFLINE`` forbids downloads."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def get_entry(name: str) -> WeightsEntry:
    """The registry entry ``name``; :class:`WeightsError` listing the known names otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise WeightsError(f"unknown weights '{name}' (known: {known})") from None


def local_path(entry: WeightsEntry | str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where ``entry``'s file lives in the cache (whether or not it is there yet)."""
    entry = get_entry(entry) if isinstance(entry, str) else entry
    return (
        Path(cache_dir).expanduser() if cache_dir is not None else weights_home()
    ) / entry.filename


def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def check_file(entry: WeightsEntry, path: Path) -> str | None:
    """Check ``path`` against ``entry``'s known size, then its known SHA-256.

    The size is compared first, so a truncated or wrong file fails without being hashed.
    Returns the SHA-256 when it was computed (and matched), ``None`` when ``entry`` has no
    checksum; raises :class:`WeightsError` (expected vs actual, one line) on a mismatch.
    """
    if entry.size is not None:
        actual = path.stat().st_size
        if actual != entry.size:
            raise WeightsError(
                f"{path} has {actual} bytes, expected {entry.size} for {entry.filename}"
            )
    if entry.sha256 is None:
        return None
    digest = sha256_of(path)
    if digest != entry.sha256:
        raise WeightsError(
            f"{path} has SHA-256 {digest}, expected {entry.sha256} for {entry.filename}"
        )
    return digest


def sidecar_path(path: str | os.PathLike) -> Path:
    """The ``<file>.sha256`` that remembers a successful check of ``path``."""
    path = Path(path)
    return path.with_name(path.name + VERIFIED_SUFFIX)


def _stamp(path: Path) -> dict[str, int]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def is_recorded(entry: WeightsEntry, path: Path) -> bool:
    """Whether ``path``'s sidecar records ``entry``'s SHA-256 for the file as it is now."""
    if entry.sha256 is None:
        return False
    try:
        record = json.loads(sidecar_path(path).read_text())
        stamp = _stamp(path)
    except (OSError, ValueError):
        return False
    return (
        isinstance(record, dict)
        and record.get("sha256") == entry.sha256
        and all(record.get(key) == value for key, value in stamp.items())
    )


def _record(path: Path, digest: str) -> None:
    """Write ``path``'s sidecar; a cache that cannot be written is checked again next time."""
    sidecar = sidecar_path(path)
    with contextlib.suppress(OSError):
        write_atomic(sidecar, (json.dumps({"sha256": digest, **_stamp(path)}) + "\n").encode())


def verify_cached(entry: WeightsEntry, path: Path) -> None:
    """Check a file already in the cache, once: a success is remembered in its sidecar.

    Raises :class:`WeightsError` saying to delete or replace the file when it fails; the file
    is left where it is.
    """
    if entry.sha256 is None and entry.size is None:
        return  # unverified: nothing to check against
    if is_recorded(entry, path):
        return
    try:
        digest = check_file(entry, path)
    except WeightsError as error:
        fetch_hint = (
            f" (s2f-weights action=fetch name={entry.name})"
            if REGISTRY.get(entry.name) == entry
            else ""
        )
        raise WeightsError(
            f"{error}: delete it and download it again{fetch_hint}, "
            f"or replace it with the file from {entry.url}"
        ) from None
    if digest is not None:
        _record(path, digest)


def missing_message(entry: WeightsEntry, path: Path, reason: str) -> str:
    """One line telling the user which file to put where."""
    return (
        f"{reason}: download {entry.filename} from {entry.url} and put it at {path} "
        f"(or set {HOME_ENV} to a directory whose {WEIGHTS_SUBDIR}/ holds it)"
    )


def fetch(
    entry: WeightsEntry | str,
    cache_dir: str | os.PathLike | None = None,
    download: bool | None = None,
    progress: bool = True,
) -> Path:
    """Path of ``entry``'s file, downloading and verifying it first if it is not cached.

    Args:
        entry: a :class:`WeightsEntry` or a registry name.
        cache_dir: directory holding the files (default :func:`weights_home`).
        download: allow a download; default: unless ``$S2F_OFFLINE`` is set.
        progress: show a tqdm progress bar while downloading.

    A file already at its path is checked by :func:`verify_cached` (size, then SHA-256,
    where known; remembered in ``<file>.sha256`` so that it is hashed once) and returned.
    """
    entry = get_entry(entry) if isinstance(entry, str) else entry
    path = local_path(entry, cache_dir)
    if path.is_file():
        verify_cached(entry, path)
        return path
    if download is None:
        download = not offline()
    if not download:
        reason = f"{entry.filename} is not cached and downloads are disabled"
        if offline():
            reason += f" ({OFFLINE_ENV} is set)"
        raise WeightsError(missing_message(entry, path, reason))
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + PART_SUFFIX)
    try:
        _download(entry.url, part, progress=progress, desc=entry.filename)
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise WeightsError(
            missing_message(entry, path, f"could not download {entry.filename} ({reason})")
        ) from error
    try:
        digest = check_file(entry, part)
    except WeightsError as error:
        part.unlink(missing_ok=True)
        raise WeightsError(f"{error}; the download was removed, try again") from None
    os.replace(part, path)
    if digest is not None:
        _record(path, digest)
    return path


def _download(url: str, part: Path, progress: bool, desc: str) -> None:
    """Download ``url`` into ``part``, resuming from its current size when possible."""
    from tqdm.auto import tqdm

    offset = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as error:
        if error.code != 416 or not offset:  # 416: the .part already holds the whole file
            raise
        return
    with response:
        resumed = offset > 0 and _resumes_at(response, offset)
        if not resumed:
            offset = 0  # no Range support (or file://): start over
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        with (
            open(part, "ab" if resumed else "wb") as handle,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=desc,
                disable=not progress,
            ) as bar,
        ):
            while block := response.read(CHUNK_BYTES):
                handle.write(block)
                bar.update(len(block))
    if total is not None and part.stat().st_size != total:
        raise OSError(f"connection closed after {part.stat().st_size} of {total} bytes")


def _resumes_at(response, offset: int) -> bool:
    """Whether ``response`` is a 206 partial response starting at byte ``offset``."""
    if getattr(response, "status", None) != 206:
        return False
    content_range = response.headers.get("Content-Range", "")  # "bytes 100-999/1000"
    try:
        start = int(content_range.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return False
    return start == offset


def resolve(spec: str | os.PathLike, download: bool | None = None) -> Path:
    """A weights argument as a file: a registry name (fetched) or a path that must exist."""
    if isinstance(spec, str) and spec in REGISTRY:
        return fetch(spec, download=download)
    path = Path(spec).expanduser()
    if not path.is_file():
        known = ", ".join(sorted(REGISTRY))
        raise WeightsError(f"weights file {path} not found (or use a registry name: {known})")
    return path


def status(entry: WeightsEntry, cache_dir: str | os.PathLike | None = None) -> str:
    """``cached``, ``partial (N bytes)`` or ``missing`` for ``entry``'s file."""
    path = local_path(entry, cache_dir)
    if path.is_file():
        return "cached"
    part = path.with_name(path.name + PART_SUFFIX)
    if part.is_file():
        return f"partial ({part.stat().st_size} bytes)"
    return "missing"


def format_size(size: int | None, unknown: str = "unknown") -> str:
    """``111,898,327 B``; ``unknown`` for ``None``."""
    return unknown if size is None else f"{size:,} B"


def listing(cache_dir: str | os.PathLike | None = None) -> list[dict[str, str | int | None]]:
    """One row per registry entry.

    Keys: name, state, checksum, size (registered bytes or ``None``), on_disk (bytes of the
    cached file or ``None``), path, url, description.
    """
    rows = []
    for entry in REGISTRY.values():
        path = local_path(entry, cache_dir)
        rows.append(
            {
                "name": entry.name,
                "state": status(entry, cache_dir),
                "checksum": f"sha256 {entry.sha256[:12]}..." if entry.sha256 else "unverified",
                "size": entry.size,
                "on_disk": path.stat().st_size if path.is_file() else None,
                "path": str(path),
                "url": entry.url,
                "description": entry.description,
            }
        )
    return rows
