"""coea.utils.atomic_path: a file replaced only when its block succeeds, through a temporary sibling that never
outlives the block."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from coea.utils import atomic_path


def test_a_failed_block_leaves_the_previous_file_byte_identical_and_no_temp_file(tmp_path: Path) -> None:
    """The block writes to a temporary sibling, not to the target: an exception mid-write keeps the old bytes
    and removes the temporary file (closes the gap where writing the target in place passed every test)."""
    target = tmp_path / "served.parquet"
    target.write_bytes(b"previous version")
    with pytest.raises(RuntimeError, match="killed"), atomic_path(target) as tmp:
        assert tmp.parent == tmp_path  # a sibling: the rename stays on one file system
        tmp.write_bytes(b"half a new")
        raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"previous version"
    assert [p.name for p in tmp_path.iterdir()] == ["served.parquet"]


def test_a_successful_block_replaces_the_file_at_its_end_with_open_permissions(tmp_path: Path) -> None:
    """Readers see the old bytes until the block ends, then the new ones; the file gets the permissions open()
    would give it (mkstemp alone gives 0600); a missing folder is created."""
    target = tmp_path / "new" / "recs.parquet"
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"first")
        assert not target.exists()
    target_mode = target.stat().st_mode & 0o777
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"second")
        assert target.read_bytes() == b"first"
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["recs.parquet"]
    mask = os.umask(0)
    os.umask(mask)
    assert target_mode == target.stat().st_mode & 0o777 == 0o666 & ~mask
