"""Atomic writes: a temp file in the target's folder, renamed into place, never half a file."""

from __future__ import annotations

import os
import re

import pytest

from rasterflow.rasterize_core.atomic import (
    atomic_path,
    atomic_write_bytes,
    is_temp_file,
    temp_path_for,
)


def test_temp_names_are_unique_same_folder_and_recognised(tmp_path):
    target = tmp_path / "a" / "1.tif"
    first, second = temp_path_for(target), temp_path_for(target)
    assert first != second
    assert first.parent == target.parent
    assert re.fullmatch(rf"1\.tif\.{os.getpid()}\.[0-9a-f]{{8}}\.tmp", first.name)
    assert is_temp_file(first) and not is_temp_file(target)
    assert not is_temp_file(tmp_path / "notes.tmp")


def test_atomic_path_renames_on_success(tmp_path):
    target = tmp_path / "deep" / "x.bin"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and not target.exists()
        tmp.write_bytes(b"abc")
    assert target.read_bytes() == b"abc"
    assert os.listdir(target.parent) == ["x.bin"]


def test_atomic_path_removes_temp_on_error(tmp_path):
    target = tmp_path / "x.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("writer crashed")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["x.bin"]


def test_atomic_path_without_a_file_raises_and_leaves_nothing(tmp_path):
    target = tmp_path / "x.bin"
    with pytest.raises(FileNotFoundError), atomic_path(target):
        pass
    assert os.listdir(tmp_path) == []


def test_atomic_write_bytes(tmp_path):
    target = tmp_path / "sub" / "y.bin"
    assert atomic_write_bytes(target, b"12345", fsync=True) == target
    assert target.read_bytes() == b"12345"
    atomic_write_bytes(target, b"6")
    assert target.read_bytes() == b"6"
    assert os.listdir(target.parent) == ["y.bin"]
