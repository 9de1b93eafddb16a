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
