"""Warm kfp.local steps: each step runs in a process forked from a server that has already imported what the
steps import (kfp's executor, pandas, torch, transformers, trl, Evidently, the coea stages), instead of a fresh
Python.

kfp.local's ``SubprocessRunner`` starts every step as ``sh -c '... python -m kfp.dsl.executor_main ...'``: a fresh
interpreter that imports torch, transformers and trl again, 5-8 s per training step, which on a small config is
more than the step's own work. :func:`warm_steps` swaps kfp.local's subprocess launcher, while open, for one that
runs the same executor (``kfp.dsl.executor_main`` with the same arguments, ``_KFP_RUNTIME=true`` and the caller's
current environment and working directory) in a child of a ``multiprocessing`` fork server started once per
process with those modules preloaded (:data:`PRELOAD`). The step's stdout and stderr go to kfp.local's console
stream line by line, as before; its exit status decides success, as before. A command of another shape (a newer
kfp) runs the old way. ``COEA_KFP_LOCAL_WARM=0`` turns it off (a fresh Python per step), ``=1`` on; unset, it is on
unless the machine has an NVIDIA GPU (CUDA does not promise to work in a child forked after the driver was
touched, and the GPU path has not been tried warm).

The server imports modules only, never runs a torch op or touches CUDA, so each child starts like a fresh
interpreter that has imported them (its own thread pool, CUDA context and random state).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
WARM_ENV = "COEA_KFP_LOCAL_WARM"  # "0" = a fresh Python per step, "1" = warm, unset = warm unless a GPU is there
NVIDIA_DEVICE = Path("/dev/nvidiactl")
EXECUTOR = "kfp.dsl.executor_main"
# what the steps import; a module that fails to import is skipped by the fork server
PRELOAD = [EXECUTOR, "pandas", "pyarrow.parquet", "torch", "transformers", "trl", "sklearn.cluster",
           "sklearn.metrics", "coea.stages.params", "coea.stages.prepare", "coea.stages.dsie", "coea.stages.sft",
           "coea.stages.pco", "coea.stages.evaluate", "coea.stages.recommend", "coea.stages.profiles",
           "coea.stages.drift", "coea.state", "coea.store",
           # monitor_drift's Evidently (coea.drift imports it lazily): 5-15 s per drift step otherwise
           "evidently", "evidently.presets", "evidently.legacy.calculations.stattests.registry"]
_POLL_S = 0.05
_context: Any = None


def _fork_server() -> Any:
    """The process's fork-server context, its server started (with :data:`PRELOAD` imported under
    ``_KFP_RUNTIME=true``, as a step imports kfp) on first use."""
    global _context
    if _context is None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        from multiprocessing import forkserver

        previous = os.environ.get("_KFP_RUNTIME")
        os.environ["_KFP_RUNTIME"] = "true"
        try:
            forkserver.ensure_running()
        finally:
            if previous is None:
                os.environ.pop("_KFP_RUNTIME", None)
            else:
                os.environ["_KFP_RUNTIME"] = previous
        _context = ctx
    return _context


_WATCH_S = 1.0  # how often a step checks that the coea process that started it still runs
_STOP_GRACE_S = 30.0  # how long an interrupted step may take to clean up before it is killed
_ORPHANED = 137  # a step's exit code when that process is gone (as if killed)


def executor_args(full_command: list[str]) -> tuple[str, list[str]] | None:
    """(component source, executor arguments) of a kfp.local lightweight-component command
    (``sh -ec SCRIPT SOURCE ARGS...`` whose script runs :data:`EXECUTOR` on ``$program_path/ephemeral_component.py``),
    or None for any other shape."""
    if len(full_command) < 4 or full_command[0] != "sh" or full_command[1] not in ("-c", "-ec"):
        return None
    script = full_command[2]
    if f"-m {EXECUTOR}" not in script or "ephemeral_component.py" not in script or "pip install" in script:
        return None
    return full_command[3], full_command[4:]


def _die_with(owner: int) -> None:
    """End this step when the ``coea`` process ``owner`` that started it is gone (``kill -9`` on ``coea run`` left
    its running step writing outputs): a daemon thread checks every :data:`_WATCH_S` seconds. (The fork server,
    this process's parent, outlives ``owner`` while any step it forked runs, so a parent-death signal would not
    fire.)"""

    def watch() -> None:
        while True:
            time.sleep(_WATCH_S)
            try:
                os.kill(owner, 0)
            except ProcessLookupError:
                os._exit(_ORPHANED)
            except PermissionError:  # a pid that now belongs to another user's process: ours is gone
                os._exit(_ORPHANED)

    threading.Thread(target=watch, name="coea-owner-watch", daemon=True).start()


def _step(module_path: str, args: list[str], env: dict[str, str], cwd: str, log_path: str, owner: int) -> None:
    """In the forked child: the step's output to ``log_path``, then the executor as ``python -m`` runs it; the
    step ends if ``owner`` (the coea process) dies."""
    _die_with(owner)
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.argv = [EXECUTOR, "--component_module_path", module_path, *args]
    from kfp.dsl import executor_main  # what ``python -m kfp.dsl.executor_main`` runs

    try:
        executor_main.executor_main()
    finally:
        atexit._run_exitfuncs()  # a multiprocessing child leaves with os._exit: run what an interpreter exit runs
        sys.stdout.flush()
        sys.stderr.flush()


def _stream(log, process: Any) -> None:
    """Print the step's output line by line (kfp.local's console stream) until it exits."""
    pending = ""
    while True:
        alive = process.is_alive()
        pending += log.read()
        *lines, pending = pending.split("\n")
        for line in lines:
            print(line)
        if not alive:
            break
        if not lines:
            time.sleep(_POLL_S)
    if pending:
        print(pending, end="")


def run_warm(full_command: list[str], env_vars: dict[str, str] | None = None) -> int | None:
    """Run a kfp.local step command in a warm child; its exit code, or None when the command has another shape."""
    parsed = executor_args(full_command)
    if parsed is None:
        return None
    source, args = parsed
    ctx = _fork_server()
    with tempfile.TemporaryDirectory(prefix="coea-step-") as tmp:
        module_path = Path(tmp) / "ephemeral_component.py"
        module_path.write_text(source, encoding="utf-8")
        log_path = Path(tmp) / "step.log"
        log_path.touch()
        env = {**os.environ, **(env_vars or {}), "_KFP_RUNTIME": "true"}
        process = ctx.Process(target=_step, args=(str(module_path), args, env, os.getcwd(), str(log_path),
                                                  os.getpid()), name="kfp-step")
        with open(log_path, encoding="utf-8", errors="replace") as log:
            process.start()
            try:
                _stream(log, process)
            except BaseException:  # Ctrl-C or SIGTERM on coea run: the step stops too, before its folder goes
                stop_step(process)
                raise
        process.join()
        print("\n")  # kfp.local's separator after a step's logs
        return process.exitcode if process.exitcode is not None else 1


def stop_step(process: Any, grace_s: float = _STOP_GRACE_S) -> None:
    """Interrupt a running step as Ctrl-C would (SIGINT: its ``finally`` blocks and context managers remove its
    temporary files), then kill it if it has not ended within ``grace_s`` seconds. Left running, an interrupted
    ``coea run``'s step went on until its owner watch ended it with ``os._exit``, leaving its temporary folders."""
    if process.is_alive():
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGINT)
        process.join(grace_s)
    if process.is_alive():
        process.kill()
        process.join()


def _ready() -> None:
    """A child that does nothing: it starts once the fork server has imported :data:`PRELOAD`."""


def start_server() -> float:
    """Start the fork server and wait until it has imported :data:`PRELOAD` (a child that does nothing has run),
    so that the first step's time is its own and not the imports'; the seconds it took."""
    start = time.perf_counter()
    process = _fork_server().Process(target=_ready, name="kfp-step-server")
    process.start()
    process.join()
    if process.exitcode != 0:  # the steps will fail the same way, each with its own log
        log.warning("kfp.local: the step server's first child ended with exit code %s", process.exitcode)
    return time.perf_counter() - start


def warm_enabled() -> bool:
    """``COEA_KFP_LOCAL_WARM`` (0 or 1) when set; else True unless the machine has an NVIDIA GPU."""
    value = os.environ.get(WARM_ENV, "").strip()
    return value != "0" if value else not NVIDIA_DEVICE.exists()


@contextlib.contextmanager
def warm_steps() -> Iterator[bool]:
    """While open, kfp.local runs each lightweight-component step with :func:`run_warm` when
    :func:`warm_enabled`; yields whether it does."""
    if not warm_enabled():
        yield False
        return
    from kfp.local import subprocess_task_handler as handler

    original = handler.run_local_subprocess

    def run(full_command: list[str], env_vars: dict[str, str] | None = None) -> int:
        code = run_warm(full_command, env_vars)
        return original(full_command=full_command, env_vars=env_vars) if code is None else code

    handler.run_local_subprocess = run
    try:
        log.info("kfp.local: starting the step server (torch, transformers, trl and Evidently imported once for "
                 "every step)")
        log.info("kfp.local: step server ready in %.1fs", start_server())
        yield True
    finally:
        handler.run_local_subprocess = original
