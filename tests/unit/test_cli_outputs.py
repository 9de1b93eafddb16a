"""coea.cli.outputs: where a command writes and how its summary names the CLI. The lookup hint of `coea run`'s
summary always said `.venv/bin/coea`, which exists only with the repository as the working directory; an empty or
root --out was written into (both before session 52)."""

import shutil
import sys
from pathlib import Path

from coea.cli.outputs import coea_command


def test_the_hint_is_plain_coea_when_that_is_the_one_on_path(monkeypatch, tmp_path):
    exe = tmp_path / "bin" / "coea"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    monkeypatch.setattr(sys, "argv", [str(exe)])
    monkeypatch.setattr(shutil, "which", lambda name: str(exe) if name == "coea" else None)
    assert coea_command() == "coea"


def test_the_hint_is_the_started_path_when_another_or_no_coea_is_on_path(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "argv", ["/opt/project/.venv/bin/coea"])
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert coea_command() == "/opt/project/.venv/bin/coea"
    other = tmp_path / "coea"
    other.write_text("")
    monkeypatch.setattr(sys, "argv", [".venv/bin/coea"])
    monkeypatch.setattr(shutil, "which", lambda name: str(other))
    assert coea_command() == str(Path(".venv/bin/coea"))


def test_the_hint_is_coea_when_the_cli_runs_in_process(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["pytest"])
    assert coea_command() == "coea"


def test_a_command_writing_straight_into_out_refuses_the_current_folder_and_the_root(tmp_path, monkeypatch):
    """Session 52: `--out ""` (an unset shell variable) wrote data/, metrics.* and eval_report.html into the current
    folder, and `--out /` into the filesystem root, exit 0. A folder of its own, new or not, is fine."""
    import pytest

    from coea.cli.outputs import check_writable_dir
    from coea.errors import CoeaInputError

    monkeypatch.chdir(tmp_path)
    for out, what in ((Path(""), "the current folder"), (Path("."), "the current folder"), (Path("/"), "the root")):
        with pytest.raises(CoeaInputError, match=f"is {what.replace('the root', 'the filesystem root')}"):
            check_writable_dir(out, own=True)
        check_writable_dir(out if out != Path("/") else tmp_path)  # a parent folder (--runs-dir) may be shared
    check_writable_dir(Path("out"), own=True)
    check_writable_dir(tmp_path, own=True)


def test_evaluate_with_an_empty_out_writes_nothing(tmp_path, monkeypatch, capsys):
    from tests.helpers import run_cli

    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(["evaluate", "--data", "synthetic", "--methods", "pop", "--out", ""], capsys)
    assert code == 2 and "option --out: is the current folder" in err and list(tmp_path.iterdir()) == []
