"""Pages for Kubeflow HTML artifacts (coea.html_artifact): self-contained, inline SVG charts instead of base64
PNGs (kubeflow/pipelines#10527), within the size limit, charts that do not fit replaced by a note."""

from __future__ import annotations

import pytest

from coea.evaluation.report import report_page
from coea.html_artifact import (
    HTML_ARTIFACT_LIMIT,
    Chart,
    artifact_page,
    external_references,
    html_table,
    page_bytes,
)
from coea.pco.plot import rounds_page
from tests.helpers import assert_artifact_page

SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'


def test_table_escapes_cells_and_formats_floats() -> None:
    assert html_table(["a<b"], [["x&y", 0.5, None]]) == (
        "<table><thead><tr><th>a&lt;b</th></tr></thead><tbody><tr><td>x&amp;y</td><td>0.5000</td><td></td></tr>"
        "</tbody></table>")


def test_a_chart_that_does_not_fit_is_replaced_by_a_note() -> None:
    small = artifact_page("t", ["<p>x</p>"], [Chart("fits", SVG)], limit=4000)
    assert_artifact_page(small)
    assert SVG in small
    big = Chart("too big", SVG[:-6] + "<g/>" * 1000 + "</svg>", fallback="The PNG is c.png.")
    page = artifact_page("t", ["<p>x</p>"], [Chart("fits", SVG), big], limit=4000)
    assert_artifact_page(page)
    assert page_bytes(page) <= 4000 and SVG in page and "<g/>" not in page
    assert "chart left out: the page would pass 3 KiB. The PNG is c.png." in page


def test_blocks_alone_over_the_limit_are_an_error() -> None:
    with pytest.raises(ValueError, match="over 100 bytes"):
        artifact_page("t", ["<p>" + "x" * 200 + "</p>"], limit=100)


def test_external_references_finds_loads_and_data_uris_but_not_svg_ids() -> None:
    page = ('<img src="https://x/a.png"/><a href="data:image/png;base64,AA"/><use xlink:href="#m1"/>'
            '<g clip-path="url(#p1)"/><div style="background:url(http://y/b.png)"/>')
    assert external_references(page) == ["https://x/a.png", "data:image/png;base64,AA", "http://y/b.png"]


def test_evaluation_and_pco_pages_are_self_contained_svg_within_the_limit() -> None:
    methods = {f"method_{i}": {f"{m}@10": 0.01 * i for m in ("C-H", "C-N", "NCP", "CLTP", "S-H", "S-P", "Cov")}
               for i in range(14)}  # the default number of methods
    page = report_page({"dataset": {"source": "synthetic", "users": 9, "interactions": 90}, "methods": methods},
                       10, "synthetic: K=10", png_name="metrics_at_10.png")
    assert_artifact_page(page)
    assert page.count("<svg") == 1 and "<td>method_13</td>" in page and "chart left out" not in page
    rows = [{"round": r, "NCP": 0.1 * r, "C-H": 0.2, "rscore": 0.5} for r in range(1, 4)]
    pco = rounds_page(rows, "PCO rounds")
    assert_artifact_page(pco)
    assert pco.count("<svg") == 1 and "<th>rscore</th>" in pco
    assert page_bytes(page) < HTML_ARTIFACT_LIMIT // 4  # vector charts leave room to spare
