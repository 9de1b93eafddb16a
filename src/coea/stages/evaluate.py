"""Stage ``evaluate``: every method of ``eval.methods`` fitted on the prepared log's histories (with exactly the
fitted artifacts they need, loaded from ``dirs``), scored on the held-out futures.

Writes under ``out_dir``: ``metrics.json``, ``metrics.md``, ``metrics_at_K.png``, the same chart as a
self-contained ``metrics_at_K.html``, ``config.json`` (and ``ground_truth/`` for synthetic data).
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coea.config import RunConfig
from coea.data.prepared import read_prepared
from coea.data.split import chronological_split
from coea.device import resolve_device
from coea.evaluation.evaluate import evaluate_split
from coea.evaluation.registry import method_context, parse_method
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


def png_as_html(png: Path, title: str) -> str:
    """A self-contained HTML page showing ``png`` (base64 data URI): what a KFP HTML artifact can display."""
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    t = html.escape(title)
    return (f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{t}</title></head>\n'
            f'<body><h3>{t}</h3><img alt="{t}" src="data:image/png;base64,{data}"></body></html>\n')


def run_evaluate_stage(cfg: RunConfig, data_dir: Path, out_dir: Path,
                       dirs: ArtifactDirs = ArtifactDirs()) -> EvalStageResult:
    """Evaluate ``cfg.eval.methods`` on the prepared log in ``data_dir`` with the artifacts in ``dirs``."""
    for name in cfg.eval.methods:
        parse_method(name)  # fail fast on a typo before any work
    loaded = read_prepared(data_dir)
    split = chronological_split(loaded.interactions, cfg.split)
    artifacts = load_artifacts(cfg.eval.methods, dirs, resolve_device(cfg.device))
    out_dir = Path(out_dir)
    result = evaluate_split(cfg, out_dir, loaded, split, method_context(cfg, artifacts))
    k = max(cfg.eval.ks)
    paths = {**result.paths, "plot_html": out_dir / f"metrics_at_{k}.html"}
    write_text_atomic(paths["plot_html"], png_as_html(paths["plot"], f"{loaded.source}: category metrics at K={k}"))
    main = {f"{name}.{m}@{k}": float(values[f"{m}@{k}"])
            for name, values in result.metrics["methods"].items() for m in MAIN_METRICS if f"{m}@{k}" in values}
    return EvalStageResult(result.metrics, main, result.table, paths)
