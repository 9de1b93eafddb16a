"""Config dataclasses: validation and YAML round-trip."""

import json

import pytest

from coea.config import EvalConfig, RunConfig, SplitConfig, SyntheticConfig, load_run_config, save_config


def test_post_init_rejects_bad_values():
    with pytest.raises(ValueError, match="n_future must be > 0, got 0"):
        SplitConfig(n_future=0)
    with pytest.raises(ValueError, match="explore_rate"):
        SyntheticConfig(explore_rate=1.5)
    with pytest.raises(ValueError, match="ks must be positive"):
        EvalConfig(ks=[0])


def test_yaml_sections_and_unknown_keys(tmp_path):
    good = tmp_path / "c.yaml"
    good.write_text("split:\n  n_future: 3\neval:\n  methods: [pop, markov]\n  ks: [10, 5]\n")
    cfg = load_run_config(good)
    assert cfg.split.n_future == 3 and cfg.eval.ks == [5, 10] and cfg.data.spec == "synthetic"
    bad = tmp_path / "b.yaml"
    bad.write_text("split:\n  n_futur: 3\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['n_futur'\]"):
        load_run_config(bad)
    bad.write_text("splitt: {}\n")
    with pytest.raises(ValueError, match="unknown section"):
        load_run_config(bad)


def test_save_config_is_json(tmp_path):
    save_config(RunConfig(), tmp_path / "config.json")
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["data"]["category_level"] == "full" and saved["split"]["n_short"] == 10


def test_eval_config_paired_ci_options():
    from coea.config import EvalConfig

    cfg = EvalConfig(methods=["pop", "markov+x"], reference="markov+x", bootstrap=500, ci_level=0.9)
    assert (cfg.reference, cfg.bootstrap, cfg.ci_level) == ("markov+x", 500, 0.9)
    assert EvalConfig().reference is None and EvalConfig().bootstrap == 2000 and EvalConfig().ci_level == 0.95
    with pytest.raises(ValueError, match="reference 'pop_novel' is not among the methods"):
        EvalConfig(methods=["pop"], reference="pop_novel")
    with pytest.raises(ValueError, match="bootstrap must be a positive number"):
        EvalConfig(bootstrap=0)
    with pytest.raises(ValueError, match="ci_level must be in"):
        EvalConfig(ci_level=1.0)
