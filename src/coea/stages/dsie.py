"""Stage ``dsie``: split the prepared log, fit DSIE on the histories, write the DSIE directory."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from coea import lineage
from coea.config import RunConfig, SplitConfig
from coea.data.loaders import LoadedData
from coea.data.prepared import read_prepared
from coea.data.split import chronological_split, cold_start_warning, require_warm_users
from coea.device import resolve_device
from coea.dsie.config import EncoderConfig
from coea.dsie.report import DsieSummary, dsie_summary
from coea.dsie.run import run_dsie
from coea.utils import seed_everything

log = logging.getLogger(__name__)


@dataclass
class DsieStageResult:
    """DSIE outputs and the figures a person looks at first."""

    summary: DsieSummary
    paths: dict[str, Path] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """The summary's numbers, flat (for a KFP Metrics artifact)."""
        return self.summary.metrics()


def _truth(loaded: LoadedData) -> dict[str, int] | None:
    if loaded.truth is None:
        return None
    return dict(zip(loaded.truth.groups["user_id"], loaded.truth.groups["group"].astype(int), strict=True))


def resolve_encoder(enc: EncoderConfig, split: SplitConfig) -> EncoderConfig:
    """``enc`` with its null target fields set from the split, so a view's encoder learns what the view scores:
    ``target_gap`` = ``min_gap``; ``target`` = novel on a ``min_gap`` view, both (a next-event and a novel-set
    encoder) otherwise; ``target_horizon`` = ``n_future``; ``output_bias`` = on where novel sets are learned
    (MovieLens validation, docs/results.md, sessions 28-29: on the 1-day view adding a next-event encoder to the
    novel-set one lost .010 in three fits; on the default view the pair gained .012 over the next-event encoder
    alone in two, two next-event encoders .002)."""
    gap = split.min_gap if enc.target_gap is None else enc.target_gap
    target = enc.target or ("novel" if split.min_gap > 0 else "both")
    horizon = split.n_future if enc.target_horizon is None else enc.target_horizon
    chosen = replace(enc, target_gap=gap, target=target, target_horizon=horizon)
    return replace(chosen, output_bias=chosen.with_bias)  # EncoderConfig's own rule for a null output_bias


def run_dsie_group(cfg: RunConfig, data_dir: Path, out_dir: Path) -> DsieStageResult:
    """Fit DSIE on the histories of the prepared log in ``data_dir`` (warm users get CSIDs, cold-start users the
    nearest group); write groups, profiles, report and weights under ``out_dir``."""
    seed_everything(cfg.dsie.seed)
    lineage.clear(out_dir)  # until the fit is written, out_dir is no DSIE dir to build on
    loaded = read_prepared(data_dir)
    split = chronological_split(loaded.interactions, cfg.split)
    if (warning := cold_start_warning(split)) is not None:
        log.warning(warning)
    require_warm_users(split, loaded.source)
    dsie_cfg = replace(cfg.dsie, encoder=resolve_encoder(cfg.dsie.encoder, split.config))
    dsie = run_dsie(dsie_cfg, split.histories, split.warm_users, split.cold_users, Path(out_dir),
                    device=resolve_device(cfg.device), truth=_truth(loaded))
    lineage.write(out_dir, lineage.histories(data_dir, cfg.split))
    return DsieStageResult(dsie_summary(dsie.report), dsie.paths)
