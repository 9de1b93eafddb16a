"""The report page leaves out what a damaged group_report.json holds in the wrong shape, instead of failing on it
(`coea report` raised AttributeError/TypeError on a `csid_groups` or `codebooks` of another JSON type)."""

from __future__ import annotations

import pytest

from coea.report_html import _dsie_section


@pytest.mark.parametrize("report", [
    {"users": 5, "csid_groups": [1, 2]},
    {"users": 5, "csid_groups": "x"},
    {"users": 5, "csid_groups": {"sizes": None}},
    {"users": 5, "csid_groups": {"sizes": [3]}},
    {"users": 5, "codebooks": 7},
    {"users": 5, "codebooks": [1, {"level": 0, "codebook_size": 4}]},
])
def test_a_field_of_the_wrong_type_is_left_out(report):
    html = _dsie_section(report)
    assert "DSIE groups" in html and "users" in html


def test_the_sizes_and_codebooks_still_show():
    html = _dsie_section({"csid_groups": {"sizes": {"sizes": [3, 4]}},
                          "codebooks": [{"level": 0, "codebook_size": 4, "utilisation": 0.5}]})
    assert "CSID group sizes: 3, 4" in html and "codebook-table" in html
