"""The commands `coea run`'s summary suggests name the CLI the way the user can call it again. Before session 52 the
lookup hint always said `.venv/bin/coea`, which exists only with the repository as the working directory."""

import shutil
import sys
from pathlib import Path

from coea.cli.common import coea_command


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
