"""The PCO state file across runs: a re-run into a folder that holds an earlier run's rounds leaves that state
readable until its own round 1 is saved (``PcoLoop._start``); a fresh folder (or a run with no rounds) gets its
round-0 state at once."""

import json
from types import SimpleNamespace

from coea.pco.checkpoint import STATE_FILE, completed_rounds, write_state
from coea.pco.config import PcoConfig
from coea.pco.loop import PcoLoop


def _loop(out_dir, windows):
    """What ``PcoLoop._start`` reads of a loop, without models or data (no evaluation: round 0's row is bare)."""
    return SimpleNamespace(out_dir=out_dir, cfg=PcoConfig(), evaluate=None, novelty=None, relevance=None,
                           windows=windows, device="cpu")


def test_a_rerun_keeps_the_earlier_rounds_as_the_state_until_its_round_1_is_saved(tmp_path):
    cfg = PcoConfig()
    old_rows = [{"round": 0}, {"round": 1, "S-H": 0.5}, {"round": 2, "S-H": 0.6}]
    write_state(tmp_path, 2, old_rows, cfg)
    before = (tmp_path / STATE_FILE).read_bytes()
    assert PcoLoop._start(_loop(tmp_path, windows=[object(), object()]), resume=False) == (0, [{"round": 0}])
    assert (tmp_path / STATE_FILE).read_bytes() == before and completed_rounds(tmp_path) == 2
    # no round to run: the state is this run's round 0 at once (an earlier run's rounds would be stale)
    PcoLoop._start(_loop(tmp_path, windows=[]), resume=False)
    assert json.loads((tmp_path / STATE_FILE).read_text())["completed_rounds"] == 0


def test_a_fresh_folder_gets_the_round_0_state_and_an_unreadable_state_counts_as_none(tmp_path):
    fresh = tmp_path / "fresh"
    PcoLoop._start(_loop(fresh, windows=[object()]), resume=False)
    assert json.loads((fresh / STATE_FILE).read_text())["rounds"] == [{"round": 0}]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / STATE_FILE).write_text("{not json")
    assert completed_rounds(broken) == 0 and completed_rounds(tmp_path / "missing") == 0
    PcoLoop._start(_loop(broken, windows=[object()]), resume=False)
    assert json.loads((broken / STATE_FILE).read_text())["completed_rounds"] == 0


def test_a_round_whose_window_has_no_user_with_history_changes_nothing_and_says_so(monkeypatch, caplog):
    """A thin log's later period can leave no user a history before the round's window: the round used to crash in
    the tokenizer (an empty batch); now it is a row with no prompts and no DPO step, the models untouched, and a
    warning that says why."""
    import logging

    from coea.llm.sft_config import LlmConfig
    from coea.pco import round as pco_round

    monkeypatch.setattr(pco_round, "refresh_novelty", lambda *args: 0)
    monkeypatch.setattr(pco_round, "round_users", lambda *args: SimpleNamespace(users=[], contexts=[], seen=[]))
    monkeypatch.setattr(pco_round, "sample_candidates", lambda *args: (_ for _ in ()).throw(AssertionError("sampled")))
    ctx = SimpleNamespace(cfg=PcoConfig(), llm=LlmConfig(), history=None, groups=None, n_short=10)
    window = SimpleNamespace(index=0, start=0, end=1)
    novelty, relevance = object(), object()  # any use of a model would fail on these
    monkeypatch.setattr(logging.getLogger("coea"), "propagate", True)  # caplog listens at the root logger
    with caplog.at_level(logging.WARNING, logger="coea"):
        row = pco_round.run_round(ctx, 1, window, novelty, relevance).as_row()
    assert (row["prompts"], row["pairs"], row["dpo_steps"], row["dpo_margin"]) == (0, 0, 0, None)
    assert "no user has a history before the round's window" in caplog.text


def test_a_saved_round_logs_its_final_model_paths_not_the_temporary_ones(tmp_path, caplog):
    """The log said "saved model bundle to r1/pco/rounds/.round_001.lca83hl9.tmp/novelty", a path gone after the
    rename: it names the round's own folder, once it is there."""
    import logging

    from coea.llm.config import ModelConfig
    from coea.llm.models import build_model_and_tokenizer
    from coea.pco.checkpoint import round_dir, save_round

    cats = ["Comedy", "Drama", "Thriller"]
    bundle = build_model_and_tokenizer(ModelConfig(hidden_size=32, intermediate_size=48), cats, ["p"], [2, 2])
    caplog.set_level(logging.INFO, logger="coea")
    final = save_round(tmp_path, 1, bundle, bundle, [{"round": 1}], PcoConfig())
    assert final == round_dir(tmp_path, 1) and (final / "novelty").is_dir()
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if ".tmp" in m], messages
    assert any(str(final / "novelty") in m and str(final / "relevance") in m for m in messages), messages


def test_a_state_saved_before_checkpoint_minutes_existed_resumes_and_a_real_change_is_still_refused(tmp_path):
    """``checkpoint_minutes`` (session 49) says how often an SFT saves, not what it trains: a PCO state written
    without it (or with another value) resumes; a change of a training setting beside it is still refused."""
    import pytest

    from coea.errors import CoeaInputError
    from coea.pco.checkpoint import read_state

    cfg = PcoConfig(rounds=2)
    write_state(tmp_path, 1, [{"round": 0}, {"round": 1}], cfg)
    path = tmp_path / STATE_FILE
    state = json.loads(path.read_text())
    for trainer in ("relevance_refresh", "novelty_refresh"):
        del state["config"][trainer]["checkpoint_minutes"]
    path.write_text(json.dumps(state))
    assert read_state(tmp_path, cfg).completed_rounds == 1
    state["config"]["relevance_refresh"]["checkpoint_minutes"] = 3.0
    path.write_text(json.dumps(state))
    assert read_state(tmp_path, cfg).completed_rounds == 1
    state["config"]["relevance_refresh"]["lr"] = 0.5
    path.write_text(json.dumps(state))
    with pytest.raises(CoeaInputError, match=r"relevance_refresh\.lr: 0\.5 ->"):
        read_state(tmp_path, cfg)
