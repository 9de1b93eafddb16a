"""A run folder's config.json never outlives the settings of a re-run that stopped half-way.

`coea group` and the training `coea evaluate` write config.json last; a re-run with other settings into the same
folder that stopped before its end used to leave the earlier run's config.json beside its own partial outputs, and
the next ``--run`` read those settings as the run's (sessions 55-59 left this open). An evaluation of finished models
writes its metrics and config.json together and nothing before, so a stopped one leaves the earlier one whole."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from coea.config import RunConfig, save_config
from coea.config_record import replacing_config
from coea.errors import CoeaInputError
from tests.helpers import run_cli


def test_the_same_settings_keep_the_file_and_other_settings_remove_it(tmp_path):
    path = tmp_path / "config.json"
    cfg = RunConfig()
    with replacing_config(cfg, path):  # nothing there: nothing to do
        assert not path.exists()
    save_config(cfg, path)
    with replacing_config(cfg, path):
        assert path.is_file()
    other = replace(cfg, dsie=replace(cfg.dsie, seed=cfg.dsie.seed + 1))
    with pytest.raises(KeyboardInterrupt), replacing_config(other, path):
        assert not path.exists()
        raise KeyboardInterrupt  # stopped half-way: the earlier record stays gone
    assert not path.exists()


@pytest.mark.parametrize("refusal", [CoeaInputError("no user has a history", option="--config"),
                                     OSError(28, "No space left on device")])
def test_a_refused_re_run_puts_the_earlier_config_back_byte_for_byte(tmp_path, refusal):
    path = tmp_path / "config.json"
    save_config(RunConfig(), path)
    before = path.read_bytes()
    other = replace(RunConfig(), dsie=replace(RunConfig().dsie, seed=9))
    with pytest.raises(type(refusal)), replacing_config(other, path):
        assert not path.exists()
        raise refusal
    assert path.read_bytes() == before


def test_a_damaged_config_json_counts_as_stale(tmp_path):
    path = tmp_path / "config.json"
    for damaged in (b'{"dsie": ', b"\xff\xfe\x00"):
        path.write_bytes(damaged)
        with replacing_config(RunConfig(), path):
            assert not path.exists()


def _stop_in_the_flow(monkeypatch):
    import coea.flow

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt  # the user's Ctrl-C half-way through the encoder

    monkeypatch.setattr(coea.flow, "run_flow", stopped)


def test_an_interrupted_group_re_run_with_other_settings_leaves_no_earlier_config_json(tmp_path, monkeypatch, capsys):
    """The earlier run's config.json is gone once a re-run with another seed has started; the same settings keep
    it. Then `coea train-llms --run` refuses the folder (exit 2: the DSIE step did not finish; its lineage record is
    missing) rather than training with settings nobody ran."""
    run = tmp_path / "run"
    (run / "dsie").mkdir(parents=True)
    (run / "data").mkdir()
    first = RunConfig()
    save_config(first, run / "config.json")
    same = tmp_path / "same.yaml"
    same.write_text(json.dumps(json.loads((run / "config.json").read_text())), encoding="utf-8")
    _stop_in_the_flow(monkeypatch)
    code, _, err = run_cli(["group", "--config", str(same), "--out", str(run)], capsys)
    assert code == 130, err  # coea.cli.main's exit code for Ctrl-C
    assert (run / "config.json").is_file()  # same settings: still a true record

    other = tmp_path / "other.yaml"
    other.write_text("dsie: {seed: 2}\n", encoding="utf-8")
    code, _, err = run_cli(["group", "--config", str(other), "--out", str(run)], capsys)
    assert code == 130, err
    assert not (run / "config.json").exists()

    code, _, err = run_cli(["train-llms", "--run", str(run)], capsys)
    assert code == 2 and "coea group" in err, err  # the unfinished DSIE step is refused by its lineage
    assert len(err.strip().splitlines()) == 1


def test_an_interrupted_re_evaluation_leaves_the_earlier_evaluation_whole(tmp_path, monkeypatch, tiny_synth):
    """evaluate_split writes nothing until every method is scored, then metrics.json and config.json together:
    stopped while scoring, OUT still holds the earlier figures beside the settings that made them (OUT may be the
    run folder itself, whose config.json ``--run`` reads: it must not go)."""
    from coea.data.loaders import LoadedData
    from coea.data.split import chronological_split
    from coea.data.synthetic import generate_synthetic
    from coea.evaluation import evaluate as ev

    out = tmp_path / "eval"
    out.mkdir()
    cfg = RunConfig()
    save_config(replace(cfg, dsie=replace(cfg.dsie, seed=cfg.dsie.seed + 1)), out / "config.json")
    (out / "metrics.json").write_text('{"methods": {}}', encoding="utf-8")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ev, "recommend_all", stopped)
    data = generate_synthetic(tiny_synth)
    loaded = LoadedData(interactions=data.interactions, source="synthetic")
    split = chronological_split(data.interactions, cfg.split)
    with pytest.raises(KeyboardInterrupt):
        ev.evaluate_split(cfg, out, loaded, split, ctx=None)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_an_interrupted_evaluate_that_trains_leaves_no_earlier_config_json(tmp_path, monkeypatch, capsys):
    """`coea evaluate` without --from-run trains into OUT (the flow replaces its models): an OUT/config.json of
    other settings is removed when it starts, so a Ctrl-C half-way leaves none beside the new partial models; the
    same settings keep it."""
    out = tmp_path / "run"
    out.mkdir()
    save_config(RunConfig(), out / "config.json")
    same = tmp_path / "same.yaml"
    same.write_text(json.dumps(json.loads((out / "config.json").read_text())), encoding="utf-8")
    _stop_in_the_flow(monkeypatch)
    code, _, err = run_cli(["evaluate", "--config", str(same), "--out", str(out)], capsys)
    assert code == 130, err
    assert (out / "config.json").is_file()
    other = tmp_path / "other.yaml"
    other.write_text("dsie: {seed: 2}\n", encoding="utf-8")
    code, _, err = run_cli(["evaluate", "--config", str(other), "--out", str(out)], capsys)
    assert code == 130, err
    assert not (out / "config.json").exists()
