"""``coea --version`` prints the installed package's version and exits 0; the commands still run after the
top-level callback that provides it."""

from __future__ import annotations

import coea
from tests.helpers import coea as run_coea


def test_version_prints_the_package_version():
    res = run_coea("--version")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"coea {coea.__version__}"


def test_commands_and_help_still_work_with_the_version_option():
    res = run_coea("--help")
    assert res.returncode == 0 and "--version" in res.stdout and "evaluate" in res.stdout
    assert run_coea("evaluate", "--help").returncode == 0
