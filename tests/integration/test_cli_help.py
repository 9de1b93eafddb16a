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
