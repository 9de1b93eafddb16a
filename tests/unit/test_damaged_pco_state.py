"""A damaged PCO resume state (coea.pco.checkpoint): pco_state.json that is valid JSON but not what write_state
writes, a round it marks complete whose checkpoint is missing, a truncated rng.pt. Before: TypeError and torch
RuntimeError tracebacks; ``completed_rounds: "2"`` beside rows 0..3 resumed at round 3 and wrote it twice; a
missing round said "fix: pass a directory written by save_bundle" (audit 9)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coea.errors import CoeaInputError
from coea.pco.checkpoint import (
    STATE_FILE,
    check_round,
    last_complete_round,
    load_round,
    read_state,
    round_dir,
    save_round,
    write_state,
)
from coea.pco.config import PcoConfig

RESUME_FIX = "(fix: re-run `coea pco` without --resume to write the rounds again)"
ROWS = [{"round": 0}, {"round": 1, "S-H": 0.5}, {"round": 2}, {"round": 3}]


def _state(out_dir: Path, **changes: object) -> Path:
    write_state(out_dir, 3, ROWS, PcoConfig())
    path = out_dir / STATE_FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    return path


BAD_STATES = {
    "a-list": ([], "a JSON list, not an object with completed_rounds, rounds and config"),
    "rounds-as-text": ({"completed_rounds": "2"}, "completed_rounds is '2', not an integer >= 0"),
    "rounds-as-bool": ({"completed_rounds": True}, "completed_rounds is True, not an integer >= 0"),
    "negative": ({"completed_rounds": -1}, "completed_rounds is -1, not an integer >= 0"),
    "rows-beyond": ({"completed_rounds": 2}, "rounds holds the rows of rounds [0, 1, 2, 3], but completed_rounds 2 "
                                             "needs rounds 0..2 in order"),
    "rows-short": ({"rounds": ROWS[:2]}, "rounds holds the rows of rounds [0, 1], but completed_rounds 3"),
    "rows-not-objects": ({"rounds": [0, 1, 2, 3]}, "rounds is not a list of metrics rows (objects)"),
    "config-not-object": ({"config": []}, "config is not an object"),
}


@pytest.mark.parametrize(("changes", "problem"), BAD_STATES.values(), ids=BAD_STATES.keys())
def test_a_state_write_state_never_writes_is_one_error_naming_it_and_the_step(tmp_path, changes, problem):
    path = _state(tmp_path) if isinstance(changes, dict) else tmp_path / STATE_FILE
    if isinstance(changes, dict):
        _state(tmp_path, **changes)
    else:
        path.write_text(json.dumps(changes))
    with pytest.raises(CoeaInputError) as err:
        read_state(tmp_path, PcoConfig())
    assert str(err.value).startswith(f"{path}: not a PCO state: {problem}"), str(err.value)
    assert str(err.value).endswith(RESUME_FIX)
    with pytest.raises(CoeaInputError, match=r"not a PCO state: .*\(fix: re-run `coea pco` to write the rounds"):
        last_complete_round(tmp_path)  # what serve/export read after PCO


def test_an_intact_state_reads_back(tmp_path):
    _state(tmp_path)
    state = read_state(tmp_path, PcoConfig())
    assert (state.completed_rounds, state.rounds) == (3, ROWS)


def test_a_round_marked_complete_without_its_checkpoint_names_it_and_the_resume_fix(tmp_path):
    _state(tmp_path)
    (round_dir(tmp_path, 3) / "novelty").mkdir(parents=True)
    for check in (lambda: check_round(tmp_path, 3), lambda: load_round(tmp_path, 3, "cpu")):
        with pytest.raises(CoeaInputError) as err:
            check()
        assert str(err.value) == (f"{round_dir(tmp_path, 3)}: {STATE_FILE} marks round 3 complete but its checkpoint "
                                  f"lacks relevance, rng.pt {RESUME_FIX}")
    with pytest.raises(CoeaInputError, match=r"round_003: pco_state.json marks round 3 complete but its checkpoint "
                                             r"lacks relevance \(fix: re-run `coea pco` to write"):
        last_complete_round(tmp_path)


@pytest.fixture
def saved_round(tmp_path) -> Path:
    from coea.llm.config import ModelConfig
    from coea.llm.models import build_model_and_tokenizer

    bundle = build_model_and_tokenizer(ModelConfig(hidden_size=32, intermediate_size=48), ["a", "b"], ["p"], [2])
    return save_round(tmp_path, 1, bundle, bundle, [{"round": 0}, {"round": 1}], PcoConfig())


def test_a_truncated_rng_checkpoint_is_one_error_naming_it(tmp_path, saved_round):
    rng = saved_round / "rng.pt"
    rng.write_bytes(rng.read_bytes()[:50])
    with pytest.raises(CoeaInputError) as err:
        load_round(tmp_path, 1, "cpu")
    assert str(err.value).startswith(f"{rng}: cannot be read (RuntimeError: ") and str(err.value).endswith(RESUME_FIX)


def test_a_model_of_the_round_that_is_no_bundle_says_re_run_pco_not_save_bundle(tmp_path, saved_round):
    from coea.llm.models import META_FILE

    (saved_round / "relevance" / META_FILE).unlink()
    with pytest.raises(CoeaInputError) as err:
        load_round(tmp_path, 1, "cpu")
    assert str(err.value).startswith(f"{saved_round / 'relevance'}: not a model bundle")
    assert str(err.value).endswith(RESUME_FIX) and "save_bundle" not in str(err.value)


def test_rng_states_of_the_wrong_shape_are_named(tmp_path, saved_round):
    import torch

    torch.save({"python": 1}, saved_round / "rng.pt")
    with pytest.raises(CoeaInputError, match=r"rng.pt: cannot be read \(ValueError: not the RNG states save_round"):
        load_round(tmp_path, 1, "cpu")
