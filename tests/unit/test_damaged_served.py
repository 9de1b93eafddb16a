"""Served lists (`coea pco --served`, the recurring pipeline's exposure) that belong to another log: none of their
users, or none of their categories, in the log PCO learns from. Before: read as exposure without a word, so the
option changed nothing (audit 19)."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from coea.errors import CoeaInputError
from coea.stages.pco import check_exposure

LOG = pd.DataFrame({"user_id": ["u1", "u1", "u2"], "item_id": ["i1", "i2", "i3"], "category": ["a", "b", "c"],
                    "timestamp": [1, 2, 3]})


@pytest.mark.parametrize(("exposure", "problem"), [
    ({"z1": ("a",), "z2": ("b",)}, "none of its 2 users is in the log (e.g. z1, z2; the log's: u1, u2)"),
    ({"u1": ("x", "y")}, "none of its 2 categories is in the log (e.g. x, y; the log's: a, b, c)"),
], ids=["other-users", "other-categories"])
def test_served_lists_of_another_log_are_refused_for_a_run_and_a_warning_in_the_pipeline(tmp_path, caplog, monkeypatch,
                                                                                       exposure, problem):
    served = tmp_path / "served.parquet"
    with pytest.raises(CoeaInputError) as err:
        check_exposure(exposure, LOG, served, strict=True)
    assert str(err.value).startswith(f"{served}, option --served: served lists of another log: {problem} (fix: pass "
                                     "what the serving store showed this log's users before its period")
    monkeypatch.setattr(logging.getLogger("coea"), "propagate", True)  # caplog listens at the root logger
    caplog.set_level(logging.WARNING, logger="coea")
    check_exposure(exposure, LOG, served, strict=False)
    assert f"{served}: served lists of another log: {problem}" in caplog.text


def test_served_lists_that_share_users_and_categories_pass(tmp_path):
    check_exposure({"u1": ("c", "zz"), "gone": ("a",)}, LOG, tmp_path / "s.parquet", strict=True)
