"""The per-run HTML report: built from a fake run directory, then loaded in headless Chromium."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from coea.report_html import render_report

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
METHODS = {
    "pop": {f"{m}@{k}": 0.1 * i for k in (5, 10) for i, m in enumerate(("C-H", "C-N", "NCP", "CLTP", "S-H"), 1)},
    "nllm_sft+x": {f"{m}@{k}": 0.05 * i for k in (5, 10) for i, m in enumerate(("C-H", "C-N", "NCP", "CLTP"), 1)},
}
GROUP_REPORT = {
    "users": 40,
    "codebooks": [{"level": 0, "codebook_size": 4, "utilisation": 1.0, "perplexity": 3.1}],
    "csid_collision_rate": 0.5,
    "csid_groups": {"sizes": {"M_N": 2, "min": 15, "median": 20.0, "max": 25, "sizes": [25, 15]},
                    "embedding_cosine": {"intra": 0.8, "inter": 0.4, "ratio": 2.0},
                    "category_cosine": {"intra": 0.6, "inter": 0.3, "ratio": 2.0}, "ari_vs_planted": 0.75},
    "kmeans_same_M_N": {"sizes": {"M_N": 2, "min": 18, "median": 20.0, "max": 22, "sizes": [22, 18]},
                        "embedding_cosine": {"intra": 0.7, "inter": 0.5, "ratio": 1.4}},
}


def _png(path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2), dpi=50)
    ax.bar(["a", "b"], [1, 2])
    ax.set_title(title)
    fig.savefig(path)
    plt.close(fig)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "20260101-000000"
    (run / "dsie").mkdir(parents=True)
    (run / "kfp" / "x").mkdir(parents=True)
    metrics = {"dataset": {"source": "synthetic", "users": 40}, "protocol": {"ks": [5, 10]},
               "methods": METHODS, "cold_start": {"pop": METHODS["pop"]}}
    (run / "metrics.json").write_text(json.dumps(metrics))
    (run / "dsie" / "group_report.json").write_text(json.dumps(GROUP_REPORT))
    _png(run / "metrics_at_10.png", "<K=10 & more>")
    _png(run / "dsie" / "groups.png", "groups")
    _png(run / "kfp" / "x" / "copy.png", "pipeline copy, skipped")
    return run


def test_report_is_self_contained(run_dir):
    path = render_report(run_dir)
    assert path == run_dir / "report.html"
    html = path.read_text()
    assert '<table id="metrics-table">' in html and 'id="cold-start-table"' in html
    assert "<td>nllm_sft+x</td>" in html and "C-H@10" in html and "S-H@5" in html
    assert html.count('src="data:image/png;base64,') == 2  # the kfp/ copy is left out
    assert "http://" not in html and "https://" not in html
    assert "M_N" in html and "0.7500" in html and 'id="codebook-table"' in html  # ARI, codebook utilisation
    assert "PCO rounds" not in html and "Drift" not in html  # absent inputs: sections left out


def test_report_optional_sections(run_dir, tmp_path):
    (run_dir / "drift.json").write_text(json.dumps({"drift_share": 0.5, "drifted": True, "features": [
        {"column": "<entropy>", "stattest": "K-S p_value", "score": 0.01, "threshold": 0.05, "drifted": True}]}))
    (run_dir / "pco").mkdir()
    rows = [{"round": 0, "NCP": 0.31}, {"round": 1, "NCP": 0.42, "window": [1, 2], "pairs": 17}]
    (run_dir / "pco" / "pco_metrics.json").write_text(json.dumps({"rounds": rows}))  # what coea run writes
    html = render_report(run_dir, tmp_path / "other.html").read_text()
    assert "&lt;entropy&gt;" in html and "<entropy>" not in html  # escaped
    assert 'id="pco-table"' in html and "0.42" in html and "pairs" in html
    assert ">window<" not in html and ">pairs<" in html  # the loop's bookkeeping columns stay out of the table
    (run_dir / "pco" / "pco_metrics.json").unlink()
    (run_dir / "pco_metrics.json").write_text(json.dumps([{"round": 0, "dpo_loss": 0.69}, {"round": 1}]))
    assert "dpo_loss" in render_report(run_dir, tmp_path / "other.html").read_text()  # any other rows: as they are


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian: apt-get install chromium)")
def test_report_loads_in_headless_chromium(run_dir, tmp_path):
    path = render_report(run_dir)
    res = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", "--dump-dom", path.resolve().as_uri()],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    body = re.search(r"<body[^>]*>", res.stdout)
    assert body, res.stdout[:2000]
    # set by the page's load handler: every <img> complete with naturalWidth > 0, and the table's body rows
    assert 'data-images-ok="2/2"' in body.group(0), body.group(0)
    assert f'data-metrics-rows="{len(METHODS)}"' in body.group(0), body.group(0)
