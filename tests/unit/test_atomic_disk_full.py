"""coea.utils.atomic_path / atomic_dir: a full disk is an OSError naming the file a person asked for (not the
temporary one, nor none), and nothing is left behind."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from coea.utils import atomic_dir, atomic_path


def _full(path: Path | None = None):
    raise OSError(errno.ENOSPC, "No space left on device", *([str(path)] if path is not None else []))


def test_atomic_path_names_its_target_when_the_writer_names_no_file_or_the_temporary_one(tmp_path: Path) -> None:
    target = tmp_path / "plot.png"
    for named in (False, True):
        with pytest.raises(OSError) as caught, atomic_path(target) as tmp:
            _full(tmp if named else None)
        assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_names_the_file_inside_its_target(tmp_path: Path) -> None:
    target = tmp_path / "data"
    with pytest.raises(OSError) as caught, atomic_dir(target) as tmp, atomic_path(tmp / "stats.json") as inner:
        _full(inner)
    assert caught.value.filename == str(target / "stats.json")
    assert list(tmp_path.iterdir()) == []


def test_other_errors_pass_unchanged(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.csv"
    with pytest.raises(FileNotFoundError) as caught, atomic_path(tmp_path / "x.json"):
        other.read_text()
    assert caught.value.filename == str(other)
