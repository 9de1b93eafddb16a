"""The help a new user reads: every method name and the default methods where a command takes methods, and no
type shown for a flag (it takes no value)."""

from __future__ import annotations

import re

import pytest

from coea.config import EvalConfig
from coea.evaluation.registry import METHODS
from tests.helpers import run_cli

COMMANDS = ["run", "simulate", "compile", "upload", "schedule", "evaluate", "group", "train-llms", "pco", "ablate",
            "serve", "recommend", "report", "data stats", "data synth"]


def _help(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    """``coea COMMAND --help`` as one line of words (the rich panel's borders and line breaks removed)."""
    code, out, err = run_cli([*command.split(), "--help"], capsys)
    assert code == 0, err
    return " ".join(re.sub("[│╭╮╰╯─]", " ", out).split())


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_flags_show_no_type(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(command, capsys)
    assert "--help Show this message" in text
    assert "<bool>" not in text


def test_flags_keep_their_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--dry-run print each API call (method, path, body summary)" in _help("schedule", capsys)
    assert "[env var: KF_PIPELINES_ENDPOINT]" in _help("upload", capsys)
    assert "--resume continue RUN/pco/" in _help("pco", capsys)


@pytest.mark.parametrize("command", ["evaluate", "simulate", "serve"])
def test_method_options_list_every_registered_method(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(command, capsys)
    for name in METHODS:
        assert re.search(rf"[ :]{re.escape(name)}[,;]", text), name
    assert "+x" in text


def test_evaluate_help_names_the_default_methods(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help("evaluate", capsys)
    assert "by default " + ", ".join(EvalConfig().methods) in text


@pytest.mark.parametrize("group", ["", "data"])
def test_the_command_list_wraps_each_summary_at_the_terminal_not_at_the_docstring_line_breaks(
        group: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal wide enough for any summary, each command's row holds its docstring's whole first paragraph
    on one line (Typer's rich list otherwise breaks it where the source line breaks)."""
    import inspect

    from coea.cli.common import app

    monkeypatch.setenv("COLUMNS", "1000")
    code, out, err = run_cli([*group.split(), "--help"], capsys)
    assert code == 0, err
    sub = next((g.typer_instance for g in app.registered_groups if g.name == group), app)
    rows = {line.split()[1]: " ".join(line.strip(" │").split()[1:]) for line in out.splitlines()
            if line.startswith("│ ") and len(line.split()) > 2}
    assert sub.registered_commands
    for info in sub.registered_commands:
        name = info.name or info.callback.__name__.replace("_", "-")
        summary = " ".join(inspect.cleandoc(info.callback.__doc__).split("\n\n")[0].split())
        assert rows[name] == summary, name
