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

from __future__ import annotations

import importlib
from typing import Any

# name -> the module defining it. Resolved on first use (PEP 562), so that a pipeline step importing one stage
# does not import every stage's dependencies (torch, transformers, trl, evidently): kfp.local and every pod start
# a fresh Python per step.
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("ArtifactDirs", "RunLayout"), "coea.layout"),
    **dict.fromkeys(("export_round_models", "last_complete_round"), "coea.pco.checkpoint"),
    **dict.fromkeys(("load_artifacts", "load_dsie", "load_llms", "load_pco", "read_groups_dir"),
                    "coea.stages.artifacts"),
    "run_monitor_drift": "coea.stages.drift",
    **dict.fromkeys(("DsieStageResult", "run_dsie_group"), "coea.stages.dsie"),
    **dict.fromkeys(("EvalStageResult", "run_evaluate_stage"), "coea.stages.evaluate"),
    **dict.fromkeys(("CONFIG_PARAMS", "PENDING_SECTIONS", "UiParameters", "config_from_json", "drift_config_from_json",
                     "pipeline_arguments", "with_ui_parameters"), "coea.stages.params"),
    **dict.fromkeys(("PcoStageResult", "run_pco_stage"), "coea.stages.pco"),
    "rounds_page": "coea.pco.plot",
    **dict.fromkeys(("PrepareResult", "run_prepare_data"), "coea.stages.prepare"),
    **dict.fromkeys(("provenance", "record_version"), "coea.stages.provenance"),
    **dict.fromkeys(("ProfilesResult", "run_build_profiles"), "coea.stages.profiles"),
    **dict.fromkeys(("REC_COLUMNS", "RecommendResult", "run_recommend", "serving_histories"), "coea.stages.recommend"),
    **dict.fromkeys(("SftStageResult", "run_sft_stage"), "coea.stages.sft"),
    **dict.fromkeys(("run_export", "run_load_models", "run_load_state", "run_save_models", "run_save_state"),
                    "coea.state"),
    "PublishConfig": "coea.store",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'coea.stages' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return __all__
