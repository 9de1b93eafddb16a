"""The seed-aware comparison script's arm syntax (benchmarks/analysis_seeds.py); its interval is
``coea.evaluation.bootstrap.seed_bootstrap_ci`` (tests/unit/test_bootstrap.py)."""

import argparse
from pathlib import Path

import pytest

from benchmarks.analysis_seeds import parse_arm


def test_arm_names_a_method_its_trainings_and_optionally_its_own_config():
    assert parse_arm("full=nllm_sft+x@/r/a,/r/b") == ("full", "nllm_sft+x", [Path("/r/a"), Path("/r/b")], None)
    assert parse_arm("no CSID=coea+x@/r/c@/cfg/nc.yaml") == ("no CSID", "coea+x", [Path("/r/c")],
                                                              Path("/cfg/nc.yaml"))
    for bad in ("full", "full=nllm_sft+x", "=m@/r", "full=@/r", "full=m@"):
        with pytest.raises(argparse.ArgumentTypeError, match="NAME=METHOD@RUN"):
            parse_arm(bad)


def test_paired_trainings_need_as_many_runs_in_every_arm(capsys):
    """Checked before any run is read: a paired arm with fewer trainings than the reference exits 2, naming the
    count."""
    from benchmarks.analysis_seeds import main

    with pytest.raises(SystemExit) as exc:
        main(["--arm", "sft=nllm_sft+x@/r/a,/r/b", "--arm", "coea=coea+x@/r/a", "--paired-trainings"])
    assert exc.value.code == 2
    assert "as many runs as the reference arm (2)" in capsys.readouterr().err
