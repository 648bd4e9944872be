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
SHA-256. The digest is remembered in a sidecar ``<file>.sha256`` with the file's size and
mtime (whether it matched or not), so later calls do not hash the file again until it
changes. A cached file that fails raises :class:`WeightsError` naming the file, the expected
and the actual value and what to do; the file itself is never deleted. ``fetch(...,
force=True)`` (``s2f-weights action=fetch name=... force=true``) downloads a file again and
replaces the cached one only once the new one has passed its checks.

Checksums: the registry stores a SHA-256 and size only where one has been published;
``sha256=None`` / ``size=None`` mean *unverified*: such a file is accepted as it is.

States (:func:`status`, listed by ``s2f-weights``), found without reading the file:
``missing``; ``partial (N bytes)`` (an interrupted download); ``wrong size`` (differs from
the registered size); ``verified`` / ``failed`` (the sidecar's digest of the file as it is
now matches / does not match the registered SHA-256); ``unverified (not hashed)`` (a
SHA-256 is registered but the file has not been hashed yet); ``unverified (no checksum)``
(none is published). :func:`verify` hashes now (``s2f-weights action=verify``); a file with
no checksum is then read with ``torch.load(weights_only=True)`` to catch a corrupt one.

A weight file that torch cannot read is reported by :func:`unreadable_hint` as corrupt, with
its registered size and checksum and how to fetch it again.

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
VERIFIED_SUFFIX = ".sha256"  # sidecar remembering the SHA-256 of a cached file
CHUNK_BYTES = 1 << 20  # 1 MiB per read while downloading and hashing
TIMEOUT_S = 60.0  # socket timeout of one download request
USER_AGENT = "speech2face-weights/1"


class WeightsError(S2FError, RuntimeError):
    """A weight file that is missing, cannot be downloaded, or fails its checksum."""


# States of a registry entry's file, as listed (see the module docstring).
MISSING = "missing"
WRONG_SIZE = "wrong size"
VERIFIED = "verified"
FAILED = "failed"
NOT_HASHED = "unverified (not hashed)"
NO_CHECKSUM = "unverified (no checksum)"
CORRUPT = "corrupt"  # found by verify(): torch cannot read a file that has no checksum
BAD_STATES = (WRONG_SIZE, FAILED, CORRUPT)


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


def check_size(entry: WeightsEntry, path: Path) -> None:
    """:class:`WeightsError` (expected vs actual, one line) when ``path`` has the wrong size."""
    if entry.size is not None:
        actual = path.stat().st_size
        if actual != entry.size:
            raise WeightsError(
                f"{path} has {actual} bytes, expected {entry.size} for {entry.filename}"
            )


def check_digest(entry: WeightsEntry, path: Path, digest: str) -> None:
    """:class:`WeightsError` (expected vs actual, one line) when ``digest`` is not ``entry``'s."""
    if entry.sha256 is not None and digest != entry.sha256:
        raise WeightsError(
            f"{path} has SHA-256 {digest}, expected {entry.sha256} for {entry.filename}"
        )


def check_file(entry: WeightsEntry, path: Path) -> str | None:
    """Check ``path`` against ``entry``'s known size, then its known SHA-256.

    The size is compared first, so a truncated or wrong file fails without being hashed.
    Returns the SHA-256 when it was computed (and matched), ``None`` when ``entry`` has no
    checksum; raises :class:`WeightsError` (expected vs actual, one line) on a mismatch.
    """
    check_size(entry, path)
    if entry.sha256 is None:
        return None
    digest = sha256_of(path)
    check_digest(entry, path, digest)
    return digest


def sidecar_path(path: str | os.PathLike) -> Path:
    """The ``<file>.sha256`` that remembers the SHA-256 of ``path``."""
    path = Path(path)
    return path.with_name(path.name + VERIFIED_SUFFIX)


def _stamp(path: Path) -> dict[str, int]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def recorded_digest(path: Path) -> str | None:
    """The SHA-256 that ``path``'s sidecar records for the file as it is now, if any."""
    try:
        record = json.loads(sidecar_path(path).read_text())
        stamp = _stamp(path)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("sha256"), str):
        return None
    if any(record.get(key) != value for key, value in stamp.items()):
        return None  # the file changed since it was hashed
    return record["sha256"]


def is_recorded(entry: WeightsEntry, path: Path) -> bool:
    """Whether ``path``'s sidecar records ``entry``'s SHA-256 for the file as it is now."""
    return entry.sha256 is not None and recorded_digest(path) == entry.sha256


def _record(path: Path, digest: str) -> None:
    """Write ``path``'s sidecar; a cache that cannot be written is checked again next time."""
    sidecar = sidecar_path(path)
    with contextlib.suppress(OSError):
        write_atomic(sidecar, (json.dumps({"sha256": digest, **_stamp(path)}) + "\n").encode())


def refetch_advice(entry: WeightsEntry, path: Path) -> str:
    """What to do about a bad file at ``path``: fetch it again, or replace it by hand."""
    replace = f"replace it with the file from {entry.url}"
    if REGISTRY.get(entry.name) != entry or path.name != entry.filename:
        return replace
    command = f"s2f-weights action=fetch name={entry.name} force=true"
    if path.parent.resolve() != weights_home().resolve():
        command += f" cache_dir={path.parent}"
    return f"fetch it again ({command}) or {replace}"


def check_cached(entry: WeightsEntry, path: Path, rehash: bool = False) -> str | None:
    """Check a file already in the cache: size, then SHA-256, where ``entry`` knows them.

    The digest is recorded in the file's sidecar, whether it matches or not, and taken from
    there while the file is unchanged (``rehash=True`` computes it again). Returns the
    digest (``None`` when ``entry`` has no checksum); raises :class:`WeightsError` saying
    what to do when the file fails. The file is left where it is.
    """
    try:
        check_size(entry, path)
        if entry.sha256 is None:
            return None
        digest = None if rehash else recorded_digest(path)
        if digest is None:
            digest = sha256_of(path)
            _record(path, digest)
        check_digest(entry, path, digest)
    except WeightsError as error:
        raise WeightsError(f"{error}: {refetch_advice(entry, path)}") from None
    return digest


def verify_cached(entry: WeightsEntry, path: Path) -> None:
    """Check a file already in the cache, hashing it once (see :func:`check_cached`)."""
    check_cached(entry, path)


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
    force: bool = False,
) -> Path:
    """Path of ``entry``'s file, downloading and verifying it first if it is not cached.

    Args:
        entry: a :class:`WeightsEntry` or a registry name.
        cache_dir: directory holding the files (default :func:`weights_home`).
        download: allow a download; default: unless ``$S2F_OFFLINE`` is set.
        progress: show a tqdm progress bar while downloading.
        force: download again even if the file is cached; the cached file is replaced only
            once the new one has passed its checks, and kept if the download fails.

    A file already at its path is checked by :func:`verify_cached` (size, then SHA-256,
    where known; remembered in ``<file>.sha256`` so that it is hashed once) and returned.
    """
    entry = get_entry(entry) if isinstance(entry, str) else entry
    path = local_path(entry, cache_dir)
    cached = path.is_file()
    if cached and not force:
        verify_cached(entry, path)
        return path
    if download is None:
        download = not offline()
    if not download:
        where = f"{OFFLINE_ENV} is set" if offline() else "download=false"
        if cached:
            raise WeightsError(
                f"cannot fetch {entry.filename} again: downloads are disabled ({where}); "
                f"the cached {path} was kept"
            )
        reason = f"{entry.filename} is not cached and downloads are disabled ({where})"
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
    else:
        sidecar_path(path).unlink(missing_ok=True)  # a record of the file it replaced
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
    """State of ``entry``'s file, found without reading it (see the module docstring).

    ``missing``, ``partial (N bytes)``, ``wrong size``, ``verified``, ``failed``,
    ``unverified (not hashed)`` or ``unverified (no checksum)``: the size is compared with
    the registry's, the checksum state is the one the file's sidecar records.
    """
    path = local_path(entry, cache_dir)
    if not path.is_file():
        part = path.with_name(path.name + PART_SUFFIX)
        if part.is_file():
            return f"partial ({part.stat().st_size} bytes)"
        return MISSING
    if entry.size is not None and path.stat().st_size != entry.size:
        return WRONG_SIZE
    if entry.sha256 is None:
        return NO_CHECKSUM
    digest = recorded_digest(path)
    if digest is None:
        return NOT_HASHED
    return VERIFIED if digest == entry.sha256 else FAILED


def verify(
    entry: WeightsEntry | str, cache_dir: str | os.PathLike | None = None
) -> tuple[str, str]:
    """Check ``entry``'s cached file now; returns its state and a one-line detail.

    The size is compared first; then the file is hashed again (the sidecar is refreshed)
    and compared with the registered SHA-256. A file with no published checksum is read
    with ``torch.load(weights_only=True)`` instead: state ``corrupt`` when torch cannot read
    it. A file that is not there keeps its :func:`status` (``missing``, ``partial``).
    """
    entry = get_entry(entry) if isinstance(entry, str) else entry
    path = local_path(entry, cache_dir)
    if not path.is_file():
        return status(entry, cache_dir), f"not in the cache: {path}"
    try:
        digest = check_cached(entry, path, rehash=True)
    except WeightsError as error:
        wrong_size = entry.size is not None and path.stat().st_size != entry.size
        return (WRONG_SIZE if wrong_size else FAILED), str(error)
    if digest is not None:
        return VERIFIED, f"size and SHA-256 {digest} match the registry"
    from speech2face.tensor_io import safe_load  # torch: only for this check

    try:
        loaded = safe_load(path, WeightsError, "weights file", hint=unreadable_hint)
    except WeightsError as error:
        return CORRUPT, str(error)
    tensors = len(loaded) if isinstance(loaded, dict) else 0
    return NO_CHECKSUM, f"no checksum is published; torch reads it ({tensors} entries)"


def unreadable_hint(path: str | os.PathLike) -> str:
    """For a registry file that torch cannot read: its registered size and checksum, what to do.

    ``""`` when ``path`` is not named like a registry file.
    """
    path = Path(path)
    entry = next((e for e in REGISTRY.values() if e.filename == path.name), None)
    if entry is None:
        return ""
    known = []
    if entry.size is not None:
        known.append(format_size(entry.size))
    if entry.sha256 is not None:
        known.append(f"SHA-256 {entry.sha256}")
    expected = (
        f"{entry.name} should have {' and '.join(known)}"
        if known
        else f"no size or checksum is published for {entry.name}"
    )
    return f"{expected}; {refetch_advice(entry, path)}"


def format_size(size: int | None, unknown: str = "unknown") -> str:
    """``111,898,327 B``; ``unknown`` for ``None``."""
    return unknown if size is None else f"{size:,} B"


def listing(
    cache_dir: str | os.PathLike | None = None, names: list[str] | None = None
) -> list[dict[str, str | int | None]]:
    """One row per registry entry (or per entry of ``names``); reads no file's contents.

    Keys: name, state (:func:`status`), checksum (``sha256 <12 hex digits>...`` or ``none
    published``), size (registered bytes or ``None``), on_disk (bytes of the cached file or
    ``None``), path, url, description.
    """
    entries = [get_entry(name) for name in names] if names is not None else REGISTRY.values()
    rows = []
    for entry in entries:
        path = local_path(entry, cache_dir)
        rows.append(
            {
                "name": entry.name,
                "state": status(entry, cache_dir),
                "checksum": f"sha256 {entry.sha256[:12]}..." if entry.sha256 else "none published",
                "size": entry.size,
                "on_disk": path.stat().st_size if path.is_file() else None,
                "path": str(path),
                "url": entry.url,
                "description": entry.description,
            }
        )
    return rows
