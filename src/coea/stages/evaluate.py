"""Stage ``evaluate``: every method of ``eval.methods`` fitted on the prepared log's histories (with exactly the
fitted artifacts they need, loaded from ``dirs``), scored on the held-out futures.

Writes under ``out_dir``: ``metrics.json``, ``metrics.md``, ``metrics_at_K.png``, ``eval_report.html`` (the
metrics table and the chart as one self-contained page with an inline SVG chart: the Kubeflow HTML artifact,
:func:`coea.evaluation.report.report_page`), ``config.json`` (and ``ground_truth/`` for synthetic data).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coea.config import RunConfig, check_cutoffs
from coea.data.prepared import read_prepared
from coea.data.schema import CATEGORY
from coea.data.split import chronological_split
from coea.device import resolve_device
from coea.evaluation.evaluate import evaluate_split
from coea.evaluation.registry import method_context, parse_method
from coea.evaluation.report import report_page
from coea.layout import ArtifactDirs
from coea.stages.artifacts import load_artifacts
from coea.utils import write_text_atomic

MAIN_METRICS = ("C-H", "C-N", "NCP", "CLTP", "S-H")


@dataclass
class EvalStageResult:
    """metrics.json's content, the main metrics at the largest K, and the files written."""

    metrics: dict[str, Any]
    main: dict[str, float]  # "<method>.<metric>@K" -> value
    table: str
    paths: dict[str, Path] = field(default_factory=dict)


def run_evaluate_stage(cfg: RunConfig, data_dir: Path, out_dir: Path,
                       dirs: ArtifactDirs = ArtifactDirs()) -> EvalStageResult:
    """Evaluate ``cfg.eval.methods`` on the prepared log in ``data_dir`` with the artifacts in ``dirs``."""
    for name in cfg.eval.methods:
        parse_method(name)  # fail fast on a typo before any work
    loaded = read_prepared(data_dir)
    check_cutoffs(cfg, loaded.interactions[CATEGORY].nunique())
    split = chronological_split(loaded.interactions, cfg.split)
    artifacts = load_artifacts(cfg.eval.methods, dirs, resolve_device(cfg.device))
    out_dir = Path(out_dir)
    result = evaluate_split(cfg, out_dir, loaded, split, method_context(cfg, artifacts))
    k = max(cfg.eval.ks)
    paths = {**result.paths, "report_html": out_dir / "eval_report.html"}
    write_text_atomic(paths["report_html"], report_page(result.metrics, k, f"{loaded.source}: category metrics at "
                                                        f"K={k}", png_name=paths["plot"].name))
    main = {f"{name}.{m}@{k}": float(values[f"{m}@{k}"])
            for name, values in result.metrics["methods"].items() for m in MAIN_METRICS if f"{m}@{k}" in values}
    return EvalStageResult(result.metrics, main, result.table, paths)
