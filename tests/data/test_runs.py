"""s2f-preprocess runs under what users do: killed parents, concurrent runs, failed set-ups,
inputs that are not what they claim, runs that keep nothing (all through the real command)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.data.conftest import contract_args, run_options, run_s2f, s2f_command


def children(pid: int) -> list[int]:
    """PIDs whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after its ')'
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


def wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def start(corpus, out: Path) -> subprocess.Popen:
    args = contract_args(corpus, out, *run_options(corpus))
    return subprocess.Popen(
        [*s2f_command("preprocess"), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_workers_die_with_a_killed_parent_and_commit_nothing_after(corpus, tmp_path):
    out = tmp_path / "out"
    proc = start(corpus, out)
    try:
        # Workers at work: a block is committed.
        assert wait_for(lambda: any((out / "parts").glob("*.json")), 120)
        helpers = children(proc.pid)  # the workers, and multiprocessing's resource tracker
        workers = [pid for pid in helpers if "spawn_main" in command_line(pid)]
        assert len(workers) == 2
        # Kill the parent alone (not its process group), as an OOM killer or `kill -9` would.
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        parts = sorted(p.name for p in (out / "parts").glob("*.json"))
        assert wait_for(lambda: not any(alive(pid) for pid in workers), 2), "orphans left"
        assert wait_for(lambda: not any(alive(pid) for pid in helpers), 5), "tracker left"
        time.sleep(3)  # an orphan used to commit a block about 5 s after the kill
        assert sorted(p.name for p in (out / "parts").glob("*.json")) == parts
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_second_run_on_a_live_runs_directory_is_refused(corpus, tmp_path):
    out = tmp_path / "out"
    first = start(corpus, out)
    try:
        assert wait_for(lambda: (out / ".s2f.lock").exists() and (out / "run.json").exists(), 120)
        second = run_s2f("preprocess", *contract_args(corpus, out, *run_options(corpus)))
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and f"is in use by s2f-preprocess (pid {first.pid}" in lines[0]
    finally:
        first.kill()
        first.wait()
    # Once the first run is gone (killed: the kernel drops its lock), the same command resumes.
    again = run_s2f("preprocess", *contract_args(corpus, out, *run_options(corpus)))
    assert again.returncode == 0, again.stderr[-2000:]


def test_a_set_up_that_fails_records_no_run_and_decodes_nothing(corpus, tmp_path, monkeypatch):
    """VGG-Face without its weights file (offline): refused before any clip is decoded, and
    no run.json is left to refuse the next run with other settings."""
    monkeypatch.setenv("S2F_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("S2F_OFFLINE", "1")
    out = tmp_path / "out"
    args = contract_args(corpus, out, *run_options(corpus))
    started = time.monotonic()
    result = run_s2f(
        "preprocess", *[a for a in args if a != "face_encoder=dlib"], "face_encoder=vggface"
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "vgg_face_dag" in lines[0], result.stderr
    assert time.monotonic() - started < 60
    assert not (out / "run.json").exists()
    assert not list((out / "parts").glob("*")) if (out / "parts").exists() else True
    # The next run, with other settings, is not refused.
    monkeypatch.delenv("S2F_OFFLINE")
    rerun = run_s2f("preprocess", *args, "frames_per_clip=2")
    assert rerun.returncode == 0, rerun.stderr[-2000:]


def test_a_directory_as_the_csv_is_named_as_such(corpus, tmp_path):
    args = contract_args(corpus, tmp_path / "out", f"source.csv={tmp_path}")
    result = run_s2f("preprocess", *args)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"s2f-preprocess: error: AVSpeech CSV {tmp_path} is a directory, not a file"
    )


def test_a_run_that_keeps_nothing_fails_with_the_reasons(corpus, tmp_path):
    """A text file given as the CSV: every line is a bad row, and the run says so."""
    notes = tmp_path / "notes.txt"
    notes.write_text("These are my notes.\nNothing here is a clip.\n")
    out = tmp_path / "out"
    result = run_s2f("preprocess", *contract_args(corpus, out, f"source.csv={notes}"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (  # after the progress bar
        f"s2f-preprocess: error: no segment was kept: bad_row 2 (see {out}/failures.jsonl)"
    )
    assert (out / "failures.jsonl").read_text().count('"bad_row"') == 2
