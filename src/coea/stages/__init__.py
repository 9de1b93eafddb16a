"""Stage functions: paths and a config in, a small result out. One module per stage, one implementation each.

The CLI, the in-process flow (:mod:`coea.flow`) and the Kubeflow components (top-level ``components/``) all call
these functions; nothing here imports kfp. Stages hand each other directories (:mod:`coea.layout`):

- ``prepare`` (:func:`run_prepare_data`): the prepared data dir (:mod:`coea.data.prepared`);
- ``dsie`` (:func:`run_dsie_group`), ``profiles`` (:func:`run_build_profiles`): the DSIE dir;
- ``sft`` (:func:`run_sft_stage`): ``novelty/`` and/or ``relevance/`` with ``sft_metrics_<model>.json``;
- ``pco`` (:func:`run_pco_stage`): PCO rounds, ``pco_state.json``, ``pco_metrics.json/.png``;
- ``evaluate`` (:func:`run_evaluate_stage`), ``recommend`` (:func:`run_recommend`), ``drift``
  (:func:`run_monitor_drift`); the state and the KV store: :mod:`coea.state` (``run_save_state``,
  ``run_load_state``, ``run_save_models``, ``run_load_models``, ``run_export``).
"""

from coea.layout import ArtifactDirs, RunLayout
from coea.pco.checkpoint import export_round_models, last_complete_round
from coea.stages.artifacts import load_artifacts, load_dsie, load_llms, load_pco, read_groups_dir
from coea.stages.drift import run_monitor_drift
from coea.stages.dsie import DsieStageResult, run_dsie_group
from coea.stages.evaluate import EvalStageResult, png_as_html, run_evaluate_stage
from coea.stages.params import (
    CONFIG_PARAMS,
    PENDING_SECTIONS,
    config_from_json,
    drift_config_from_json,
    pipeline_arguments,
)
from coea.stages.pco import PcoStageResult, run_pco_stage
from coea.stages.prepare import PrepareResult, run_prepare_data
from coea.stages.profiles import ProfilesResult, run_build_profiles
from coea.stages.recommend import REC_COLUMNS, RecommendResult, run_recommend, serving_histories
from coea.stages.sft import SftStageResult, run_sft_stage
from coea.state import run_export, run_load_models, run_load_state, run_save_models, run_save_state
from coea.store import PublishConfig

__all__ = [
    "CONFIG_PARAMS", "PENDING_SECTIONS", "REC_COLUMNS", "ArtifactDirs", "DsieStageResult", "EvalStageResult",
    "PcoStageResult", "PrepareResult", "ProfilesResult", "PublishConfig", "RecommendResult", "RunLayout",
    "SftStageResult", "config_from_json", "drift_config_from_json", "export_round_models", "last_complete_round",
    "load_artifacts", "load_dsie", "load_llms", "load_pco", "pipeline_arguments", "png_as_html", "read_groups_dir",
    "run_build_profiles", "run_dsie_group", "run_evaluate_stage", "run_export", "run_load_models", "run_load_state",
    "run_monitor_drift", "run_pco_stage", "run_prepare_data", "run_recommend", "run_save_models", "run_save_state",
    "run_sft_stage", "serving_histories",
]
