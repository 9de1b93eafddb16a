"""The dsie stage trains the encoder on what a view scores: its target gap follows the split's min_gap, so does the
choice of a novel-set target (with an output bias; a next-event and novel-set pair without a gap), and that
target's horizon follows its n_future."""

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
    assert saved["target"] == "novel" and saved["output_bias"]  # a min_gap view's encoder learns novel sets
    explicit = tiny_config(split=gap.split)
    explicit.dsie = replace(explicit.dsie, encoder=replace(explicit.dsie.encoder, target_gap=0, target="novel",
                                                               target_horizon=3, output_bias=False))
    run_dsie_group(explicit, tmp_path / "data", tmp_path / "next")
    saved = json.loads((tmp_path / "next" / "encoder" / "encoder_config.json").read_text())
    fields = ("target_gap", "target", "target_horizon", "output_bias")
    assert [saved[f] for f in fields] == [0, "novel", 3, False]
    assert gap.dsie.encoder.target_gap is None  # the run config itself is not changed


def test_resolve_encoder_gives_the_default_view_a_next_event_and_novel_set_pair():
    from coea.dsie.config import EncoderConfig
    from coea.stages.dsie import resolve_encoder

    plain = resolve_encoder(EncoderConfig(), SplitConfig())
    assert (plain.target, plain.target_gap, plain.output_bias, plain.target_horizon) == ("both", 0, True, 10)
    gap = resolve_encoder(EncoderConfig(), SplitConfig(min_gap=3600, n_future=5))
    assert (gap.target, gap.target_gap, gap.output_bias, gap.target_horizon) == ("novel", 3600, True, 5)
    mixed = resolve_encoder(EncoderConfig(target="next", output_bias=True), SplitConfig(min_gap=3600))
    assert (mixed.target, mixed.output_bias) == ("next", True)  # explicit values win


def test_resolve_encoder_gives_the_pairs_novel_set_encoder_its_bias():
    from coea.dsie.config import EncoderConfig
    from coea.stages.dsie import resolve_encoder

    both = resolve_encoder(EncoderConfig(target="both"), SplitConfig())
    assert (both.target, both.output_bias) == ("both", True)
    assert [p.with_bias for p in both.parts()] == [False, True]
    assert [p.with_bias for p in replace(both, output_bias=False).parts()] == [False, False]
    gap = resolve_encoder(EncoderConfig(target="both"), SplitConfig(min_gap=3600, n_future=4)).parts()
    assert [(p.target, p.target_gap, p.target_horizon) for p in gap] == [("next", 3600, 4), ("novel", 3600, 4)]


def test_the_default_view_writes_a_pair_that_loads_and_ranks(tmp_path):
    from coea.dsie.artifact import load_dsie
    from coea.dsie.encoder import SasRecPair
    from coea.stages import run_dsie_group, run_prepare_data

    cfg = tiny_config()
    run_prepare_data(cfg, tmp_path / "data")
    run_dsie_group(cfg, tmp_path / "data", tmp_path / "dsie")
    saved = json.loads((tmp_path / "dsie" / "encoder" / "encoder_config.json").read_text())
    assert (saved["target"], saved["target_gap"], saved["output_bias"]) == ("both", 0, True)
    enc = load_dsie(tmp_path / "dsie").encoder
    assert isinstance(enc.model, SasRecPair) and [p.bias is not None for p in enc.model.parts] == [False, True]
