"""Warm kfp.local steps (pipelines.warm): which commands run in a fork-server child, and the switch that turns it
off. The real runs (tests/pipeline/test_local_run.py & co.) go through it."""

from __future__ import annotations

import pytest
import yaml
from kfp.local import subprocess_task_handler as handler

from pipelines import warm
from pipelines.warm import EXECUTOR, WARM_ENV, executor_args, warm_enabled, warm_steps
from tests.helpers import REPO


def _command() -> list[str]:
    """prepare_data's compiled command as kfp.local runs it: ``sh -ec SCRIPT`` + the source + the arguments."""
    spec = yaml.safe_load((REPO / "components" / "prepare_data.yaml").read_text())
    container = spec["deploymentSpec"]["executors"]["exec-prepare-data"]["container"]
    return [*container["command"], "--executor_input", "{}", "--function_to_execute", "prepare_data"]


def test_a_lightweight_component_command_runs_warm_anything_else_the_old_way() -> None:
    command = _command()
    source, args = executor_args(command)
    assert f"-m {EXECUTOR}" in command[2] and "def prepare_data(" in source
    assert args == ["--executor_input", "{}", "--function_to_execute", "prepare_data"]
    assert executor_args(["python", "-c", "pass", "x"]) is None
    assert executor_args(["sh", "-ec", "python3 -m pip install x && " + command[2], source]) is None


@pytest.mark.parametrize(("value", "warm"), [("0", False), ("1", True)])
def test_warm_steps_swaps_kfp_local_s_launcher_only_while_open(monkeypatch, value: str, warm: bool) -> None:
    monkeypatch.setenv(WARM_ENV, value)
    original = handler.run_local_subprocess
    with warm_steps() as on:
        assert on is warm and (handler.run_local_subprocess is not original) is warm
    assert handler.run_local_subprocess is original


def test_unset_it_is_warm_unless_the_machine_has_an_nvidia_gpu(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv(WARM_ENV, raising=False)
    monkeypatch.setattr(warm, "NVIDIA_DEVICE", tmp_path / "nvidiactl")
    assert warm_enabled()
    (tmp_path / "nvidiactl").touch()
    assert not warm_enabled()
    monkeypatch.setenv(WARM_ENV, "1")
    assert warm_enabled()
