"""Warm kfp.local steps (pipelines.warm): which commands run in a fork-server child, and the switch that turns it
off. The real runs (tests/pipeline/test_local_run.py & co.) go through it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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


@pytest.mark.parametrize(("value", "on_"), [("0", False), ("1", True)])
def test_warm_steps_swaps_kfp_local_s_launcher_only_while_open(monkeypatch, value: str, on_: bool) -> None:
    monkeypatch.setenv(WARM_ENV, value)
    started = []
    monkeypatch.setattr(warm, "start_server", lambda: started.append(True) or 0.0)
    original = handler.run_local_subprocess
    with warm_steps() as on:
        assert on is on_ and (handler.run_local_subprocess is not original) is on_
        assert started == [True] * on_  # the server is up before the first step: its time is not that step's
    assert handler.run_local_subprocess is original


def test_start_server_returns_once_a_child_of_the_server_has_run(monkeypatch, tmp_path, caplog) -> None:
    """The fork server imports PRELOAD before it forks a child: a child that has run means the imports are done,
    and start_server returns only then; a child that fails is a warning. (A fork context stands in for the fork
    server here: its 15-20 s of imports are what the real runs time.)"""
    import logging
    import multiprocessing

    monkeypatch.setattr(warm, "_fork_server", lambda: multiprocessing.get_context("fork"))
    flag = tmp_path / "ran"
    monkeypatch.setattr(warm, "_ready", lambda: (time.sleep(0.3), flag.write_text("ran")))
    assert warm.start_server() >= 0.3 and flag.read_text() == "ran"  # returned after the child ran
    monkeypatch.setattr(warm, "_ready", lambda: os._exit(3))
    with caplog.at_level(logging.WARNING, logger="pipelines.warm"):
        warm.start_server()
    assert "ended with exit code 3" in caplog.text


def test_unset_it_is_warm_unless_the_machine_has_an_nvidia_gpu(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv(WARM_ENV, raising=False)
    monkeypatch.setattr(warm, "NVIDIA_DEVICE", tmp_path / "nvidiactl")
    assert warm_enabled()
    (tmp_path / "nvidiactl").touch()
    assert not warm_enabled()
    monkeypatch.setenv(WARM_ENV, "1")
    assert warm_enabled()


CHILD_SCRIPT = """
import multiprocessing, os, sys, time
from pipelines import warm

def child(path, owner):
    warm._die_with(owner)
    with open(path + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(path + ".tmp", path)
    time.sleep(120)

if __name__ == "__main__":
    ctx = multiprocessing.get_context("forkserver")
    ctx.Process(target=child, args=(sys.argv[1], os.getpid())).start()
    time.sleep(120)
"""


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the child's state from /proc")
def test_a_step_dies_with_the_coea_process_that_started_it(tmp_path: Path) -> None:
    """`kill -9` on `coea run` left its running step going (it wrote its outputs after the parent was gone): a
    step forked by the fork server, as run_warm forks it, ends when the process that started it is killed."""
    script, pid_file = tmp_path / "parent.py", tmp_path / "child.pid"
    script.write_text(CHILD_SCRIPT)
    parent = subprocess.Popen([sys.executable, str(script), str(pid_file)], cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        child = int(pid_file.read_text())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 20
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(child)
    finally:
        parent.kill()
        if pid_file.exists() and _alive(child := int(pid_file.read_text())):
            os.kill(child, signal.SIGKILL)  # never leave it running, even when the test fails


def _alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _cleans_up(marker: str) -> None:
    try:
        time.sleep(120)
    finally:  # what a step's context managers do when it is interrupted
        Path(marker).write_text("cleaned", encoding="utf-8")


def test_an_interrupted_run_interrupts_its_step_so_that_it_cleans_up(tmp_path: Path) -> None:
    """Ctrl-C or SIGTERM on `coea run` left its running step going until the owner watch ended it with os._exit
    (no cleanup: its coea-* temporary folders stayed). stop_step interrupts the step (its finally blocks run) and
    waits for it."""
    import multiprocessing

    from pipelines.warm import stop_step

    marker = tmp_path / "marker"
    process = multiprocessing.get_context("fork").Process(target=_cleans_up, args=(str(marker),))
    process.start()
    time.sleep(0.5)  # inside the try block
    stop_step(process, grace_s=20)
    assert not process.is_alive() and marker.read_text(encoding="utf-8") == "cleaned"


def test_run_warm_stops_its_step_when_interrupted(monkeypatch, tmp_path: Path) -> None:
    """The interrupt reaches run_warm while it streams the step's log: it stops the step (stop_step) before the
    step's temporary folder is removed, then lets the interrupt go on."""
    import multiprocessing

    monkeypatch.setattr(warm, "_fork_server", lambda: multiprocessing.get_context("fork"))
    monkeypatch.setattr(warm, "_step", lambda *args: time.sleep(120))

    def interrupted(log, process) -> None:
        raise KeyboardInterrupt

    stopped = []
    monkeypatch.setattr(warm, "_stream", interrupted)
    monkeypatch.setattr(warm, "stop_step", lambda process: stopped.append(process) or process.kill() or process.join())
    with pytest.raises(KeyboardInterrupt):
        warm.run_warm(_command())
    assert len(stopped) == 1 and not stopped[0].is_alive()
