"""DriftConfig.stattest is checked against the drift methods of the installed Evidently when the config is built,
not when the drift step runs."""

from __future__ import annotations

import pytest

from coea.drift import TWO_SAMPLE_CHI2, DriftConfig, stattest_names
from coea.errors import CoeaInputError
from coea.stages import drift_config_from_json


def test_names_come_from_evidentlys_registry() -> None:
    from evidently.legacy.calculations.stattests.registry import _registered_stat_tests

    names = stattest_names()
    assert {"ks", "psi", "wasserstein", "jensenshannon", TWO_SAMPLE_CHI2} <= set(names)
    assert set(names) - {TWO_SAMPLE_CHI2} <= set(_registered_stat_tests)
    assert "perc_text_content_drift" not in names  # text-only: fits no behaviour feature


@pytest.mark.parametrize("name", ["ks", "psi", "TVD", TWO_SAMPLE_CHI2])
def test_known_stattests_are_taken(name: str) -> None:
    assert DriftConfig(stattest=name).stattest == name


@pytest.mark.parametrize("name", ["kss", "KS", "perc_text_content_drift", "chi2"])
def test_unknown_stattest_names_the_key_and_the_valid_names(name: str) -> None:
    with pytest.raises(ValueError, match=f"stattest '{name}' is not a drift method") as info:
        DriftConfig(stattest=name)
    assert "ks, " in str(info.value) and "psi" in str(info.value)


def test_drift_config_parameter_with_an_unknown_stattest_is_one_line() -> None:
    with pytest.raises(CoeaInputError) as info:
        drift_config_from_json('{"stattest": "kss"}')
    text = str(info.value)
    assert "drift_config" in text and "stattest 'kss'" in text and "wasserstein" in text
    assert len(text.splitlines()) == 1


def test_a_stattest_threshold_needs_a_stattest() -> None:
    """Without ``stattest`` every column keeps Evidently's default test: K-S p-values up to 1000 users, normalised
    Wasserstein distances above, so one threshold meant opposite things by the window's size (audit, session 56:
    0.01 was a strict p-value at 100 users and flagged every column at 1500). Refused, in one line naming it."""
    with pytest.raises(CoeaInputError) as info:
        drift_config_from_json('{"stattest_threshold": 0.01}')
    text = str(info.value)
    assert "drift_config" in text and "stattest_threshold 0.01 needs stattest" in text and '"stattest": "ks"' in text
    assert len(text.splitlines()) == 1
    assert drift_config_from_json('{"stattest": "ks", "stattest_threshold": 0.01}').stattest_threshold == 0.01
