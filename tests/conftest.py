"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from coea.config import SyntheticConfig
from tests.helpers import ML_DIR


@pytest.fixture
def ml_dir() -> Path:
    return ML_DIR


@pytest.fixture
def tiny_synth() -> SyntheticConfig:
    """A small but structured synthetic config: fast enough for unit tests."""
    return SyntheticConfig(seed=3, n_users=120, n_categories=20, n_groups=4, items_per_category=8,
                           mean_interactions=40, min_interactions=25)
