"""coea.utils.atomic_dir: a directory replaced as one unit, with mkdir's permissions, and what a killed writer
left beside it removed by the next successful write."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from coea.utils import atomic_dir


def test_replaces_as_a_unit_with_mkdir_permissions_and_clears_a_killed_writers_leftovers(tmp_path: Path) -> None:
    target = tmp_path / "novelty"
    (tmp_path / ".novelty.abc123.tmp").mkdir()  # a writer killed mid-save (weights half written)
    (tmp_path / ".novelty.abc123.tmp" / "model.safetensors").write_bytes(b"x" * 100)
    (tmp_path / ".novelty.def456.old").mkdir()  # one killed between its two renames
    (tmp_path / ".other.zzz.tmp").mkdir()  # another target's: not ours to remove
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("1")
        assert not target.exists()
    mask = os.umask(0)
    os.umask(mask)
    assert (target / "a.txt").read_text() == "1" and (target.stat().st_mode & 0o777) == 0o777 & ~mask
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.zzz.tmp", "novelty"]
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "b.txt").write_text("2")
        raise RuntimeError("killed")
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]  # the old one stays whole
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.zzz.tmp", "novelty"]
    # a second successful write replaces the folder, it does not merge into it (audit, session 55: a copy over the
    # old folder passed): no old file beside the new ones (an old full model beside a new LoRA adapter)
    before = target.stat().st_ino
    with atomic_dir(target) as tmp:
        (tmp / "c.txt").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["c.txt"] and target.stat().st_ino != before
