"""Test helpers shared across test modules (import as ``tests.helpers``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
ML_DIR = REPO.parent / "shared" / "data" / "ml-1m"

requires_movielens = pytest.mark.skipif(
    not (ML_DIR / "movies.dat").is_file(),
    reason=f"MovieLens-1M not found at {ML_DIR} (research-use data is read from ../shared, never copied)",
)


def events(rows: list[tuple[str, str, str, int]]) -> pd.DataFrame:
    """A canonical frame from (user, item, category, timestamp) tuples."""
    return pd.DataFrame(rows, columns=["user_id", "item_id", "category", "timestamp"])
