"""``coea.utils.setup_logging``: the loggers the CLI configures."""

from __future__ import annotations

import io
import logging

import pytest

from coea.utils import PROJECT_LOGGERS, setup_logging
from tests.helpers import cli_loggers


@pytest.fixture
def fresh_project_loggers():
    """The project's loggers without handlers during the test, restored afterwards."""
    with cli_loggers(clear=True):
        yield


def test_setup_logging_emits_pipelines_info(fresh_project_loggers, monkeypatch):
    """``coea simulate``'s summary line per period is logged at INFO on ``pipelines.simulate``: after the CLI's
    log set-up it reaches stderr, formatted like the ``coea`` lines, as do the ``coea`` loggers' lines."""
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    setup_logging()
    logging.getLogger("pipelines.x").info("period %d summary", 1)
    logging.getLogger("coea.x").info("coea line")
    logging.getLogger("pipelines.x").debug("not shown")
    lines = err.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].endswith("INFO pipelines.x: period 1 summary")
    assert lines[1].endswith("INFO coea.x: coea line")


def test_setup_logging_configures_each_logger_once(fresh_project_loggers):
    setup_logging()
    setup_logging()
    assert [len(logging.getLogger(name).handlers) for name in PROJECT_LOGGERS] == [1, 1]
