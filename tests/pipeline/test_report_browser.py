"""The report of a real ``coea run`` in headless Chromium: the session's tiny training run (with its PCO rounds)
plus the drift check's own output on a taste-shifted period, rendered by ``coea report``. The test reads, from the
browser's side, every console error, uncaught exception and failed load, and every image's decode state
(:mod:`tests.browser`); the page grades nothing itself."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from coea.config import SplitConfig
from coea.drift import DriftConfig
from coea.report_html import render_report
from coea.stages import run_monitor_drift, run_prepare_data
from tests.browser import load_page, require_chromium
from tests.helpers import run_cli
from tests.pipeline.pipeline_helpers import parquet_config, shifted_log

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_dir(trained, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the session's ``coea run`` folder (without the pipeline's kfp/ and state/ copies) with
    ``drift/drift.json`` from the drift stage: its data against the same log with every category rotated."""
    tmp = tmp_path_factory.mktemp("report_run")
    run = tmp / "run"
    shutil.copytree(trained[0], run, ignore=lambda d, names: {"kfp", "state"} & set(names) if Path(d) == trained[0]
                    else set())
    shifted = shifted_log(run / "data", tmp / "period.parquet")
    run_prepare_data(parquet_config(shifted), tmp / "current")
    result = run_monitor_drift(DriftConfig(), run / "data", tmp / "current", run / "dsie", run / "drift",
                               split=SplitConfig())
    assert result.drifted  # a pure taste shift: the section shows a real verdict
    return run


def _pngs(run: Path) -> list[Path]:
    return [p for p in run.rglob("*.png") if p.relative_to(run).parts[0] not in ("kfp", "state")]


def test_report_of_a_real_run_loads_without_errors_and_every_image_decodes(run_dir, tmp_path, capsys):
    require_chromium()
    code, out, err = run_cli(["report", "--run-dir", str(run_dir)], capsys)
    assert code == 0, err
    assert out.strip() == f"report: {run_dir / 'report.html'}"
    page = load_page(run_dir / "report.html", tmp_path / "profile")
    assert page.errors == [], page.errors
    assert page.broken_images == []
    pngs = _pngs(run_dir)  # the metrics chart and the PCO rounds' chart
    assert len(page.probe["images"]) == len(pngs) and {"metrics_at_10.png", "pco_metrics.png"} <= {p.name for p in pngs}
    assert {"served", "metrics", "plots", "dsie", "drift", "pco"} <= set(page.probe["sections"])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert page.probe["metricsRows"] == len(metrics["methods"]) > 0
    rounds = json.loads((run_dir / "pco" / "pco_metrics.json").read_text())["rounds"]
    assert page.probe["pcoRows"] == len(rounds) == 3  # round 0 and the two PCO rounds
    drift = json.loads((run_dir / "drift" / "drift.json").read_text())
    html = (run_dir / "report.html").read_text()
    assert f"<dt>drift_share</dt><dd>{drift['drift_share']:.4f}</dd>" in html


def test_the_browser_check_catches_a_broken_image_and_a_console_error(run_dir, tmp_path):
    """The same page with one image's bytes cut short and a script that logs an error: both are reported."""
    require_chromium()
    html = render_report(run_dir, tmp_path / "report.html").read_text()
    first = re.search(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', html)
    assert first
    bad = html.replace(first.group(2), first.group(2)[:64], 1).replace(
        "</body>", "<script>console.error('report check');</script></body>")
    (tmp_path / "bad.html").write_text(bad)
    page = load_page(tmp_path / "bad.html", tmp_path / "profile")
    assert page.broken_images == [first.group(1)]
    assert "report check" in page.errors
