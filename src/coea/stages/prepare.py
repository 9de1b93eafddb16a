"""Stage ``prepare``: load and validate a log (synthetic: generate it), write the prepared-data directory."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from coea.config import RunConfig, config_to_dict
from coea.data.loaders import load_data, parse_spec
from coea.data.partitions import scheduled_as_of
from coea.data.prepared import read_stats, write_prepared
from coea.data.sources import is_partitioned
from coea.utils import seed_everything

log = logging.getLogger(__name__)


@dataclass
class PrepareResult:
    """A prepared data directory and the statistics of its log."""

    data_dir: Path
    source: str
    stats: dict[str, Any]  # coea.data.stats.data_stats
    paths: dict[str, Path] = field(default_factory=dict)
    as_of: str | None = None  # the as-of time that chose a partitioned log's period (None = not set)

    def metrics(self) -> dict[str, float]:
        """The numeric statistics, flat (for a KFP Metrics artifact)."""
        s = self.stats
        return {"users": s["users"], "items": s["items"], "interactions": s["interactions"],
                "categories": s["categories"], "days": s["time_span"]["days"],
                "median_interactions_per_user": s["interactions_per_user"]["median"],
                "top20pct_category_share": s["top20pct_category_share"]}


def run_prepare_data(cfg: RunConfig, out_dir: Path, scheduled_time: str = "") -> PrepareResult:
    """Load and validate the log named by ``cfg.data``; write it as a prepared data dir under ``out_dir``.

    ``scheduled_time`` (the pipeline run's scheduled time, ISO 8601; ``""`` = none) is the as-of time of a
    partitioned log when ``cfg.data.as_of`` is not set (:mod:`coea.data.partitions`: the partitions of the days
    that ended by then); the as-of time used is recorded in the prepared dir's config. Any other log (one file,
    MovieLens, synthetic) is read whole at every scheduled time, without a word: only an as-of time set in
    ``cfg.data`` is warned about there, as ignored."""
    seed_everything(cfg.synthetic.seed, with_torch=False)  # NumPy only; every torch stage seeds torch itself
    partitioned = _partitioned(cfg)
    if cfg.data.as_of is None and (as_of := scheduled_as_of(scheduled_time)) is not None and partitioned:
        cfg = replace(cfg, data=replace(cfg.data, as_of=as_of))
    loaded = load_data(cfg.data, cfg.synthetic)
    full = config_to_dict(cfg)
    paths = write_prepared(loaded, Path(out_dir), {"data": full["data"], "synthetic": full["synthetic"]})
    stats = read_stats(out_dir)
    log.info("prepared %s: %d events, %d users -> %s", loaded.source, stats["interactions"], stats["users"], out_dir)
    return PrepareResult(Path(out_dir), loaded.source, stats, paths, cfg.data.as_of if partitioned else None)


def _partitioned(cfg: RunConfig) -> bool:
    kind, location = parse_spec(cfg.data.spec)
    return kind in ("csv", "parquet") and location is not None and is_partitioned(location)
