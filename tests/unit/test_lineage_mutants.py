"""Lineage refusals that the PCO stage relies on (fake run folder from ``tests.unit.test_lineage``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coea import lineage
from coea.config import SplitConfig
from coea.errors import CoeaInputError
from tests.unit.test_lineage import recorded_run


def _dsie_fitted_on_another_log(run: Path) -> None:
    """Change only the data digest in dsie/'s record (its id stays, so the models still point at it)."""
    path = run / "dsie" / lineage.LINEAGE
    record = json.loads(path.read_text(encoding="utf-8"))
    record["histories"]["data"] = "0" * 64
    path.write_text(json.dumps(record), encoding="utf-8")


def test_reading_the_llms_also_checks_the_dsie_dir_against_the_log(tmp_path: Path) -> None:
    """The PCO stage calls ``check_run(run, {"llms"}, key)``: the LLMs were built on dsie/, so dsie/ is checked
    too, and a dsie/ fitted on another log is refused by name, though both models' own records are fine."""
    run = recorded_run(tmp_path)
    key = lineage.histories(run / "data", SplitConfig())
    lineage.check_run(run, {"llms"}, key)  # all consistent: passes
    _dsie_fitted_on_another_log(run)
    with pytest.raises(CoeaInputError, match="fitted on another log than the data/ beside it") as err:
        lineage.check_run(run, {"llms"}, key)
    assert str(err.value).startswith(f"{run / 'dsie'}: ") and "re-run `coea group`" in str(err.value)
