"""Atomic outputs: all or nothing, and no temporary file left either way."""

from __future__ import annotations

import errno
import os

import pytest

from speech2face.errors import S2FError
from speech2face.fileio import (
    OutputExistsError,
    atomic_outputs,
    check_output,
    temporary_path,
    write_atomic,
)


def test_outputs_appear_together_on_success(tmp_path):
    a, b = tmp_path / "a.npy", tmp_path / "b.png"
    with atomic_outputs(a, b) as (ta, tb):
        ta.write_bytes(b"A")
        tb.write_bytes(b"B")
        assert not a.exists() and not b.exists()
    assert a.read_bytes() == b"A" and b.read_bytes() == b"B"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "b.png"]


def test_nothing_appears_when_the_block_fails(tmp_path):
    a, b = tmp_path / "a.npy", tmp_path / "b.png"
    a.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_outputs(a, b) as (ta, tb):
        ta.write_bytes(b"new")
        raise RuntimeError("render failed")
    assert a.read_bytes() == b"old" and not b.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy"]


def test_write_atomic_and_missing_directory(tmp_path):
    write_atomic(tmp_path / "x.json", b"{}")
    assert (tmp_path / "x.json").read_bytes() == b"{}"
    assert temporary_path(tmp_path / "x.json").name.startswith(".x.json.")
    with pytest.raises(S2FError, match="does not exist"):
        write_atomic(tmp_path / "missing" / "x.json", b"{}")


def test_no_overwrite_keeps_a_file_that_appeared_meanwhile(tmp_path):
    a, b = tmp_path / "a.npy", tmp_path / "b.png"
    with pytest.raises(OutputExistsError), atomic_outputs(a, b, overwrite=False) as (ta, tb):
        ta.write_bytes(b"new")
        tb.write_bytes(b"new")
        b.write_bytes(b"theirs")  # another run got there first
    assert not a.exists() and b.read_bytes() == b"theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.png"]
    with atomic_outputs(a, overwrite=False) as (ta,):
        ta.write_bytes(b"A")
    assert a.read_bytes() == b"A"


def test_errors_name_the_target_not_the_temporary_file(tmp_path):
    (tmp_path / "dir.npy").mkdir()
    with pytest.raises(S2FError, match="dir.npy is a directory"):
        write_atomic(tmp_path / "dir.npy", b"")
    target = tmp_path / "x.npy"
    with pytest.raises(OSError) as caught, atomic_outputs(target) as (tmp,):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
    assert caught.value.filename == str(target) and caught.value.errno == errno.ENOSPC


def test_check_output(tmp_path):
    source = tmp_path / "voice.wav"
    source.write_bytes(b"RIFF")
    os.link(source, tmp_path / "hard.npy")
    (tmp_path / "soft.npy").symlink_to(source.name)
    for path in (
        source,
        tmp_path / "hard.npy",
        tmp_path / "soft.npy",
        tmp_path / "." / "voice.wav",
    ):
        with pytest.raises(S2FError, match="is the input file"):
            check_output(path, inputs=[source], overwrite=True)
    with pytest.raises(S2FError, match="is a directory"):
        check_output(tmp_path, overwrite=True)
    with pytest.raises(S2FError, match="does not exist"):
        check_output(tmp_path / "missing" / "x.npy")
    (tmp_path / "old.npy").write_bytes(b"")
    with pytest.raises(OutputExistsError, match="old.npy exists"):
        check_output(tmp_path / "old.npy", inputs=[source])
    check_output(tmp_path / "old.npy", inputs=[source], overwrite=True)
    check_output(tmp_path / "new.npy", inputs=[source])
