"""report.html shows metrics.json's paired differences (the table metrics.md and eval_report.html show) and says
plainly, near the top, where the served method stands against the reference."""

import json
import re
from pathlib import Path

import pytest

from coea.evaluation.report import paired_table
from coea.report_html import render_report

METHODS = {name: {"S-H@10": s, "C-H@10": s} for name, s in
           (("pop_novel", 0.30), ("group_pop_novel", 0.45), ("coea+x", 0.44), ("coea_seq+x", 0.43))}


def _ci(diff: float, low: float, high: float) -> dict:
    return {"diff": diff, "low": low, "high": high, "excludes_zero": low > 0 or high < 0}


def _paired(served_ci: dict) -> dict:
    """A paired_ci section as coea evaluate writes it (coea.evaluation.paired.ci_section)."""
    return {"reference": "group_pop_novel", "k": 10, "metrics": ["S-H", "C-H"], "n_users": 600, "n_boot": 2000,
            "level": 0.95, "methods": {
                "pop_novel": {"S-H@10": _ci(-0.12, -0.1583, -0.0833), "C-H@10": _ci(-0.12, -0.1583, -0.0833)},
                "coea+x": {"S-H@10": _ci(-0.0183, -0.0383, 0.0017), "C-H@10": _ci(-0.0183, -0.0383, 0.0017)},
                "coea_seq+x": {"S-H@10": served_ci, "C-H@10": served_ci}}}


def _run(tmp_path: Path, served_ci: dict, served: str = "coea_seq+x") -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"methods": METHODS, "paired_ci": _paired(served_ci)}))
    (run / "served.json").write_text(json.dumps({"method": served, "k": 10}))
    return run


def _text(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


def test_report_shows_the_paired_ci_table_of_metrics_json_with_the_same_cells_as_metrics_md(tmp_path):
    run = _run(tmp_path, _ci(-0.0183, -0.035, -0.0017))
    html = render_report(run).read_text()
    table = re.search(r'<table id="paired-ci-table">.*?</table>', html, re.S)
    assert table is not None and "Paired difference vs group_pop_novel" in html
    md = paired_table(_paired(_ci(-0.0183, -0.035, -0.0017)))
    for name in ("pop_novel", "coea+x", "coea_seq+x"):  # every row, every cell as metrics.md writes it
        cells = re.search(rf"^\| {re.escape(name)} \| (.*) \|$", md, re.M).group(1).split(" | ")
        row = re.search(rf"<tr><td>{re.escape(name)}</td>(.*?)</tr>", table.group(0)).group(1)
        assert re.findall(r"<td>(.*?)</td>", row) == [
            c.replace("**", "<strong>", 1).replace("**", "</strong>", 1) for c in cells]
    assert "<strong>-0.0183 [-0.0383, +0.0017]</strong>" not in html  # holds 0: not bold
    assert "2000 paired bootstrap replicates" in _text(html)


def test_report_says_near_the_top_that_the_served_method_is_below_the_reference(tmp_path):
    html = render_report(_run(tmp_path, _ci(-0.0183, -0.035, -0.0017))).read_text()
    verdict = re.search(r'<p id="served-verdict" class="below">(.*?)</p>', html, re.S)
    assert verdict is not None
    assert ("The served method coea_seq+x is below group_pop_novel on this data: S-H@10 -0.0183 [-0.0350, -0.0017]"
            in verdict.group(1))
    assert html.index('id="served-verdict"') < html.index('id="metrics"')  # before the tables


@pytest.mark.parametrize(("ci", "said"), [
    (_ci(0.02, 0.004, 0.036), "is above group_pop_novel on this data: S-H@10 +0.0200 [+0.0040, +0.0360]"),
    (_ci(-0.01, -0.03, 0.01), "is not distinguishable from group_pop_novel on this data"),
])
def test_report_does_not_call_a_served_method_below_the_reference_unless_its_interval_is(tmp_path, ci, said):
    html = render_report(_run(tmp_path, ci)).read_text()
    assert said in html and " is below " not in html and 'class="below"' not in html


def test_report_of_a_run_serving_the_reference_itself_says_so(tmp_path):
    html = render_report(_run(tmp_path, _ci(-0.0183, -0.035, -0.0017), served="group_pop_novel")).read_text()
    assert "The served method group_pop_novel is the reference of the paired comparison" in html
    assert " is below " not in html


def test_report_without_paired_ci_has_no_paired_table_and_no_verdict(tmp_path):
    run = _run(tmp_path, _ci(-0.0183, -0.035, -0.0017))
    (run / "metrics.json").write_text(json.dumps({"methods": METHODS}))  # an older metrics.json
    html = render_report(run).read_text()
    assert "paired-ci-table" not in html and "served-verdict" not in html and 'id="served-method"' in html


def test_report_leaves_out_a_damaged_interval_instead_of_failing(tmp_path):
    run = _run(tmp_path, {"diff": "n/a"})
    html = render_report(run).read_text()
    assert 'id="paired-ci-table"' in html and "served-verdict" not in html
