"""Downloading with yt-dlp, against a local HTTP server (real yt-dlp, real FFmpeg cuts)."""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import threading
import time
from collections import Counter
from functools import partial
from pathlib import Path

import pytest

from speech2face.data.download import (
    Downloader,
    DownloadError,
    DownloadOptions,
    check_prerequisites,
)
from speech2face.data.media import probe
from speech2face.data.preprocess import PreprocessOptions, preprocess
from speech2face.data.shards import iter_tar_samples
from speech2face.data.sources import AVSpeechSource
from speech2face.errors import S2FError
from speech2face.models import build_face_encoder

FLAKY_ID = "flakyVideo1"  # the server fails its first request with 503


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with HTTP range requests (FFmpeg seeks in the mp4 it cuts)."""

    requests: Counter
    flaky_left: dict

    def log_message(self, *args):
        pass

    def send_head(self):
        name = self.path.lstrip("/").split("?")[0]
        self.requests[name] += 1
        if self.flaky_left.get(name, 0) > 0:
            self.flaky_left[name] -= 1
            self.send_error(503, "try again")
            return None
        path = self.translate_path(self.path)
        header = self.headers.get("Range")
        if not header or not os.path.isfile(path):
            return super().send_head()
        size = os.path.getsize(path)
        start_text, end_text = re.match(r"bytes=(\d*)-(\d*)", header).groups()
        start = int(start_text or 0)
        end = min(int(end_text) if end_text else size - 1, size - 1)
        f = open(path, "rb")  # noqa: SIM115 (closed by the handler)
        f.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        self.remaining = end - start + 1
        return f

    def copyfile(self, source, outputfile):
        remaining = getattr(self, "remaining", None)
        if remaining is None:
            return super().copyfile(source, outputfile)
        while remaining > 0:
            block = source.read(min(1 << 16, remaining))
            if not block:
                break
            outputfile.write(block)
            remaining -= len(block)


@pytest.fixture
def server(corpus, no_proxy, tmp_path):
    """Serves the corpus videos (plus a flaky copy of one) on 127.0.0.1."""
    root = tmp_path / "www"
    root.mkdir()
    good = corpus.good_rows[0][0]
    for name in (good, FLAKY_ID):
        os.symlink(corpus.videos / f"{good}.mp4", root / f"{name}.mp4")
    handler = type(
        "Handler", (RangeHandler,), {"requests": Counter(), "flaky_left": {f"{FLAKY_ID}.mp4": 1}}
    )
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(root))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler.requests
    finally:
        httpd.shutdown()
        httpd.server_close()


def local_options(url: str, **overrides) -> DownloadOptions:
    base = dict(
        url_template=url + "/{id}.mp4",
        retries=2,
        rate_limit=None,
        sleep_seconds=0.0,
        backoff_seconds=0.05,
        socket_timeout=10.0,
    )
    return DownloadOptions(**(base | overrides))


def test_prerequisites_say_what_is_missing():
    params = check_prerequisites(DownloadOptions(url_template="http://127.0.0.1/{id}.mp4"))
    assert Path(params["ffmpeg_location"]).is_file()  # imageio-ffmpeg's binary
    with pytest.raises(S2FError, match="JavaScript runtime"):
        check_prerequisites(DownloadOptions(js_runtime="node:/nonexistent/node"))
    with pytest.raises(S2FError, match="'\\{id\\}' in url_template"):
        check_prerequisites(DownloadOptions(url_template="http://127.0.0.1/video.mp4"))


def test_downloads_only_the_segment(corpus, server, tmp_path):
    url, requests = server
    video_id, start, end = corpus.good_rows[1][:3]
    stem = f"{video_id}_seg"
    dest = tmp_path / "downloads"
    path = Downloader(local_options(url)).fetch(video_id, float(start), float(end), dest, stem)
    assert path == dest / f"{stem}.mp4"
    info = probe(path)
    assert info.has_audio and info.has_video
    assert info.duration == pytest.approx(float(end) - float(start), abs=0.3)
    assert sorted(p.name for p in dest.iterdir()) == [path.name]  # no leftovers


def test_unsafe_ids_never_reach_yt_dlp(server, tmp_path):
    url, requests = server
    for bad in ("../../etc/p", "$(rm -rf x)", "short"):
        with pytest.raises(DownloadError, match="unsafe"):
            Downloader(local_options(url)).fetch(bad, 0.0, 4.0, tmp_path, "stem")
    assert sum(requests.values()) == 0


def test_download_pipeline_records_unavailable_videos(corpus, server, tmp_path):
    """download=true: segments are fetched, retried when the error is transient, recorded
    as download_failed when the video is gone (404: one attempt, no retries)."""
    url, requests = server
    good = corpus.good_rows[0][0]
    rows = [r for r in corpus.good_rows if r[0] == good]
    lines = [",".join(r) for r in rows]
    lines.append(",".join([FLAKY_ID, *rows[0][1:]]))
    lines.append("goneVideo01,1.0,5.0,0.5,0.5")
    csv = tmp_path / "clips.csv"
    csv.write_text("\n".join(lines) + "\n")
    video_dir = tmp_path / "downloads"
    source = AVSpeechSource(
        csv,
        video_dir,
        download=True,
        keep_downloads=False,
        url_template=url + "/{id}.mp4",
        retries=3,
        rate_limit=1_000_000,
        sleep_seconds=0.0,
        backoff_seconds=0.05,
    )
    out = tmp_path / "out"
    options = PreprocessOptions(frames_per_clip=2)
    encoder = partial(build_face_encoder, "dlib")
    stats = preprocess(source, out, encoder, "dlib", options, progress=False)
    assert stats["kept"] == len(rows) + 1
    assert stats["failures_by_reason"] == {"download_failed": 1}
    (failure,) = [json.loads(line) for line in (out / "failures.jsonl").open()]
    assert failure["youtube_id"] == "goneVideo01" and "404" in failure["detail"]
    assert requests["goneVideo01.mp4"] == 1  # permanent: not retried
    assert requests[f"{FLAKY_ID}.mp4"] >= 2  # transient: retried
    # Each segment was cut from its own start: the face sits where the CSV row says (the
    # synthetic speaker moves between segments).
    centres = {f"{r[0]}_{round(float(r[1]) * 1000):08d}": (float(r[3]), float(r[4])) for r in rows}
    checked = 0
    for shard in (out / "shards").glob("*.tar"):
        with open(shard, "rb") as f:
            for key, members in iter_tar_samples(f):
                meta = json.loads(members["json"])
                assert meta["duration"] == pytest.approx(meta["end"] - meta["start"], abs=0.3)
                if key in centres:
                    box, (w, h) = meta["face"]["box"], meta["face"]["frame_size"]
                    x, y = (box[0] + box[2]) / 2 / w, (box[1] + box[3]) / 2 / h
                    assert abs(x - centres[key][0]) < 0.1 and abs(y - centres[key][1]) < 0.1
                    checked += 1
    assert checked == len(rows)
    assert list(video_dir.iterdir()) == []  # keep_downloads=False: deleted once processed


@pytest.mark.network
def test_youtube_segment(tmp_path):
    """One real AVSpeech segment from YouTube (needs the network, deno/node and yt-dlp-ejs)."""
    options = DownloadOptions(retries=2)
    try:
        check_prerequisites(options)
    except S2FError as error:
        pytest.skip(str(error))
    path = Downloader(options).fetch("AvWWVOgaMlk", 90.023, 93.560, tmp_path, "AvWWVOgaMlk_seg")
    info = probe(path)
    assert info.has_audio and info.has_video
    assert info.duration == pytest.approx(3.5, abs=0.5)


def test_rate_limit_is_enforced_by_the_pause(corpus, server, tmp_path, monkeypatch):
    """yt-dlp's FFmpeg range download ignores its ratelimit, so the pause after each
    download makes up for it: max(sleep_seconds, size / rate_limit - elapsed)."""
    from speech2face.data import download

    pauses: list[float] = []
    monkeypatch.setattr(download, "_sleep", pauses.append)
    url, _ = server
    video_id, start, end = corpus.good_rows[1][:3]
    rate = 20_000  # bytes/s, far below the local server's speed
    downloader = Downloader(local_options(url, rate_limit=rate, sleep_seconds=0.5))
    began = time.monotonic()
    path = downloader.fetch(video_id, float(start), float(end), tmp_path, "seg")
    took = time.monotonic() - began
    (pause,) = pauses
    size = path.stat().st_size
    assert size / rate - took <= pause <= size / rate
    assert pause > 0.5
    assert downloader.pause_seconds(1000, 0.0) == 0.5  # small file: sleep_seconds
    assert Downloader(local_options(url)).pause_seconds(10**9, 0.0) == 0.0  # no cap
