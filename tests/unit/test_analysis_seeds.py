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
