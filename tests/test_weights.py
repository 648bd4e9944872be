"""The weights registry: download from file:// and a local HTTP server, verify, resume."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from speech2face import weights
from speech2face.weights import REGISTRY, WeightsEntry, WeightsError

PAYLOAD = bytes(range(256)) * 4099  # ~1 MiB: more than one download chunk


def make_entry(url: str, payload: bytes = PAYLOAD, sha256: bool = True, size: bool = True):
    return WeightsEntry(
        name="test",
        filename="test.pth",
        url=url,
        sha256=hashlib.sha256(payload).hexdigest() if sha256 else None,
        size=len(payload) if size else None,
        description="test file",
    )


@pytest.fixture
def source(tmp_path) -> Path:
    path = tmp_path / "server" / "test.pth"
    path.parent.mkdir()
    path.write_bytes(PAYLOAD)
    return path


@pytest.fixture(autouse=True)
def online(monkeypatch):
    monkeypatch.delenv(weights.OFFLINE_ENV, raising=False)


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD at any path; honours ``Range: bytes=N-`` unless ``honour_range`` is off."""

    honour_range = True
    seen_ranges: list[str | None] = []

    def do_GET(self):  # noqa: N802 (http.server's naming)
        requested = self.headers.get("Range")
        type(self).seen_ranges.append(requested)
        match = re.fullmatch(r"bytes=(\d+)-", requested or "")
        if match and self.honour_range:
            start = int(match.group(1))
            if start >= len(PAYLOAD):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(PAYLOAD)}")
                self.end_headers()
                return
            body = PAYLOAD[start:]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            body = PAYLOAD
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """A local HTTP server on 127.0.0.1; yields (base URL, handler class)."""
    handler = type("Handler", (RangeHandler,), {"seen_ranges": [], "honour_range": True})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_fetch_from_file_url_verifies_and_renames(tmp_path, source):
    entry = make_entry(source.as_uri())
    cache = tmp_path / "cache"
    path = weights.fetch(entry, cache_dir=cache, progress=False)
    assert path == cache / "test.pth"
    assert path.read_bytes() == PAYLOAD
    assert not (cache / "test.pth.part").exists()
    assert weights.status(entry, cache) == "verified"
    # A second call uses the cache: the source may be gone.
    source.unlink()
    assert weights.fetch(entry, cache_dir=cache, progress=False) == path


def test_checksum_mismatch_removes_the_download(tmp_path, source):
    entry = make_entry(source.as_uri(), payload=b"something else")
    entry = WeightsEntry(**{**entry.__dict__, "size": None})
    cache = tmp_path / "cache"
    with pytest.raises(WeightsError, match="SHA-256") as info:
        weights.fetch(entry, cache_dir=cache, progress=False)
    assert "\n" not in str(info.value)
    assert list(cache.iterdir()) == []


def test_size_mismatch_is_reported(tmp_path, source):
    entry = WeightsEntry(**{**make_entry(source.as_uri()).__dict__, "size": 7, "sha256": None})
    with pytest.raises(WeightsError, match="expected 7"):
        weights.fetch(entry, cache_dir=tmp_path / "cache", progress=False)


def count_hashing(monkeypatch) -> list[Path]:
    """Record every file that :func:`weights.sha256_of` hashes."""
    hashed: list[Path] = []
    original = weights.sha256_of

    def counting(path):
        hashed.append(Path(path))
        return original(path)

    monkeypatch.setattr(weights, "sha256_of", counting)
    return hashed


def test_download_is_recorded_and_not_hashed_again(tmp_path, source, monkeypatch):
    hashed = count_hashing(monkeypatch)
    entry = make_entry(source.as_uri())
    path = weights.fetch(entry, cache_dir=tmp_path / "cache", progress=False)
    assert len(hashed) == 1
    assert weights.is_recorded(entry, path)
    assert weights.fetch(entry, cache_dir=tmp_path / "cache", progress=False) == path
    assert len(hashed) == 1


def test_file_placed_by_hand_is_verified_once(tmp_path, monkeypatch):
    hashed = count_hashing(monkeypatch)
    entry = make_entry("https://example.invalid/test.pth")
    cache = tmp_path / "cache"
    cache.mkdir()
    path = cache / "test.pth"
    path.write_bytes(PAYLOAD)
    monkeypatch.setenv(weights.OFFLINE_ENV, "1")
    assert weights.fetch(entry, cache_dir=cache, progress=False) == path
    assert hashed == [path]
    record = json.loads(weights.sidecar_path(path).read_text())
    stat = path.stat()
    assert record == {
        "sha256": entry.sha256,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
    }
    for _ in range(3):
        assert weights.fetch(entry, cache_dir=cache, progress=False) == path
    assert hashed == [path]
    # A changed file (same size, new mtime) is checked again and fails; it stays in place.
    path.write_bytes(PAYLOAD[::-1])
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    with pytest.raises(WeightsError) as info:
        weights.fetch(entry, cache_dir=cache, progress=False)
    message = str(info.value)
    assert len(hashed) == 2
    assert "\n" not in message
    assert str(path) in message
    assert entry.sha256 in message and hashlib.sha256(PAYLOAD[::-1]).hexdigest() in message
    assert "replace it" in message and entry.url in message
    assert path.read_bytes() == PAYLOAD[::-1]
    # The failing digest is recorded too: listed as failed, not hashed again by fetch.
    assert weights.status(entry, cache) == weights.FAILED
    with pytest.raises(WeightsError, match="expected"):
        weights.fetch(entry, cache_dir=cache, progress=False)
    assert len(hashed) == 2


def test_cached_file_of_wrong_size_fails_before_hashing(tmp_path, monkeypatch):
    hashed = count_hashing(monkeypatch)
    entry = make_entry("https://example.invalid/test.pth")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "test.pth").write_bytes(b"short")
    with pytest.raises(WeightsError, match=f"has 5 bytes, expected {len(PAYLOAD)}") as info:
        weights.fetch(entry, cache_dir=cache, download=False)
    assert "\n" not in str(info.value)
    assert hashed == []
    assert (cache / "test.pth").read_bytes() == b"short"
    assert not weights.sidecar_path(cache / "test.pth").exists()


def test_stale_sidecar_is_not_trusted(tmp_path):
    entry = make_entry("https://example.invalid/test.pth")
    path = tmp_path / "test.pth"
    path.write_bytes(PAYLOAD[::-1])
    stat = path.stat()
    record = {"sha256": entry.sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns + 1}
    weights.sidecar_path(path).write_text(json.dumps(record))
    assert not weights.is_recorded(entry, path)
    weights.sidecar_path(path).write_text("not json")
    assert not weights.is_recorded(entry, path)
    with pytest.raises(WeightsError, match="SHA-256"):
        weights.fetch(entry, cache_dir=tmp_path, download=False)


def test_registry_file_placed_by_hand_is_checked(tmp_path, monkeypatch):
    monkeypatch.setenv(weights.HOME_ENV, str(tmp_path / "home"))
    monkeypatch.setenv(weights.OFFLINE_ENV, "1")
    path = weights.local_path("facenet_vggface2")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not the network")
    with pytest.raises(WeightsError) as info:
        weights.resolve("facenet_vggface2")
    message = str(info.value)
    assert "\n" not in message
    assert f"{path} has 15 bytes, expected 111898327" in message
    assert "s2f-weights action=fetch name=facenet_vggface2 force=true" in message
    assert path.read_bytes() == b"not the network"


def test_unverified_entry_downloads(tmp_path, source):
    entry = make_entry(source.as_uri(), sha256=False, size=False)
    assert not entry.verified
    path = weights.fetch(entry, cache_dir=tmp_path / "cache", progress=False)
    assert path.read_bytes() == PAYLOAD


def test_offline_names_file_url_and_path(tmp_path, source, monkeypatch):
    entry = make_entry(source.as_uri())
    cache = tmp_path / "cache"
    monkeypatch.setenv(weights.OFFLINE_ENV, "1")
    with pytest.raises(WeightsError) as info:
        weights.fetch(entry, cache_dir=cache, progress=False)
    message = str(info.value)
    assert "\n" not in message
    assert "test.pth" in message and entry.url in message and str(cache / "test.pth") in message
    assert weights.OFFLINE_ENV in message
    assert not cache.exists() or list(cache.iterdir()) == []
    monkeypatch.delenv(weights.OFFLINE_ENV)
    with pytest.raises(WeightsError, match="downloads are disabled"):
        weights.fetch(entry, cache_dir=cache, download=False)


def test_failed_download_says_where_to_put_the_file(tmp_path):
    missing = tmp_path / "nowhere" / "test.pth"
    entry = make_entry(missing.as_uri())
    cache = tmp_path / "cache"
    with pytest.raises(WeightsError) as info:
        weights.fetch(entry, cache_dir=cache, progress=False)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("could not download test.pth")
    assert entry.url in message and str(cache / "test.pth") in message


def test_file_url_restarts_a_leftover_part(tmp_path, source):
    entry = make_entry(source.as_uri())
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "test.pth.part").write_bytes(b"garbage from an older download")
    path = weights.fetch(entry, cache_dir=cache, progress=False)
    assert path.read_bytes() == PAYLOAD


def test_http_resumes_with_a_range_request(tmp_path, server):
    base, handler = server
    entry = make_entry(f"{base}/test.pth")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "test.pth.part").write_bytes(PAYLOAD[:300_000])
    assert weights.status(entry, cache) == "partial (300000 bytes)"
    path = weights.fetch(entry, cache_dir=cache, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert handler.seen_ranges == ["bytes=300000-"]


def test_http_restarts_when_range_is_ignored(tmp_path, server):
    base, handler = server
    handler.honour_range = False
    entry = make_entry(f"{base}/test.pth")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "test.pth.part").write_bytes(b"x" * 1000)
    path = weights.fetch(entry, cache_dir=cache, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert handler.seen_ranges == ["bytes=1000-"]


def test_http_complete_part_is_verified_and_kept(tmp_path, server):
    base, handler = server
    entry = make_entry(f"{base}/test.pth")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "test.pth.part").write_bytes(PAYLOAD)  # server answers 416
    path = weights.fetch(entry, cache_dir=cache, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert handler.seen_ranges == [f"bytes={len(PAYLOAD)}-"]


def test_http_fresh_download_sends_no_range(tmp_path, server):
    base, handler = server
    path = weights.fetch(make_entry(f"{base}/x"), cache_dir=tmp_path / "c", progress=False)
    assert path.read_bytes() == PAYLOAD
    assert handler.seen_ranges == [None]


def test_resolve_registry_name_path_and_missing(tmp_path, monkeypatch):
    monkeypatch.setenv(weights.HOME_ENV, str(tmp_path / "home"))
    monkeypatch.setenv(weights.OFFLINE_ENV, "1")
    local = tmp_path / "mine.pth"
    local.write_bytes(b"x")
    assert weights.resolve(str(local)) == local
    with pytest.raises(WeightsError, match="not found"):
        weights.resolve(tmp_path / "absent.pth")
    with pytest.raises(WeightsError) as info:
        weights.resolve("vgg_face_dag")
    expected = tmp_path / "home" / "weights" / "vgg_face_dag.pth"
    assert str(expected) in str(info.value)
    expected.parent.mkdir(parents=True)
    expected.write_bytes(b"placed by hand")
    assert weights.resolve("vgg_face_dag") == expected


def test_registry_entries_are_well_formed():
    assert {"vgg_face_dag", "facenet_vggface2"} <= set(REGISTRY)
    for entry in REGISTRY.values():
        assert entry.url.startswith("https://")
        assert entry.url.rsplit("/", 1)[1] == entry.filename
        assert entry.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", entry.sha256)
    vgg = REGISTRY["vgg_face_dag"]
    assert not vgg.verified and vgg.sha256 is None and vgg.size is None  # none published
    facenet = REGISTRY["facenet_vggface2"]
    assert facenet.url.endswith("v2.2.9/20180402-114759-vggface2.pt")
    assert facenet.sha256 == "281cebca8662831adb987a874bdcb36e73f5b1c6dc5ee5878f305e985625d99b"
    assert facenet.size == 111_898_327
    with pytest.raises(WeightsError, match="unknown weights 'nope'"):
        weights.get_entry("nope")


def test_home_defaults_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv(weights.HOME_ENV, raising=False)
    assert weights.weights_home() == Path("~/.cache/speech2face/weights").expanduser()
    monkeypatch.setenv(weights.HOME_ENV, str(tmp_path))
    assert weights.weights_home() == tmp_path / "weights"


def test_listing_reports_registered_and_on_disk_sizes(tmp_path):
    rows = {row["name"]: row for row in weights.listing(tmp_path)}
    assert rows["facenet_vggface2"]["size"] == 111_898_327
    assert rows["vgg_face_dag"]["size"] is None
    assert rows["vgg_face_dag"]["on_disk"] is None
    (tmp_path / "vgg_face_dag.pth").write_bytes(b"x" * 1234)
    rows = {row["name"]: row for row in weights.listing(tmp_path)}
    assert rows["vgg_face_dag"]["on_disk"] == 1234
    assert rows["vgg_face_dag"]["state"] == "unverified (no checksum)"
    assert rows["vgg_face_dag"]["checksum"] == "none published"
    assert [row["name"] for row in weights.listing(tmp_path, ["vgg_face_dag"])] == ["vgg_face_dag"]
    assert weights.format_size(111_898_327) == "111,898,327 B"
    assert weights.format_size(None) == "unknown"


def run_cli(args, tmp_path, **env):
    return subprocess.run(
        [sys.executable, "-m", "speech2face", "weights", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, weights.HOME_ENV: str(tmp_path / "home"), **env},
    )


def test_cli_lists_entries_and_reports_missing_files(tmp_path):
    listing = run_cli([], tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert "vgg_face_dag" in listing.stdout and "facenet_vggface2" in listing.stdout
    assert "none published" in listing.stdout and "missing" in listing.stdout
    assert "action=verify" in listing.stdout.splitlines()[-1]
    lines = listing.stdout.splitlines()
    assert lines[1].split() == ["name", "state", "checksum", "size", "on", "disk", "path"]
    facenet = next(line for line in lines if line.startswith("facenet_vggface2"))
    assert "111,898,327 B" in facenet and " - " in facenet
    home = tmp_path / "home" / "weights"
    home.mkdir(parents=True)
    (home / "vgg_face_dag.pth").write_bytes(b"x" * 2048)
    listing = run_cli([], tmp_path)
    assert listing.returncode == 0, listing.stderr
    vgg = next(line for line in listing.stdout.splitlines() if line.startswith("vgg_face_dag"))
    assert vgg.split()[:4] == ["vgg_face_dag", "unverified", "(no", "checksum)"]
    assert vgg.split()[4:9] == ["none", "published", "unknown", "2,048", "B"]
    (home / "vgg_face_dag.pth").unlink()
    fetch = run_cli(["action=fetch", "name=vgg_face_dag"], tmp_path, S2F_OFFLINE="1")
    assert fetch.returncode == 2
    assert fetch.stderr.strip().count("\n") == 0
    assert str(tmp_path / "home" / "weights" / "vgg_face_dag.pth") in fetch.stderr
    assert "robots.ox.ac.uk" in fetch.stderr


def run_s2f_weights(args, tmp_path, **env):
    """The installed ``s2f-weights`` script, with ``$S2F_HOME`` in ``tmp_path``."""
    script = Path(sys.executable).with_name("s2f-weights")
    command = (
        [str(script)] if script.is_file() else [sys.executable, "-m", "speech2face", "weights"]
    )
    return subprocess.run(
        [*command, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, weights.HOME_ENV: str(tmp_path / "home"), **env},
    )


def row_of(stdout: str, name: str) -> str:
    return next(line for line in stdout.splitlines() if line.startswith(name))


def test_verify_and_status_states(tmp_path, source):
    entry = make_entry(source.as_uri())
    cache = tmp_path / "cache"
    assert weights.verify(entry, cache)[0] == weights.MISSING
    path = weights.fetch(entry, cache_dir=cache, progress=False)
    assert weights.status(entry, cache) == weights.VERIFIED
    state, detail = weights.verify(entry, cache)
    assert state == weights.VERIFIED and entry.sha256 in detail
    # Same size, other bytes, later mtime: the record no longer applies, nothing is hashed.
    stat = path.stat()
    path.write_bytes(PAYLOAD[::-1])
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert weights.status(entry, cache) == weights.NOT_HASHED
    state, detail = weights.verify(entry, cache)
    assert state == weights.FAILED and "expected" in detail and entry.url in detail
    assert weights.status(entry, cache) == weights.FAILED
    path.write_bytes(PAYLOAD[:1000])
    assert weights.status(entry, cache) == weights.WRONG_SIZE
    assert weights.verify(entry, cache)[0] == weights.WRONG_SIZE


def test_verify_reads_a_file_without_checksum_with_torch(tmp_path):
    import torch

    entry = make_entry("https://example.invalid/test.pth", sha256=False, size=False)
    path = tmp_path / "test.pth"
    torch.save({"w": torch.zeros(3), "b": torch.ones(1)}, path)
    assert weights.status(entry, tmp_path) == weights.NO_CHECKSUM
    state, detail = weights.verify(entry, tmp_path)
    assert state == weights.NO_CHECKSUM and "torch reads it (2 entries)" in detail
    path.write_bytes(path.read_bytes()[:300])
    state, detail = weights.verify(entry, tmp_path)
    assert state == weights.CORRUPT
    assert f"{path} is corrupt or truncated (300 bytes;" in detail
    assert "weights_only" not in detail and "\n" not in detail


def test_force_fetch_replaces_the_file_only_after_its_checks(tmp_path, source):
    cache = tmp_path / "cache"
    cache.mkdir()
    path = cache / "test.pth"
    path.write_bytes(b"damaged")
    # The download fails: the cached file is kept and no .part is left.
    gone = make_entry((tmp_path / "nowhere.pth").as_uri())
    with pytest.raises(WeightsError, match="could not download"):
        weights.fetch(gone, cache_dir=cache, progress=False, force=True)
    # The download fails its checksum: removed, the cached file is kept.
    wrong = WeightsEntry(**{**make_entry(source.as_uri()).__dict__, "sha256": "0" * 64})
    with pytest.raises(WeightsError, match="the download was removed"):
        weights.fetch(wrong, cache_dir=cache, progress=False, force=True)
    with pytest.raises(WeightsError, match="was kept"):
        weights.fetch(make_entry(source.as_uri()), cache_dir=cache, download=False, force=True)
    assert path.read_bytes() == b"damaged" and sorted(cache.iterdir()) == [path]
    entry = make_entry(source.as_uri())
    assert weights.fetch(entry, cache_dir=cache, progress=False, force=True) == path
    assert path.read_bytes() == PAYLOAD and weights.status(entry, cache) == weights.VERIFIED


def test_cli_lists_size_and_checksum_state_and_verify_hashes(tmp_path):
    facenet = REGISTRY["facenet_vggface2"]
    path = tmp_path / "home" / "weights" / facenet.filename
    path.parent.mkdir(parents=True)
    path.write_bytes(bytes(1000))
    listing = run_s2f_weights(["name=facenet_vggface2"], tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert "facenet_vggface2  wrong size" in row_of(listing.stdout, "facenet_vggface2")
    # Full size, wrong bytes (sparse zeros): listing does not hash it, it says so.
    with open(path, "r+b") as handle:
        handle.truncate(facenet.size)
    listing = run_s2f_weights([], tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert "unverified (not hashed)" in row_of(listing.stdout, "facenet_vggface2")
    assert not weights.sidecar_path(path).exists()
    verify = run_s2f_weights(["action=verify", "name=facenet_vggface2"], tmp_path)
    assert verify.returncode == 2
    assert verify.stdout == "facenet_vggface2: failed\n"
    error = verify.stderr.strip()
    assert "\n" not in error and error.startswith("s2f-weights: error: ")
    assert f"SHA-256 {hashlib.sha256(bytes(facenet.size)).hexdigest()}" in error
    assert f"expected {facenet.sha256}" in error
    assert "s2f-weights action=fetch name=facenet_vggface2 force=true" in error
    listing = run_s2f_weights([], tmp_path)
    assert "facenet_vggface2  failed" in row_of(listing.stdout, "facenet_vggface2")
    # Offline, fetching it again is refused and the file is kept.
    refetch = run_s2f_weights(
        ["action=fetch", "name=facenet_vggface2", "force=true"], tmp_path, S2F_OFFLINE="1"
    )
    assert refetch.returncode == 2
    assert "downloads are disabled" in refetch.stderr and "was kept" in refetch.stderr
    refetch = run_s2f_weights(["action=fetch", "name=facenet_vggface2", "force=no"], tmp_path)
    assert refetch.returncode == 2
    assert refetch.stderr == "s2f-weights: error: force must be true or false, got 'no'\n"
    assert path.stat().st_size == facenet.size  # never deleted


def test_cli_help_explains_the_states(tmp_path):
    result = run_s2f_weights(["--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    for words in ("action=verify", "force=true", "unverified (not hashed", "<file>.sha256"):
        assert words in result.stdout


def test_cli_name_lists_one_entry_and_unknown_names_fail(tmp_path):
    listing = run_s2f_weights(["name=vgg_face_dag"], tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert "vgg_face_dag" in listing.stdout and "facenet_vggface2" not in listing.stdout
    for args in (["name=foo"], ["action=verify", "name=foo"], ["action=fetch", "name=foo"]):
        result = run_s2f_weights(args, tmp_path)
        assert result.returncode == 2, args
        assert result.stdout == ""
        assert result.stderr == (
            "s2f-weights: error: unknown weights 'foo' (known: facenet_vggface2, vgg_face_dag)\n"
        )


def legacy_state_dict_bytes() -> bytes:
    """A small state dict in the pre-zip format of ``vgg_face_dag.pth``."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(
        {"conv1_1.weight": torch.zeros(64, 3, 3, 3)}, buffer, _use_new_zipfile_serialization=False
    )
    return buffer.getvalue()


@pytest.mark.parametrize("damage", ["random", "truncated"])
def test_corrupt_vgg_face_dag_says_corrupt_and_how_to_fetch_it(tmp_path, monkeypatch, damage):
    from speech2face.models.face_encoder import FaceEncoderError, read_state_dict

    path = tmp_path / "home" / "weights" / "vgg_face_dag.pth"
    path.parent.mkdir(parents=True)
    data = {"random": bytes(range(7, 256)) * 4, "truncated": legacy_state_dict_bytes()[:-1000]}
    path.write_bytes(data[damage])
    verify = run_s2f_weights(["action=verify", "name=vgg_face_dag"], tmp_path)
    assert verify.returncode == 2
    assert verify.stdout == "vgg_face_dag: corrupt\n"
    error = verify.stderr.strip()
    assert "\n" not in error
    assert error.startswith(
        f"s2f-weights: error: weights file {path} is corrupt or truncated "
        f"({len(data[damage]):,} bytes;"
    )
    assert "no size or checksum is published for vgg_face_dag" in error
    assert "s2f-weights action=fetch name=vgg_face_dag force=true" in error
    assert "weights_only" not in error
    # The same message where the face encoder reads it.
    monkeypatch.setenv(weights.HOME_ENV, str(tmp_path / "home"))
    monkeypatch.setenv(weights.OFFLINE_ENV, "1")
    with pytest.raises(FaceEncoderError) as info:
        read_state_dict(weights.resolve("vgg_face_dag"), "vggface")
    assert f"s2f-weights: error: {info.value}" == error
    assert path.read_bytes() == data[damage]


def test_unreadable_registry_file_states_its_expected_size_and_checksum(tmp_path, monkeypatch):
    from speech2face.models._io import safe_load

    monkeypatch.setenv(weights.HOME_ENV, str(tmp_path / "home"))
    facenet = REGISTRY["facenet_vggface2"]
    path = weights.local_path(facenet)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x80\x02junk")
    with pytest.raises(WeightsError) as info:
        safe_load(path, WeightsError, "weights file")
    message = str(info.value)
    assert f"{path} is corrupt or truncated (6 bytes;" in message
    assert f"should have 111,898,327 B and SHA-256 {facenet.sha256}" in message
    assert "action=fetch name=facenet_vggface2 force=true" in message
    assert "cache_dir=" not in message
    elsewhere = tmp_path / "mine" / facenet.filename
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(b"\x80\x02junk")
    with pytest.raises(WeightsError, match=f"force=true cache_dir={elsewhere.parent}"):
        safe_load(elsewhere, WeightsError, "weights file")
