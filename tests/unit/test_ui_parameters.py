"""The typed pipeline parameters (data URI, PCO rounds and alpha) merged into the JSON config parameters:
``coea.stages.params.with_ui_parameters``, the one place that does it, and ``config_from_json``, which applies it."""

from __future__ import annotations

import copy
import json

import pytest

from coea.errors import CoeaInputError
from coea.stages.params import (
    UiParameters,
    config_from_json,
    drift_config_from_json,
    parameter_sections,
    with_ui_parameters,
)

SECTIONS = {"data": {"spec": "synthetic", "window_days": 7}, "pco": {"rounds": 3, "k": 5, "dpo": {"alpha": 0.4}}}


def test_defaults_keep_every_json_value() -> None:
    assert with_ui_parameters(SECTIONS, UiParameters()) == SECTIONS


def test_set_values_replace_exactly_their_keys_and_leave_the_input_unchanged() -> None:
    before = copy.deepcopy(SECTIONS)
    out = with_ui_parameters(SECTIONS, UiParameters(data_spec="parquet:gs://b/events/", pco_rounds=6, pco_alpha=0.0))
    assert out == {"data": {"spec": "parquet:gs://b/events/", "window_days": 7},
                   "pco": {"rounds": 6, "k": 5, "dpo": {"alpha": 0.0}}}  # alpha 0 (plain DPO) is a value, not "unset"
    assert before == SECTIONS


def test_missing_sections_are_created() -> None:
    out = with_ui_parameters({}, UiParameters(data_spec="csv:/d/log.csv", pco_alpha=0.25))
    assert out == {"data": {"spec": "csv:/d/log.csv"}, "pco": {"dpo": {"alpha": 0.25}}}


def test_blank_spec_and_negative_alpha_mean_keep() -> None:
    assert with_ui_parameters(SECTIONS, UiParameters(data_spec="  ", pco_alpha=-0.5)) == SECTIONS


@pytest.mark.parametrize(("ui", "message"), [
    (UiParameters(pco_rounds=-1), "pco_rounds must be >= 0"),
    (UiParameters(pco_alpha=float("nan")), "pco_alpha must be a finite number"),
    (UiParameters(pco_alpha=float("inf")), "pco_alpha must be a finite number"),
])
def test_bad_values_are_one_line_errors(ui: UiParameters, message: str) -> None:
    with pytest.raises(CoeaInputError, match=message):
        with_ui_parameters(SECTIONS, ui)


def test_a_non_object_section_is_an_error() -> None:
    with pytest.raises(CoeaInputError, match="'pco' must be a JSON object"):
        with_ui_parameters({"pco": 3}, UiParameters(pco_rounds=2))


def test_config_from_json_runs_with_the_merged_values() -> None:
    """What a step gets: the JSON parameters with the typed ones over them, validated as a RunConfig."""
    cfg = config_from_json(json.dumps({"data": {"spec": "synthetic"}}), json.dumps({"pco": {"rounds": 3}}),
                           ui=UiParameters(data_spec="parquet:gs://b/events/", pco_rounds=4, pco_alpha=0.1))
    assert (cfg.data.spec, cfg.pco.rounds, cfg.pco.dpo.alpha) == ("parquet:gs://b/events/", 4, 0.1)
    kept = config_from_json(json.dumps({"pco": {"rounds": 3, "dpo": {"alpha": 0.6}}}), ui=UiParameters())
    assert (kept.data.spec, kept.pco.rounds, kept.pco.dpo.alpha) == ("synthetic", 3, 0.6)


@pytest.mark.parametrize(("call", "source"), [
    (lambda: config_from_json('{"split": {"n_future": 3}, "split": {"n_future": 5}}'), "pipeline parameter"),
    (lambda: config_from_json('{"pco": {"dpo": {"alpha": 0.1, "alpha": 0.6}}}'), "pipeline parameter"),
    (lambda: parameter_sections("split_config", '{"split": {"n_future": 3, "n_future": 5}}'), "parameter split_config"),
    (lambda: drift_config_from_json('{"min_users": 10, "min_users": 20}'), "parameter drift_config"),
])
def test_a_key_given_twice_in_a_json_parameter_is_refused(call, source) -> None:
    """Audit: JSON keeps the last of two equal keys without a word (a whole section for `split` twice), while the YAML
    config reader refuses it; the pipeline parameters now refuse it too, naming the parameter and the key."""
    with pytest.raises(CoeaInputError, match=r"key '(split|alpha|n_future|min_users)' is given twice in the same "
                                             r"JSON object") as err:
        call()
    assert err.value.source == source and "keep a single" in err.value.fix and "\n" not in str(err.value)
    assert config_from_json('{"split": {"n_future": 3}}', '{"pco": {"rounds": 2}}').pco.rounds == 2  # apart: fine
