"""The synthetic generator's injected interest shift (``SyntheticConfig.shift_period``): off by default, exact
before the shift, a lasting relabelling of categories from the shifted period on, seen by the drift check."""

from dataclasses import replace

import pandas as pd
import pytest

from coea.config import SplitConfig, SyntheticConfig
from coea.data.split import split_periods
from coea.data.synthetic import generate_synthetic
from coea.drift import DriftConfig, detect_drift
from coea.stages.drift import drift_window


@pytest.fixture(scope="module")
def logs() -> tuple[pd.DataFrame, pd.DataFrame, SyntheticConfig]:
    """The same small config without and with a shift from period 2 of 4."""
    base = SyntheticConfig(seed=3, n_users=250, n_categories=12, n_groups=4, items_per_category=8,
                           mean_interactions=40, min_interactions=25, explore_rate=0.05)
    shifted = replace(base, shift_period=2, shift_periods=4)
    return generate_synthetic(base).interactions, generate_synthetic(shifted).interactions, shifted


def _events(df: pd.DataFrame) -> pd.DataFrame:
    return df[["user_id", "timestamp"]]


def test_shift_off_by_default_and_validated() -> None:
    assert SyntheticConfig().shift_period is None
    with pytest.raises(ValueError, match=r"shift_period must be in 1 \.\. shift_periods - 1 = 3"):
        SyntheticConfig(shift_period=4, shift_periods=4)
    with pytest.raises(ValueError, match="shift_period must be in"):
        SyntheticConfig(shift_period=0)
    with pytest.raises(ValueError, match="shift_strength must be in"):
        SyntheticConfig(shift_period=1, shift_strength=0.0)


def test_only_the_shifted_periods_change(logs) -> None:
    base, shifted, cfg = logs
    pd.testing.assert_frame_equal(_events(base), _events(shifted))  # same users and times: only tastes move
    before, after = split_periods(base, cfg.shift_periods), split_periods(shifted, cfg.shift_periods)
    assert [p.start for p in before] == [p.start for p in after]
    for b, a in zip(before, after, strict=True):
        dist_b = b.interactions["category"].value_counts(normalize=True)
        dist_a = a.interactions["category"].value_counts(normalize=True).reindex(dist_b.index, fill_value=0.0)
        if b.index < cfg.shift_period:
            pd.testing.assert_frame_equal(b.interactions, a.interactions)
        else:  # every event moved to another category, so the period's category distribution is another one
            assert (b.interactions["category"] != a.interactions["category"]).all()
            assert (dist_b - dist_a).abs().sum() > 0.5, b.index
    # one fixed relabelling (a bijection), and an item follows its category: every item keeps one category
    moved = base.index[base["timestamp"] >= after[cfg.shift_period].start]
    pairs = pd.DataFrame({"old": base.loc[moved, "category"], "new": shifted.loc[moved, "category"]})
    mapping = pairs.drop_duplicates()
    assert mapping["old"].is_unique and mapping["new"].is_unique
    assert shifted.groupby("item_id")["category"].nunique().max() == 1


def test_strength_shifts_that_share_of_users(logs) -> None:
    base, shifted, cfg = logs
    start = split_periods(base, cfg.shift_periods)[cfg.shift_period].start
    active = base.loc[base["timestamp"] >= start, "user_id"].nunique()  # users with events to shift
    every = (base["category"] != shifted["category"]).groupby(base["user_id"]).any()
    half = generate_synthetic(replace(cfg, shift_strength=0.5)).interactions
    some = (base["category"] != half["category"]).groupby(base["user_id"]).any()
    assert every.sum() == active
    assert some.sum() <= cfg.n_users // 2 and abs(some.sum() / active - 0.5) < 0.15
    assert not (some & ~every).any()


def test_drift_check_fires_on_the_shift_only(logs) -> None:
    """Period 1 -> 2 drifts with the shift and not without it; 2 -> 3 (both after the shift) does not."""
    base, shifted, cfg = logs
    drift = DriftConfig()
    for df, fires in ((base, False), (shifted, True)):
        ps = split_periods(df, cfg.shift_periods)
        result = detect_drift(drift, ps[1].interactions, ps[2].interactions)
        assert result.drifted is fires, result.drift_share
    ps = split_periods(shifted, cfg.shift_periods)
    steady = detect_drift(drift, ps[2].interactions, ps[3].interactions)
    assert not steady.drifted, steady.drift_share  # the shift lasts: after it, the new tastes are the norm


def test_the_pipelines_comparisons_fire_at_the_shift_only(logs) -> None:
    """What coea_recurring compares: its reference stays period 0 until a regroup, so p0 -> p1 and p0 -> p2, each
    window the histories under the run's split (coea.stages.drift.drift_window; here test_simulate's split).
    p0 -> p1 does not fire; p0 -> p2 fires with the shift and not without. Measured drift shares without / with
    the shift: p0 -> p1 0.083 / 0.083, p0 -> p2 0.167 / 0.667 (and p0 -> p3 0.500 / 0.917: without a regroup the
    reference ages, the users' steady exploration drifts too). With the default split (n_future 10) these
    ~10-event periods leave 3-4 history events per user and p0 -> p2 reads only 0.417: a short period needs a
    split that leaves it a history."""
    base, shifted, cfg = logs
    split = SplitConfig(n_future=3, min_history=3)
    for df, fires in ((base, False), (shifted, True)):
        periods = [drift_window(p.interactions, split) for p in split_periods(df, cfg.shift_periods)]
        before = detect_drift(DriftConfig(), periods[0], periods[1])
        assert not before.drifted, before.drift_share
        at = detect_drift(DriftConfig(), periods[0], periods[2])
        assert at.drifted is fires, at.drift_share
