"""README "Run on Kubeflow": every command of its shell block matches the code. Each `coea` command names only
options the CLI has and runs (as a --dry-run, placeholders filled in) with exit code 0; every k8s/ path exists;
every `make` target is in the Makefile."""

from __future__ import annotations

import re
import shlex

import pytest
import typer

from coea.cli import app
from tests.helpers import REPO, run_cli

FILLED = {"REGISTRY/coea@sha256:GPU_DIGEST": "reg.example.com/coea@sha256:" + "b" * 64,
          "REGISTRY/coea@sha256:DIGEST": "reg.example.com/coea@sha256:" + "a" * 64,
          "REPLACE_ME-coea-bucket": "coea-bucket"}


def _commands() -> list[list[str]]:
    """The shell block under "## Run on Kubeflow": one token list per command (continuations joined, comments
    dropped)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Run on Kubeflow"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1).replace("\\\n", " ")
    return [shlex.split(line, comments=True) for line in block.splitlines() if shlex.split(line, comments=True)]


COMMANDS = _commands()
COEA = [c for c in COMMANDS if c[0] == "coea"]


def test_the_block_has_the_steps() -> None:
    assert [c[1] for c in COEA] == ["upload", "schedule"]
    assert {c[0] for c in COMMANDS} >= {"git", "make", "kubectl", "export", "coea"}


@pytest.mark.parametrize("argv", COEA, ids=lambda c: c[1])
def test_coea_options_exist(argv: list[str]) -> None:
    command = typer.main.get_command(app).commands[argv[1]]
    known = {opt for param in command.params for opt in param.opts}
    assert {a for a in argv if a.startswith("--")} <= known


@pytest.mark.parametrize("argv", COEA, ids=lambda c: c[1])
def test_coea_commands_run_as_dry_runs(argv: list[str], tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("KF_PIPELINES_ENDPOINT", raising=False)
    args = [FILLED.get(a, a).replace("REPLACE_ME-coea-bucket", "coea-bucket") for a in argv[1:]]
    args = [a for a in args if a != "--dry-run"] + ["--dry-run", "--out", str(tmp_path)]
    monkeypatch.chdir(REPO)
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    assert "POST   /apis/v2beta1/pipelines/upload_version" in out


def test_paths_and_make_targets_exist() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    for argv in COMMANDS:
        for token in argv:
            if token.startswith("k8s/"):
                assert (REPO / token).exists(), token
        if argv[0] == "make":
            assert re.search(rf"^{argv[1]}:", makefile, re.M), argv
