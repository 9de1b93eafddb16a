"""The dsie stage trains the encoder on what a view scores: its target gap follows the split's min_gap, a novel-set
target's horizon its n_future."""

import json
from dataclasses import replace

from coea.config import SplitConfig
from tests.pipeline.pipeline_helpers import tiny_config


def test_the_encoder_target_gap_and_horizon_follow_the_split_unless_set(tmp_path):
    from coea.stages import run_dsie_group, run_prepare_data

    gap = tiny_config(split=SplitConfig(min_gap=86_400, min_history=3))
    run_prepare_data(gap, tmp_path / "data")
    run_dsie_group(gap, tmp_path / "data", tmp_path / "gap")
    saved = json.loads((tmp_path / "gap" / "encoder" / "encoder_config.json").read_text())
    assert saved["target_gap"] == 86_400 and saved["target_horizon"] == gap.split.n_future
    explicit = tiny_config(split=gap.split)
    explicit.dsie = replace(explicit.dsie, encoder=replace(explicit.dsie.encoder, target_gap=0, target="novel",
                                                               target_horizon=3))
    run_dsie_group(explicit, tmp_path / "data", tmp_path / "next")
    saved = json.loads((tmp_path / "next" / "encoder" / "encoder_config.json").read_text())
    assert (saved["target_gap"], saved["target"], saved["target_horizon"]) == (0, "novel", 3)
    assert gap.dsie.encoder.target_gap is None  # the run config itself is not changed
