"""Atomic outputs: all or nothing, and no temporary file left either way."""

from __future__ import annotations

import pytest

from speech2face.errors import S2FError
from speech2face.fileio import atomic_outputs, temporary_path, write_atomic


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
