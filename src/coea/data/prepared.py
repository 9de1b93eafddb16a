"""The prepared-data directory every stage starts from: its writer and its reader, side by side.

Layout: ``interactions.parquet`` (canonical columns, validated), ``stats.json`` (``coea.data.stats.data_stats``
plus ``source``), ``data_config.json`` (the ``data`` and ``synthetic`` config sections it was made with) and,
for synthetic data, ``ground_truth/`` (planted groups and affinities).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from coea.data.loaders import LoadedData
from coea.data.schema import USER
from coea.data.stats import data_stats
from coea.errors import CoeaInputError, reads
from coea.utils import atomic_path, write_json_atomic

INTERACTIONS = "interactions.parquet"
STATS = "stats.json"
DATA_CONFIG = "data_config.json"
GROUND_TRUTH = "ground_truth"


def write_prepared(loaded: LoadedData, out_dir: Path, data_config: dict[str, Any]) -> dict[str, Path]:
    """Write ``loaded`` as a prepared data directory (atomically, file by file); returns name -> path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"interactions": out_dir / INTERACTIONS, "stats": out_dir / STATS, "data_config": out_dir / DATA_CONFIG}
    with atomic_path(paths["interactions"]) as tmp:
        loaded.interactions.to_parquet(tmp, index=False)
    write_json_atomic(paths["stats"], {"source": loaded.source, **data_stats(loaded.interactions)})
    write_json_atomic(paths["data_config"], data_config)
    if loaded.truth is not None:
        for p in loaded.truth.write_ground_truth(out_dir / GROUND_TRUTH):
            paths[p.stem] = p
    else:  # a synthetic log's planted groups left by an earlier write would be scored against this log
        shutil.rmtree(out_dir / GROUND_TRUTH, ignore_errors=True)
    return paths


@reads('re-run the data step (`coea group` or `coea evaluate` with --data) to write it again')
def read_prepared(data_dir: Path) -> LoadedData:
    """Read a prepared data directory back (with the synthetic ground truth when it holds one)."""
    from coea.data.synthetic import SyntheticData

    data_dir = Path(data_dir)
    path = data_dir / INTERACTIONS
    if not path.is_file():
        raise CoeaInputError(f"{INTERACTIONS} not found", source=data_dir,
                             fix="pass a prepared data directory (written by `coea prepare` or the prepare_data step)")
    interactions = pd.read_parquet(path)
    stats_path = data_dir / STATS
    source = json.loads(stats_path.read_text())["source"] if stats_path.is_file() else str(data_dir)
    truth_dir = data_dir / GROUND_TRUTH
    truth = None
    if (truth_dir / "truth_groups.parquet").is_file():
        affinity = pd.read_parquet(truth_dir / "truth_affinity.parquet").set_index(USER)
        truth = SyntheticData(interactions, pd.read_parquet(truth_dir / "truth_groups.parquet"), affinity)
    return LoadedData(interactions, source, truth)


def read_stats(data_dir: Path) -> dict[str, Any]:
    """``stats.json`` of a prepared data directory."""
    return json.loads((Path(data_dir) / STATS).read_text())
