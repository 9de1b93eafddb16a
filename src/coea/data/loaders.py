"""Data specs -> the canonical, validated interaction table.

Specs: ``synthetic`` (default; the planted generator), ``movielens:DIR``, ``csv:PATH``, ``parquet:PATH``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from coea.config import DataConfig, SyntheticConfig
from coea.data.lines import CSV, MOVIELENS, TextLayout, at_editor_line
from coea.data.movielens import load_movielens
from coea.data.schema import validate_interactions
from coea.data.synthetic import SyntheticData, generate_synthetic
from coea.data.tabular import read_table
from coea.errors import CoeaInputError

log = logging.getLogger(__name__)

SPEC_KINDS = ("synthetic", "movielens", "csv", "parquet")


@dataclass(frozen=True)
class LoadedData:
    """A validated log and where it came from; ``truth`` is set for synthetic data only."""

    interactions: pd.DataFrame
    source: str
    truth: SyntheticData | None = None


def parse_spec(spec: str) -> tuple[str, Path | None]:
    """``"movielens:DIR"`` -> ``("movielens", Path(DIR))``; ``"synthetic"`` -> ``("synthetic", None)``."""
    kind, sep, rest = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in SPEC_KINDS:
        raise CoeaInputError(f"unknown data spec {spec!r}", option="--data",
                             fix="use synthetic, movielens:DIR, csv:PATH or parquet:PATH")
    if kind == "synthetic":
        if rest:
            raise CoeaInputError(f"'synthetic' takes no path, got {spec!r}", option="--data",
                                 fix="configure the generator with --config instead")
        return kind, None
    if not sep or not rest.strip():
        raise CoeaInputError(f"{kind} needs a path, got {spec!r}", option="--data", fix=f"use {kind}:PATH")
    return kind, Path(rest.strip()).expanduser()


def load_data(cfg: DataConfig, synthetic: SyntheticConfig | None = None) -> LoadedData:
    """Load and validate the log named by ``cfg.spec``; an error in a text file names its line."""
    kind, path = parse_spec(cfg.spec)
    if kind == "synthetic":
        data = generate_synthetic(synthetic or SyntheticConfig())
        log.info("generated synthetic data: %d events, %d users", len(data.interactions),
                 data.interactions["user_id"].nunique())
        return LoadedData(data.interactions, "synthetic", truth=data)
    assert path is not None
    layout: TextLayout | None = {"movielens": MOVIELENS, "csv": CSV}.get(kind)
    try:
        return _load_file(cfg, kind, path)
    except CoeaInputError as err:
        located = err if layout is None else at_editor_line(err, layout)
        if located is err:
            raise
        raise located from err


def _load_file(cfg: DataConfig, kind: str, path: Path) -> LoadedData:
    if kind == "movielens":
        raw, source = load_movielens(path, cfg.category_level)
    else:
        raw, source = read_table(path, kind, cfg), str(path)
    clean = validate_interactions(raw, source, on_category_conflict=cfg.on_category_conflict,
                                  allow_any_timestamp=cfg.allow_any_timestamp)
    return LoadedData(clean, source)
