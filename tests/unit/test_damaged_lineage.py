"""coea.lineage on damaged run folders: a lineage.json that is not a record is named as damaged (it said "no
lineage.json"), and serving (no split to compare) still refuses artifacts fitted on another log than the run's
data/ (it checked nothing: `coea serve` on a run whose data/ was replaced exited 0) (audit 18, 19)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from coea import lineage
from coea.config import SplitConfig
from coea.errors import CoeaInputError
from tests.unit.test_lineage import recorded_run

ALL = {"dsie", "llms", "pco"}


def _log(path: Path, users: list[str]) -> None:
    pd.DataFrame({"user_id": users, "item_id": ["i1"] * len(users), "category": ["a"] * len(users),
                  "timestamp": list(range(1, len(users) + 1))}).to_parquet(path)


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """tests/unit/test_lineage.py's run folder: data/ and every artifact recorded, pco/ complete."""
    return recorded_run(tmp_path)


DAMAGE = {"truncated": '{"id": "ab', "a-list": "[1, 2]", "histories-a-list": '{"id": "a", "histories": []}',
          "made-from-text": '{"id": "a", "made_from": "x"}', "split-a-list": '{"id": "a", "histories": {"split": []}}',
          "complete-text": '{"id": "a", "complete": "no"}'}


@pytest.mark.parametrize("text", DAMAGE.values(), ids=DAMAGE.keys())
def test_a_damaged_lineage_record_is_named_as_damaged_with_the_step_to_re_run(run, text):
    (run / "dsie" / lineage.LINEAGE).write_text(text)
    for key in (lineage.histories(run / "data", SplitConfig()), None):  # evaluating, serving
        with pytest.raises(CoeaInputError) as err:
            lineage.check_run(run, {"dsie"}, key)
        assert str(err.value) == (f"{run / 'dsie' / lineage.LINEAGE}: damaged: not a lineage record (unreadable, not "
                                  "JSON, or fields of the wrong type) (fix: re-run `coea group` for this run)")


def test_a_missing_record_still_says_so(run):
    (run / "dsie" / lineage.LINEAGE).unlink()
    with pytest.raises(CoeaInputError, match=r"dsie: no lineage.json: the step that writes it did not finish"):
        lineage.check_run(run, {"dsie"}, None)


def test_serving_refuses_artifacts_fitted_on_another_log_than_the_runs_data(run):
    lineage.check_run(run, ALL, None)  # the run's own log: served
    _log(run / "data" / "interactions.parquet", ["z1", "z2", "z3"])  # data/ replaced by another log
    with pytest.raises(CoeaInputError) as err:
        lineage.check_run(run, ALL, None)
    assert str(err.value) == (f"{run / 'dsie'}: it was fitted on another log than the data/ beside it "
                              "(interactions.parquet changed since) (fix: re-run `coea group` for this run)")


def test_serving_leaves_an_unreadable_log_to_its_reader(run):
    path = run / "data" / "interactions.parquet"
    path.write_bytes(path.read_bytes()[:40])  # the reader's "cannot be read" names it better than "another log"
    lineage.check_run(run, ALL, None)
    path.unlink()
    lineage.check_run(run, ALL, None)


def test_serving_does_not_compare_split_settings(run):
    """Serving's histories are every event: groups fitted on this log with other split settings still serve."""
    lineage.write(run / "dsie", lineage.histories(run / "data", SplitConfig(n_future=3)))
    lineage.check_run(run, {"dsie"}, None)
    with pytest.raises(CoeaInputError, match="other split settings"):
        lineage.check_run(run, {"dsie"}, lineage.histories(run / "data", SplitConfig()))
