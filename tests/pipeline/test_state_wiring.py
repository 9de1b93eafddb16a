"""How the compiled pipelines wire the state commit (coea.state): the recurring save steps get the ids load_state
and load_models returned (so a commit onto a state another run replaced is refused, on every retry), load_models
gets the period's data (a period whose update the state holds is refused), each export gets the models id its save
step committed (it publishes only while they are active), and save_models gets the period it records. The training
pipeline re-seeds the state: its save expects nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipelines.definitions import RECURRING, TRAINING
from tests.pipeline.compiled_spec import executor_tasks, read_spec


@pytest.fixture(scope="module")
def tasks(default_compiled: dict[str, Path]) -> dict[str, dict[str, dict[str, Any]]]:
    return {name: executor_tasks(read_spec(default_compiled["pipelines"] / f"{name.replace('-', '_')}.yaml"))
            for name in (TRAINING, RECURRING)}


def _param(task: dict[str, Any], name: str) -> str:
    """Where a parameter input comes from: ``TASK.KEY`` for another task's output, else the (pipeline channel)
    input's name."""
    ref = task["inputs"]["parameters"][name]
    if "taskOutputParameter" in ref:
        return f"{ref['taskOutputParameter']['producerTask']}.{ref['taskOutputParameter']['outputParameterKey']}"
    return ref["componentInputParameter"]


def _artifact(task: dict[str, Any], name: str) -> str:
    ref = task["inputs"]["artifacts"][name]
    return ref["taskOutputArtifact"]["producerTask"] if "taskOutputArtifact" in ref else ref["componentInputArtifact"]


def test_recurring_saves_expect_what_was_loaded_and_exports_check_their_commit(tasks) -> None:
    recurring = tasks[RECURRING]
    assert _artifact(recurring["load-models"], "data") == "prepare-data"  # the period whose update it refuses
    exports = {_param(t, "committed_models") for n, t in recurring.items() if n.startswith("export-recommendations")}
    assert exports == {"save-state.Output", "save-models.Output"}  # one export per branch, after its own save
    for name in ("save-state", "save-models"):
        save = recurring[name]
        assert _param(save, "expected_snapshot") == "pipelinechannel--load-state-Output"
        assert _param(save, "expected_models") == "pipelinechannel--load-models-Output"
        assert _artifact(save, "data") == "pipelinechannel--prepare-data-data"  # the period it records


def test_training_re_seeds_the_state_and_its_export_checks_its_commit(tasks) -> None:
    training = tasks[TRAINING]
    assert not {"expected_snapshot", "expected_models"} & set(training["save-state"]["inputs"]["parameters"])
    assert _param(training["export-recommendations"], "committed_models") == "save-state.Output"
