"""One live run per output directory: refused while held, free once the holder dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from speech2face.runlock import LOCK_NAME, DirectoryBusyError, hold_directory, holder

HOLD = """
import sys, time
from speech2face.runlock import hold_directory
with hold_directory(sys.argv[1], command="s2f-test"):
    print("held", flush=True)
    time.sleep(60)
"""


def start_holder(directory) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(directory)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_run_is_refused_while_the_first_lives(tmp_path):
    process = start_holder(tmp_path / "run")
    try:
        busy = rf"s2f-test \(pid {process.pid} on "
        with pytest.raises(DirectoryBusyError, match=busy), hold_directory(tmp_path / "run"):
            pass
        assert holder(tmp_path / "run")["pid"] == process.pid
    finally:
        process.kill()
        process.wait()


def test_the_lock_dies_with_its_holder_even_on_sigkill(tmp_path):
    process = start_holder(tmp_path / "run")
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert (tmp_path / "run" / LOCK_NAME).exists()  # a stale file, but no lock
    with hold_directory(tmp_path / "run", command="again") as held:
        assert held == tmp_path / "run"
        assert holder(held)["pid"] == os.getpid() and holder(held)["command"] == "again"


def test_released_at_the_end_of_the_block_and_reentrant_in_sequence(tmp_path):
    for _ in range(2):
        with hold_directory(tmp_path / "a" / "b"):
            pass
    started = time.monotonic()
    with hold_directory(tmp_path / "a" / "b"):
        pass
    assert time.monotonic() - started < 1.0  # never waits


def test_a_forked_child_keeps_the_directory_held(tmp_path):
    """A worker forked by the run shares the lock until it, too, has exited."""
    with hold_directory(tmp_path / "run"):
        child = os.fork()
        if child == 0:  # pragma: no cover - the child just waits to be killed
            time.sleep(60)
            os._exit(0)
    try:
        with pytest.raises(DirectoryBusyError), hold_directory(tmp_path / "run"):
            pass
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
    with hold_directory(tmp_path / "run"):
        pass


def test_a_finished_run_leaves_no_lock_file(tmp_path):
    with hold_directory(tmp_path / "run") as held:
        assert (held / LOCK_NAME).is_file()
    assert not (tmp_path / "run" / LOCK_NAME).exists()
    with pytest.raises(ValueError), hold_directory(tmp_path / "run"):
        raise ValueError("the run failed")
    assert not (tmp_path / "run" / LOCK_NAME).exists()
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == []


def test_a_forked_child_keeps_the_lock_file_until_it_exits(tmp_path):
    with hold_directory(tmp_path / "run"):
        child = os.fork()
        if child == 0:  # pragma: no cover - the child just waits to be killed
            time.sleep(60)
            os._exit(0)
    try:
        assert (tmp_path / "run" / LOCK_NAME).exists()  # still held by the child
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
    with hold_directory(tmp_path / "run"):
        pass
    assert not (tmp_path / "run" / LOCK_NAME).exists()


FINISHED_RUN = """
import sys
from speech2face.runlock import hold_directory
with hold_directory(sys.argv[1], command="s2f-test"):
    if sys.argv[2] == "fail":
        raise SystemExit("the run failed")
"""


@pytest.mark.parametrize("outcome", ["ok", "fail"])
def test_a_process_that_ends_removes_its_lock_file(tmp_path, outcome):
    result = subprocess.run(
        [sys.executable, "-c", FINISHED_RUN, str(tmp_path / "run"), outcome],
        capture_output=True,
        text=True,
    )
    assert result.returncode == (0 if outcome == "ok" else 1), result.stderr
    assert (tmp_path / "run").is_dir() and not (tmp_path / "run" / LOCK_NAME).exists()


def test_a_real_command_that_fails_leaves_no_lock_file(tmp_path):
    """``s2f-preprocess action=merge`` holds its output directory, then fails: no run there."""
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "speech2face", "preprocess", "action=merge", f"output_dir={out}/"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and "holds no preprocessing run" in result.stderr
    assert out.is_dir() and list(out.iterdir()) == []
