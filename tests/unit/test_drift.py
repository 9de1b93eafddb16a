"""Drift features (hand-checked) and the Evidently-backed regrouping decision (calibrated on synthetic logs)."""

from __future__ import annotations

import itertools
import json
import logging
import math
import warnings
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from coea.config import SyntheticConfig
from coea.data.split import split_periods
from coea.data.synthetic import generate_synthetic
from coea.drift import (
    GROUP,
    OTHER_SHARE,
    SHARE_PREFIX,
    DriftConfig,
    chi2_two_sample,
    detect_drift,
    popular_categories,
    user_behaviour_features,
)
from coea.errors import CoeaInputError
from tests.helpers import events

N_LOGS = 8  # independent synthetic logs; each gives one user-halves null and two consecutive-period nulls


def _tiny() -> pd.DataFrame:
    rows = [  # deliberately out of time order; user c has a timestamp tie broken by item id
        ("a", "i1", "A", 1), ("a", "i2", "B", 2), ("a", "i3", "A", 3), ("a", "i4", "B", 4),
        ("b", "i5", "D", 40), ("b", "i1", "A", 10), ("b", "i6", "A", 20), ("b", "i7", "C", 30),
        ("c", "i1", "A", 1), ("c", "i2", "B", 2), ("c", "i8", "C", 3), ("c", "i3", "A", 4), ("c", "i9", "D", 4),
        ("d", "i1", "A", 7),
    ]
    return events(rows)


def test_features_hand_checked():
    feats = user_behaviour_features(_tiny(), reference_categories=["A", "A", "B", "C"], n_top=2,
                                    user_groups={"a": "g1", "b": "g2"})
    assert list(feats.index) == ["a", "b", "c", "d"]
    assert feats["activity"].tolist() == [4, 4, 5, 1]
    assert feats["breadth"].tolist() == [2, 3, 4, 1]
    assert feats["entropy"].tolist() == pytest.approx(
        [math.log(2), 1.5 * math.log(2), -(0.4 * math.log(0.4) + 3 * 0.2 * math.log(0.2)), 0.0])
    assert feats["top_share"].tolist() == pytest.approx([0.5, 0.5, 0.4, 1.0])
    # earlier part = first ceil(n/2) events; a: AB|AB, b: AA|CD, c: ABC|AD (A@4 before D@4 by item id), d: A|
    assert feats["novelty"].tolist() == pytest.approx([0.0, 1.0, 0.5, 0.0])
    # reference popularity pi: A 0.5, B 0.25, C 0.25, D 0; top-2 = A, then B (tie with C broken by name)
    assert feats["ref_popularity"].tolist() == pytest.approx([0.375, 0.3125, 0.4 * 0.5 + 0.2 * 0.25 + 0.2 * 0.25, 0.5])
    assert feats[f"{SHARE_PREFIX}A"].tolist() == pytest.approx([0.5, 0.5, 0.4, 1.0])
    assert feats[f"{SHARE_PREFIX}B"].tolist() == pytest.approx([0.5, 0.0, 0.2, 0.0])
    assert feats[OTHER_SHARE].tolist() == pytest.approx([0.0, 0.5, 0.4, 0.0])
    assert feats[GROUP].tolist() == ["g1", "g2", None, None]  # no group: missing, not a category of its own


def test_novelty_against_prior_history():
    prior = events([("a", "i1", "A", 0), ("b", "i1", "A", 0), ("b", "i7", "C", 0)])
    feats = user_behaviour_features(_tiny(), prior=prior, top_categories=[])
    # a: B twice of 4 events new; b: only D new; c, d: no prior history, every event is new
    assert feats["novelty"].tolist() == pytest.approx([0.5, 0.25, 1.0, 1.0])
    assert [c for c in feats.columns if c.startswith(SHARE_PREFIX) or c == OTHER_SHARE] == []


def test_popular_categories_breaks_ties_by_name():
    assert popular_categories(["z", "b", "a", "b", "z", "c"], 3) == ["b", "z", "a"]


def test_chi2_two_sample_hand_value():
    ref = pd.Series(["x"] * 30 + ["y"] * 10)
    cur = pd.Series(["x"] * 10 + ["y"] * 30)
    # expected 20 in every cell: X^2 = 4 * 10^2 / 20 = 20 on 1 degree of freedom
    from scipy.stats import chi2

    assert chi2_two_sample(ref, cur) == pytest.approx(chi2.sf(20.0, 1))
    assert chi2_two_sample(ref, ref) == pytest.approx(1.0)
    assert chi2_two_sample(pd.Series(["x", "x"]), pd.Series(["x"])) == 1.0


@pytest.mark.parametrize("kwargs, bad", [
    ({"threshold": 0.0}, "threshold"), ({"threshold": 1.5}, "1.5"), ({"min_users": 1}, "min_users"),
    ({"top_categories": -1}, "-1"), ({"stattest_threshold": 0.0}, "stattest_threshold"), ({"stattest": ""}, "''"),
    ({"stattest_threshold": 0.01}, "stattest_threshold 0.01 needs stattest"),
])
def test_config_rejects_bad_values(kwargs, bad):
    with pytest.raises(ValueError, match=bad):
        DriftConfig(**kwargs)


def test_min_users_error_names_the_count():
    """An input error (one line: the setting, the count, the fix), not a plain ValueError: the same period fails
    the same way on every retry of the drift step."""
    tiny = _tiny()
    with pytest.raises(CoeaInputError) as err:
        detect_drift(DriftConfig(min_users=5), pd.concat([tiny, tiny.assign(user_id="x" + tiny.user_id)]), tiny)
    assert str(err.value).startswith("drift config, option min_users: the current window has 4 users, fewer than "
                                     "min_users=5 (fix: lower min_users, or give the period more data")
    assert len(str(err.value).splitlines()) == 1


# ---- Evidently runs on synthetic logs -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def logs():
    """N_LOGS small logs with different planted tastes and no shift."""
    out = []
    for seed in range(N_LOGS):
        d = generate_synthetic(SyntheticConfig(seed=seed, n_users=200, n_categories=20, n_groups=4,
                                               items_per_category=8, mean_interactions=40, min_interactions=25))
        out.append((d.interactions, dict(zip(d.groups.user_id, d.groups.group.astype(str), strict=True))))
    return out


@pytest.fixture
def without_widgets(monkeypatch):
    """Evidently without its HTML widgets (plotly figures, most of a run's time): the drift scores and test
    verdicts detect_drift reads stay the same (test_pure_taste_shift_triggers checks it); the report written
    to disk is checked with the widgets (test_outputs_written_and_evidently_kept_quiet)."""
    from evidently.metrics.column_statistics import ValueDriftCalculation
    from evidently.presets import DataDriftPreset

    monkeypatch.setattr(DataDriftPreset, "render", lambda self, context, child_widgets=None: [])
    monkeypatch.setattr(ValueDriftCalculation, "_render", lambda self, result, options, color_options: [])


def _halves(interactions: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    users = np.array(sorted(interactions.user_id.unique()))
    first = set(np.random.default_rng(seed).permutation(users)[: len(users) // 2])
    mask = interactions.user_id.isin(first)
    return interactions[mask].reset_index(drop=True), interactions[~mask].reset_index(drop=True)


def _nulls(logs) -> Iterator[tuple[str, pd.DataFrame, pd.DataFrame, dict[str, str]]]:
    """(kind, reference, current, groups) per null trial: each log's users split in two random halves, and the
    log's three equal-count time periods compared consecutively (what the recurring pipeline compares: the same
    users, the next period)."""
    for seed, (interactions, groups) in enumerate(logs):
        yield "halves", *_halves(interactions, seed), groups
        periods = split_periods(interactions, 3)
        for before, after in itertools.pairwise(periods):
            yield "periods", before.interactions, after.interactions, groups


@pytest.mark.usefixtures("without_widgets")
def test_same_distribution_does_not_trigger(logs):
    """At most 1 false alarm in 20 over 3 x N_LOGS = 24 null comparisons of N_LOGS independent logs (fails once
    two trigger). Measured: 0 alarms; null drift shares up to 5/13 (consecutive periods; 7/13 triggers), so a
    threshold of 0.3 would already fail here with 3 alarms; 8.3 % of the column tests flag (nominal 5 %)."""
    cfg = DriftConfig()
    results = [(kind, detect_drift(cfg, ref, cur, user_groups=groups)) for kind, ref, cur, groups in _nulls(logs)]
    assert len(results) == 3 * N_LOGS and {k for k, _ in results} == {"halves", "periods"}
    for kind, result in results:
        assert len(result.features) == 13  # 6 behaviour + 5 top shares + other_share + group
        assert kind == "periods" or result.n_reference_users == result.n_current_users == 100
    alarms = [f"{kind}: {r.drift_share:.3f}" for kind, r in results if r.drifted]
    assert len(alarms) <= len(results) // 20, f"false alarms in {len(results)} same-distribution comparisons: {alarms}"
    # each column is tested at 5%: the flag rate over 24 x 13 null tests stays near it
    assert np.mean([f.drifted for _, r in results for f in r.features]) <= 0.10


def _remap_current(logs, mapping_of) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    interactions, groups = logs[0]
    ref, cur = _halves(interactions, 0)
    ranked = popular_categories(ref.category, ref.category.nunique())
    return ref, cur.assign(category=cur.category.map(mapping_of(ranked))), groups


def test_pure_taste_shift_triggers(logs, request):
    """Users move their mass from popular to tail categories (reversed popularity), diversity unchanged. Without
    Evidently's HTML widgets the result (every column's score and verdict) is the same."""
    ref, cur, groups = _remap_current(logs, lambda ranked: dict(zip(ranked, ranked[::-1], strict=True)))
    result = detect_drift(DriftConfig(), ref, cur, user_groups=groups)
    request.getfixturevalue("without_widgets")
    assert detect_drift(DriftConfig(), ref, cur, user_groups=groups) == result
    taste = {"ref_popularity", OTHER_SHARE} | {f.column for f in result.features if f.column.startswith(SHARE_PREFIX)}
    assert taste <= set(result.drifted_columns)
    assert result.drift_share >= 7 / 13
    assert result.drifted


@pytest.mark.usefixtures("without_widgets")
def test_drifted_means_the_share_reaches_the_configured_threshold(logs):
    """Regrouping follows ``DriftConfig.threshold``, not a fixed 0.5: a threshold just below the observed drift
    share and one exactly at it trigger, one just above does not (closes the gap where ``share >= 0.5`` or
    ``share > threshold`` passed every test). The share itself does not depend on the threshold."""
    ref, cur, groups = _remap_current(logs, lambda ranked: dict(zip(ranked, ranked[::-1], strict=True)))
    share = detect_drift(DriftConfig(threshold=1.0), ref, cur, user_groups=groups).drift_share
    step = 1 / 13  # one of the 13 feature columns
    assert 2 * step < share <= 1.0 - step  # measured: 7/13; so every threshold below lies in (0, 1]
    for threshold in (share - 2 * step, share, share + step):
        result = detect_drift(DriftConfig(threshold=threshold), ref, cur, user_groups=groups)
        assert result.drift_share == share
        assert result.drifted is (share >= threshold), (threshold, share)


def test_concentration_shift_triggers(logs):
    """Every category collapses onto three tail ones: diversity, novelty and taste all move."""
    ref, cur, groups = _remap_current(logs, lambda ranked: {c: ranked[-1 - i % 3] for i, c in enumerate(ranked)})
    result = detect_drift(DriftConfig(), ref, cur, user_groups=groups)
    assert {"entropy", "breadth", "top_share", "ref_popularity"} <= set(result.drifted_columns)
    assert result.drift_share >= 0.75
    assert result.drifted


def test_outputs_written_and_evidently_kept_quiet(logs, tmp_path, caplog):
    ref, cur = _halves(logs[1][0], 1)
    cfg = DriftConfig(threshold=0.3)
    with caplog.at_level(logging.DEBUG), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # every warning shown, even one already shown by an earlier test
        result = detect_drift(cfg, ref, cur, tmp_path / "drift", user_groups=logs[1][1])
    # without the silencing this run shows ~10 warnings (numpy's, litestar's deprecations) and no log record
    assert not caught, [f"{w.category.__name__}: {w.message}" for w in caught][:3]
    assert not [r for r in caplog.records if r.name.startswith("evidently") or r.levelno >= logging.WARNING]
    assert [r.name for r in caplog.records if r.name.startswith("coea")] == ["coea.drift"]  # one summary line
    assert result.html_path == tmp_path / "drift" / "drift_report.html"
    html = result.html_path.read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html") and html.rstrip().endswith("</html>")
    assert len(html) > 100_000 and "<script src=" not in html  # self-contained: scripts inlined
    assert "other_share" in html and "chi-square two-sample" in html
    summary = json.loads(result.json_path.read_text(encoding="utf-8"))
    assert summary["drift_share"] == pytest.approx(result.drift_share)
    assert summary["drifted"] is result.drifted
    assert summary["config"]["threshold"] == 0.3
    assert [f["column"] for f in summary["features"]][:6] == ["activity", "entropy", "top_share", "breadth",
                                                              "novelty", "ref_popularity"]
    assert summary["features"][-1]["stattest"].startswith("chi-square two-sample")  # the group column
    assert sorted(p.name for p in (tmp_path / "drift").iterdir()) == ["drift.json", "drift_report.html"]


def test_stattest_override_and_unknown_name(logs):
    ref, cur = _halves(logs[2][0], 2)
    result = detect_drift(DriftConfig(stattest="psi", stattest_threshold=0.2), ref, cur)
    assert {f.stattest for f in result.features} == {"PSI"}
    assert {f.threshold for f in result.features} == {0.2}
    with pytest.raises(ValueError, match="'nope'"):
        detect_drift(DriftConfig(stattest="nope"), ref, cur)


@pytest.mark.usefixtures("without_widgets")
def test_users_without_a_group_are_no_group_drift(logs):
    """Users the groups lack (new since DSIE ran) were the group "unknown", a category the reference never has, so
    the group column drifted in nearly every real period (audit, session 56: p < 1e-16 in each of three synthetic
    periods). They are missing now and left out of the test: 40 % of the current users without a group, the same
    behaviour, is no group drift; a current window where no user has a group has no group column (Evidently
    cannot test an empty one)."""
    interactions, groups = logs[0]
    ref, cur = _halves(interactions, 0)
    users = sorted(cur.user_id.unique())
    new = set(np.random.default_rng(0).permutation(users)[: int(0.4 * len(users))])
    result = detect_drift(DriftConfig(), ref, cur, user_groups={u: g for u, g in groups.items() if u not in new})
    (group,) = [f for f in result.features if f.column == GROUP]
    assert not group.drifted and group.score > 0.05, group
    known = {u: groups[u] for u in ref.user_id.unique()}  # every current user is new
    result = detect_drift(DriftConfig(), ref, cur, user_groups=known)
    assert GROUP not in [f.column for f in result.features] and len(result.features) == 12


@pytest.mark.usefixtures("without_widgets")
def test_two_sample_chi2_keeps_a_group_column_quiet_on_same_distribution_splits(logs):
    """The default path (Evidently would pick its goodness-of-fit chi-square for the 4-group column) gets the
    two-sample test: over 60 random halves of one log's 200 users, the group column alone, it flags at most 6
    (nominal 5 %: 3); Evidently's own test flags far more. Measured: 3 and 18 of 60. Without the override (a
    _chi2_columns that picks nothing) the first count is the second."""
    from coea.drift import _parse_snapshot, _run_evidently

    labels = pd.Series(logs[0][1]).sort_index().to_numpy()
    flags = {}
    for override in (True, False):
        flags[override] = 0
        for seed in range(60):
            order = np.random.default_rng(seed).permutation(len(labels))
            ref, cur = (pd.DataFrame({GROUP: labels[part]}) for part in (order[:100], order[100:]))
            _, (feature,) = _parse_snapshot(_run_evidently(DriftConfig(two_sample_chi2=override), ref, cur, [],
                                                           [GROUP]).dict())
            flags[override] += feature.drifted
    assert flags[True] <= 6 and flags[False] >= 10, flags


def test_reference_and_current_keep_their_roles_above_1000_users():
    """Above 1000 users Evidently's normed Wasserstein distance divides by the REFERENCE's standard deviation, so
    the two windows are not interchangeable: a narrow reference (activity 18-22) against a wide current one (12-28)
    scores W / std(reference), 2.13 here, 3.4x the swapped W / std(current), 0.62. Pins the order detect_drift
    hands the windows to Evidently (audit, session 56: swapping them passed every test)."""
    from scipy.stats import wasserstein_distance

    rng = np.random.default_rng(0)
    n_users = 1100

    def window(prefix: str, spread: int) -> pd.DataFrame:
        activity = 20 + rng.integers(-spread, spread + 1, size=n_users)
        users = np.repeat([f"{prefix}{i}" for i in range(n_users)], activity)
        return pd.DataFrame({"user_id": users, "item_id": [f"i{k}" for k in range(len(users))],
                             "category": rng.choice(list("ABCD"), size=len(users)),
                             "timestamp": np.arange(len(users))})

    ref, cur = window("r", 2), window("c", 8)
    ref_activity, cur_activity = ref.groupby("user_id").size(), cur.groupby("user_id").size()
    result = detect_drift(DriftConfig(), ref, cur)
    (activity,) = [f for f in result.features if f.column == "activity"]
    assert activity.stattest == "Wasserstein distance (normed)"
    distance = wasserstein_distance(ref_activity, cur_activity)
    assert activity.score == pytest.approx(distance / np.std(ref_activity))
    assert activity.score > 2 * distance / np.std(cur_activity)  # what the swapped windows would score
