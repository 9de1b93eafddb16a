"""Small files standing in for a recurring run's period data, DSIE fit and models (tests of coea.state)."""

from __future__ import annotations

from pathlib import Path


def write_dir(path: Path, *names: str, tag: str = "") -> Path:
    """``path`` with a file per name (parents made), each holding ``tag:name``."""
    for name in names:
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(f"{tag}:{name}")
    return path


def models_dir(root: Path, tag: str) -> Path:
    """A models dir (novelty and relevance weights) whose bytes differ by ``tag``."""
    return write_dir(root / f"m_{tag}", "novelty/w.bin", "relevance/w.bin", tag=tag)


def state_ids(state: str, kind: str) -> set[str]:
    """The version ids the state holds under ``kind`` (snapshots, models)."""
    base = Path(state) / kind
    return {p.name for p in base.iterdir()} if base.is_dir() else set()
