"""SIGTERM (a preempted or timed-out pod) and Ctrl-C (SIGINT) in the middle of a command: the temporary files and
folders it had made (the staging folders beside --out's data/ and dsie/) are removed, nothing of ours is left in
TMPDIR, stderr ends with one line (no traceback) and the exit code is 128 + the signal's number. What an SFT
interrupted there keeps is its resumable checkpoint folder (``out/llm/sft_checkpoints/``; coea.llm.sft), which a
re-run resumes from."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.integration.test_llm_cli import CONFIG


def interrupt(tmp_path: Path, sig: signal.Signals, trigger: str, made: str) -> subprocess.CompletedProcess:
    """``coea evaluate`` on tiny synthetic data, sent ``sig`` once its stderr shows ``trigger`` (asserting then that
    the temporary path ``made``, a glob under tmp_path, exists: the signal came while it was in use)."""
    (tmp_path / "tmp").mkdir()
    (tmp_path / "c.yaml").write_text(CONFIG)
    env = {**os.environ, "COEA_TORCH_THREADS": "1", "TMPDIR": str(tmp_path / "tmp")}
    argv = [sys.executable, "-m", "coea.cli", "evaluate", "--config", str(tmp_path / "c.yaml"),
            "--out", str(tmp_path / "out")]
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if trigger in line:
            assert list(tmp_path.glob(made)), f"{made} not there when {trigger!r} was logged"
            proc.send_signal(sig)
            break
    _, rest = proc.communicate(timeout=120)
    assert any(trigger in line for line in seen), "".join(seen[-20:])
    return subprocess.CompletedProcess(argv, proc.returncode, "", "".join(seen) + rest)


@pytest.mark.parametrize(("sig", "trigger", "made"), [
    (signal.SIGTERM, "novelty sft step 2/", "out/llm/sft_checkpoints/novelty/fingerprint.txt"),  # in the trainer
    (signal.SIGINT, "encoder epoch 1", "out/.data.*.tmp"),  # while data/ and dsie/ are staged beside them
], ids=["SIGTERM", "SIGINT"])
def test_an_interrupted_command_leaves_no_temporary_files(tmp_path, sig, trigger, made):
    res = interrupt(tmp_path, sig, trigger, made)
    assert res.returncode == 128 + sig, res.stderr[-2000:]
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert lines[-1] == f"interrupted: {sig.name}; re-run the command", lines[-5:]  # (--resume: coea pco only)
    assert "Traceback" not in res.stderr
    assert not list((tmp_path / "tmp").glob("coea-*"))  # (torch keeps its compile cache there: not ours)
    left = [p.name for p in (tmp_path / "out").rglob("*") if p.name.endswith((".tmp", ".old"))]
    assert not left
