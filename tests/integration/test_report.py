"""The per-run HTML report built from a hand-made run directory (the report of a real `coea run` in headless
Chromium: tests/pipeline/test_report_browser.py)."""

import json
import re
from pathlib import Path

import pytest

from coea.report_html import render_report

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
    # each plot captioned with its place in the folder (a simulate folder holds one per period)
    assert "<figcaption>metrics_at_10.png</figcaption>" in html and "<figcaption>dsie/groups.png</figcaption>" in html
    assert "http://" not in html and "https://" not in html and "<script" not in html
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


def _terms(html: str, terms_id: str) -> dict[str, str]:
    """The definition list ``terms_id`` of the page as {term: sentence}."""
    block = re.search(rf'<dl id="{terms_id}">(.*?)</dl>', html)
    assert block, terms_id
    return dict(re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", block.group(1)))


def test_report_explains_every_metric_and_pco_column_in_a_sentence(run_dir, tmp_path):
    (run_dir / "pco").mkdir()
    rows = [{"round": r, "C-H": 0.5, "NCP": 0.4, "S-H": 0.3, "x_S-H": 0.2, "judge_S-H": 0.25, "x_S-H_judged": 0.2,
             "rscore": 0.6, "kl_sft": 0.01 * r, "pairs": 3, "dpo_margin": 0.1, "round_s": 2.0, "judged_users": 37}
            for r in (0, 1)]
    (run_dir / "pco" / "pco_metrics.json").write_text(json.dumps({"rounds": rows, "k": 7}))
    html = render_report(run_dir).read_text()
    assert "(K = 7)" in html and "on the same users (37 of them)" in html  # the figures, not their field names
    metrics = _terms(html, "metric-terms")
    assert list(metrics) == ["C-H", "C-N", "NCP", "CLTP", "S-H"]  # the metrics the table shows, in its order
    assert "+x is that method with each user&#x27;s history categories removed" in html
    pco = _terms(html, "pco-terms")
    assert {"x_S-H", "judge_S-H", "x_S-H_judged", "rscore", "kl_sft", "pairs", "dpo_margin", "round_s", "C-H",
            "NCP", "S-H", "round"} == set(pco)
    assert "csid_collision_rate" in _terms(html, "dsie-terms")
    for sentence in [*metrics.values(), *pco.values()]:
        assert len(sentence.split()) >= 5 and sentence.endswith(".")


def test_report_says_which_method_is_served(run_dir):
    assert "served nothing" in render_report(run_dir).read_text()  # an evaluation-only directory
    (run_dir / "served.json").write_text(json.dumps({"method": "coea+x", "k": 10}))
    html = render_report(run_dir).read_text()
    assert '<strong id="served-method">coea+x</strong>, the top 10 categories per user' in html


def test_report_shows_nested_values_as_text_not_json(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["dataset"]["interactions_per_user"] = {"min": 25, "median": 40.5, "mean": 59.0}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    html = render_report(run_dir).read_text()
    assert "<dd>min 25, median 40.5, mean 59</dd>" in html  # counts without padding zeros (not 59.0000)
    assert "<td>15</td><td>20</td><td>25</td>" in html  # the groups' min / median (20.0) / max size
    assert "{" not in re.sub(r"<(style|script)>.*?</\1>", "", html, flags=re.S)


def test_chart_tells_every_default_method_apart():
    """The evaluation chart of the 17 default methods: each method's bars have their own (colour, hatch), and
    method_styles keeps 40 methods apart."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_hex

    from coea.config import EvalConfig
    from coea.evaluation.report import PLOT_METRICS, bar_figure, method_styles

    names = EvalConfig().methods
    assert len(names) == 17
    fig = bar_figure({n: {f"{m}@10": 0.5 for m in PLOT_METRICS} for n in names}, 10)
    try:
        ax = fig.axes[0]
        styles = [(to_hex(c.patches[0].get_facecolor()), c.patches[0].get_hatch() or "") for c in ax.containers]
        assert len(styles) == 17 and len(set(styles)) == 17
        assert [t.get_text() for t in ax.get_legend().get_texts()] == names
    finally:
        plt.close(fig)
    many = [(to_hex(c), h) for c, h in method_styles(40)]
    assert len(set(many)) == 40


def test_report_of_an_unfinished_pco_run_says_so_instead_of_showing_its_metrics(run_dir):
    """A `coea pco` re-run killed after its first round left the earlier run's pco_metrics.json, which the report
    showed as this run's; with pco/lineage.json not marked complete the section says the run did not finish."""
    from coea import lineage

    (run_dir / "pco").mkdir()
    (run_dir / "pco" / "pco_metrics.json").write_text(json.dumps({"rounds": [{"round": 0, "C-H": 0.5}]}))
    lineage.write(run_dir / "pco", {}, complete=False)
    html = render_report(run_dir).read_text()
    assert 'id="pco-unfinished"' in html and "pco-table" not in html
    lineage.mark_complete(run_dir / "pco")
    html = render_report(run_dir).read_text()
    assert 'id="pco-unfinished"' not in html and "pco-table" in html
