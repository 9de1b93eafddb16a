"""Every benchmark script answers ``--help`` without running: five had no command line at all, so ``--help``
ran the benchmark and overwrote its .bench/ JSON."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if 'if __name__ == "__main__":' in p.read_text(encoding="utf-8"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_script_parses_its_command_line(script: Path) -> None:
    """A static check (importing all of them would take a minute): argparse, ``no_options`` or ``bench_options``
    (the MovieLens benchmarks with a ``--small`` mode)."""
    text = script.read_text(encoding="utf-8")
    assert "argparse" in text or "no_options(__doc__)" in text or "bench_options(__doc__)" in text


def test_help_prints_usage_and_runs_nothing(tmp_path: Path) -> None:
    """One of the five, for real: --help exits 0 with its usage and writes nothing."""
    res = subprocess.run([sys.executable, str(BENCH / "bench_foundation.py"), "--help"], capture_output=True,
                         text=True, cwd=tmp_path, timeout=120)
    assert res.returncode == 0 and res.stdout.startswith("usage: bench_foundation.py [-h]"), res.stderr
    assert "wall time and peak memory" in res.stdout


@pytest.mark.parametrize(("script", "argv", "message"), [
    ("bench_train", ["--steps", "4"], "--steps must be at least 5"),
    ("bench_trainer_overhead", ["--calls", "1"], "--calls must be at least 2")])
def test_too_few_timed_steps_are_refused_before_anything_runs(script: str, argv: list[str], message: str,
                                                              capsys) -> None:
    """Before: a ZeroDivisionError after the data was read (bench_train --steps 3), a median of no times."""
    import importlib

    module = importlib.import_module(f"benchmarks.{script}")
    with pytest.raises(SystemExit) as exc:
        module.main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err
