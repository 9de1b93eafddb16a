"""Stage ``pco``: PCO rounds (:mod:`coea.pco`) from SFT models on the prepared log's histories, with per-round
metrics on the split's evaluated users (:class:`coea.evaluation.pco_metrics.SplitEvaluator`).

Writes under ``out_dir``: ``rounds/round_NNN/`` (both models after each round), ``pco_state.json``,
``pco_metrics.json`` and ``pco_metrics.png``. ``resume`` continues after the last complete round; a PCO config
that differs from the one the state was written with is refused (naming the changed keys) before anything loads.
``served``: a recommendations parquet (user_id, rank, category, score: the KV store's publish format) of what the
serving store showed each user before the log's period (the recurring pipeline's state, ``coea.state.
run_load_served``); ``pco.exposure_inject`` reads it. An empty file (nothing published yet) is no exposure.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coea import lineage
from coea.config import RunConfig, check_cutoffs
from coea.data.prepared import read_prepared
from coea.data.schema import CATEGORY, USER
from coea.data.split import chronological_split
from coea.device import resolve_device
from coea.errors import CoeaInputError
from coea.evaluation.pco_metrics import SplitEvaluator
from coea.llm.sft_config import resolve_llm
from coea.pco.checkpoint import STATE_FILE, check_round, read_state
from coea.pco.config import PcoConfig, RewardKind
from coea.pco.run import run_pco
from coea.stages.artifacts import load_llms, model_dirs
from coea.utils import seed_everything

if TYPE_CHECKING:
    import pandas as pd

_log = logging.getLogger(__name__)


@dataclass
class PcoStageResult:
    """The PCO dir (checkpoints, pco_metrics.json/.png), every round's figures and the last round's."""

    out_dir: Path
    rounds: list[dict[str, Any]]

    @property
    def last(self) -> dict[str, Any]:
        return self.rounds[-1]

    def metrics(self) -> dict[str, float]:
        """The last round's numeric figures, flat (for a KFP Metrics artifact)."""
        return {k: float(v) for k, v in self.last.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def read_exposure(served: Path) -> dict[str, tuple[str, ...]]:
    """User -> served categories in rank order, from a recommendations parquet (module doc); {} for an empty one.
    A bad file raises a one-line ``StoreError`` naming it (and the column and row)."""
    from coea.store.publish import read_recs_file
    from coea.store.records import validate_recs

    frame = read_recs_file(Path(served))
    if frame.empty and "user_id" in frame.columns:
        return {}
    recs = validate_recs(frame, "user_id", name=str(served))
    return {str(u): tuple(g["category"]) for u, g in recs.groupby("user_id", sort=False)}


def _check_sources(run: Path, key: dict[str, Any], resume: bool) -> None:
    lineage.check_run(run, {"llms"}, key)
    if resume:  # the rounds to continue must have started from these models
        models = {name: Path(run) / "llm" / name for name in ("novelty", "relevance")}
        lineage.check(Path(run) / "pco", "pco", key, {"dsie": Path(run) / "dsie", **models}, finished=False)


def check_exposure(exposure: dict[str, tuple[str, ...]], log: pd.DataFrame, served: Path, *, strict: bool) -> None:
    """Served lists that name none of the log's users, or none of its categories, belong to another log and would
    change nothing (or inject unknown categories): refused for a run folder's PCO (``strict``), else a warning."""
    users = set(log[USER].astype(str))
    categories = set(log[CATEGORY].astype(str))
    served_categories = {c for cats in exposure.values() for c in cats}
    problem = None
    if not users & set(exposure):
        problem = (f"none of its {len(exposure)} users is in the log (e.g. {', '.join(sorted(exposure)[:3])}; "
                   f"the log's: {', '.join(sorted(users)[:3])})")
    elif not categories & served_categories:
        problem = (f"none of its {len(served_categories)} categories is in the log (e.g. "
                   f"{', '.join(sorted(served_categories)[:3])}; the log's: {', '.join(sorted(categories)[:3])})")
    if problem is None:
        return
    fix = "pass what the serving store showed this log's users before its period (e.g. an earlier run's " \
          "recommendations.parquet on the same users), or leave --served out"
    if strict:
        raise CoeaInputError(f"served lists of another log: {problem}", source=served, option="--served", fix=fix)
    _log.warning("%s: served lists of another log: %s (fix: %s)", served, problem, fix)


def _check_resume(out_dir: Path, cfg: PcoConfig) -> None:
    """Before any model loads: a state to resume, written with this config, whose last round's checkpoint is there."""
    state = read_state(out_dir, cfg)
    if state is None:
        raise CoeaInputError(f"nothing to resume (no {STATE_FILE})", source=out_dir, option="--resume",
                             fix="drop --resume to start a new run in this directory")
    if state.completed_rounds:
        check_round(out_dir, state.completed_rounds)


def resolved_pco(cfg: RunConfig, new_interactions: bool | None = None) -> PcoConfig:
    """The pco section the rounds run (and their state records): ``pco.refresh_novelty`` decided by
    ``new_interactions`` (see :func:`run_pco_stage`)."""
    fresh = cfg.llm.data.holdout_share > 0 if new_interactions is None else new_interactions
    return cfg.pco.resolve_refresh_novelty(fresh)


def run_pco_stage(cfg: RunConfig, data_dir: Path, dsie_dir: Path, llm_dirs: Sequence[Path], out_dir: Path, *,
                  resume: bool = False, new_interactions: bool | None = None,
                  served: Path | None = None, check_run: Path | None = None) -> PcoStageResult:
    """PCO rounds from the SFT models found in ``llm_dirs`` (see :func:`coea.stages.artifacts.load_llms`).
    ``new_interactions``: whether the rounds read interactions the N-LLM was not trained on, which decides
    ``pco.refresh_novelty`` when the config leaves it on auto (None: only in the continual protocol,
    ``llm.data.holdout_share`` > 0; the recurring pipeline's kept models on a new period pass True). ``served``:
    what the serving store showed each user before the log's period (module doc). ``check_run``: a run folder
    whose artifacts these are (the CLI's): refuse groups and models that do not belong to its data and split, and
    on ``resume`` rounds that started from other models (:mod:`coea.lineage`; the recurring pipeline keeps models
    across periods on purpose and checks nothing)."""
    out_dir = Path(out_dir)
    cfg = replace(cfg, pco=resolved_pco(cfg, new_interactions))
    if resume:
        _check_resume(out_dir, cfg.pco)
    from coea.llm.models import check_prompt_options  # torch-side module: imported when the stage runs

    exposure = read_exposure(served) if served is not None and cfg.pco.exposure_inject else None
    key = lineage.histories(data_dir, cfg.split)  # what the rounds learn from
    if check_run is not None:
        _check_sources(check_run, key, resume)
    seed_everything(cfg.pco.seed)
    device = resolve_device(cfg.device)
    log = read_prepared(data_dir).interactions
    check_cutoffs(cfg, log[CATEGORY].nunique(), ks=False, pco=True)  # before any model loads
    if exposure:
        check_exposure(exposure, log, served, strict=check_run is not None)
    split = chronological_split(log, cfg.split)
    llms = load_llms(list(llm_dirs), dsie_dir, device=device, trainable=True)
    for bundle in (llms.novelty, llms.relevance):
        check_prompt_options(bundle, cfg.llm.data)
    llm = resolve_llm(cfg.llm, cfg.split)  # refresh windows and the adoption prior follow the split unless set
    evaluator = SplitEvaluator(split, llms.groups, llm, cfg.pco.k, long_tail_share=cfg.eval.long_tail_share,
                               judge_users=cfg.eval.judge_users, round_users=cfg.eval.round_users)
    encoder = None
    if cfg.pco.reward is RewardKind.TEACHER:  # the teacher reads the DSIE long-term encoder
        from coea.dsie.encoder import EncoderResult, load_encoder

        encoder = EncoderResult(*load_encoder(Path(dsie_dir) / "encoder", device=device))
    if not resume:  # what the rounds start from; unusable until the run finishes. An earlier run's state goes
        (out_dir / STATE_FILE).unlink(missing_ok=True)  # first: else a --resume would take its rounds as these
        sources = {name: path / name for name, path in model_dirs(list(llm_dirs)).items()}
        lineage.write(out_dir, key, {"dsie": Path(dsie_dir), **sources}, complete=False)
    result = run_pco(cfg.pco, llm, split.histories, llms.groups, llms.novelty, llms.relevance, out_dir,
                     n_short=cfg.split.n_short, device=device, resume=resume, evaluate=evaluator, encoder=encoder,
                     exposure=exposure)
    lineage.mark_complete(out_dir)
    return PcoStageResult(out_dir, result.rounds)
