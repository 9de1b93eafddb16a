"""Drift in user behaviour between two time windows, checked with Evidently; decides whether to regroup.

The recurring pipeline compares the newest period (``current``) with the period the groups were fitted on
(``reference``), each as its histories under the run's split (:func:`coea.stages.drift.drift_window`: what DSIE
fits the groups on, never the future the period's evaluate step scores): canonical interaction tables, each
summarised as one row per user (:func:`user_behaviour_features`); Evidently's ``DataDriftPreset`` tests every
feature column for a change in its distribution across users. Regrouping (re-running DSIE) is triggered when the
share of drifted columns reaches ``DriftConfig.threshold``.

Features, per user, over the user's events in the window (events in time order, ties by item id):

- ``activity``: number of events;
- ``entropy``: Shannon entropy in nats of the user's category distribution, ``-sum_c p_c ln p_c`` with
  ``p_c = n_c / activity`` (two categories with equal counts give ``ln 2``);
- ``top_share``: ``max_c p_c``, the share of the user's most frequent category;
- ``breadth``: number of distinct categories;
- ``novelty``: share of events in categories new to the user. Without ``prior`` history (how
  :func:`detect_drift` uses it, so that both windows are measured the same way) the user's events are cut into
  an earlier part (the first ``ceil(n / 2)`` events) and a later part (the rest), and novelty is the share of
  later events whose category is absent from the earlier part; a user with a single event gets 0. With a
  ``prior`` table it is the share of all window events whose category the user never showed in ``prior``
  (1 for a user absent from ``prior``);
- ``ref_popularity``: ``sum_c p_c * pi_c`` with ``pi_c`` the share of reference-window events in category
  ``c`` (0 for a category the reference lacks): how mainstream, by the reference's measure, the user's taste is;
- ``share_<category>``: ``p_c`` for each of the ``top_categories`` most popular categories of the reference
  window (the same columns in both windows, 0 when the user has no such event), and ``other_share``, the rest
  (``1 - sum`` of those), so the shares describe the whole distribution;
- ``group`` (categorical, only with ``user_groups``): the user's group, so a shift in group sizes shows as drift;
  missing for a user the groups lack (new since they were fitted), left out of the test: new users are no drift.

The columns balance *how* users consume (activity, entropy, top_share, breadth, novelty, group) against
*what* they consume (ref_popularity and the shares): a pure change of taste that keeps every user's
diversity (say, users move their mass from the popular categories to tail ones) drifts the 7 "what" columns
out of 13 and so still reaches the default threshold of 0.5.

Evidently's default tests depend on the reference size: up to 1000 users, K-S (numerical) and chi-square or
Z-test (categorical, and numerical with at most 5 distinct values) p-values against 0.05; above 1000,
normalised Wasserstein and Jensen-Shannon distances against 0.1. ``DriftConfig.stattest`` picks one method
for every column instead (and only then may ``stattest_threshold`` set its threshold).

Evidently's chi-square is a goodness-of-fit test that treats the reference proportions as exact, which
ignores the reference's own sampling noise: with two windows of equal size its statistic is about twice a
chi-square variable, and on a 4-group column it flagged 16 of 60 same-distribution user splits (2 of 60 with
the test below). So, by default (``two_sample_chi2``), every column where Evidently would pick that test gets
``chi2_two_sample`` instead: Pearson's chi-square test of homogeneity on the 2 x k table of counts (registered
with Evidently under that name, so the HTML report shows it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from coea.config import config_to_dict
from coea.data.schema import CATEGORY, ITEM, TIMESTAMP, USER
from coea.errors import CoeaInputError
from coea.utils import write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

BEHAVIOUR_FEATURES = ("activity", "entropy", "top_share", "breadth", "novelty", "ref_popularity")
GROUP = "group"
SHARE_PREFIX = "share_"
OTHER_SHARE = "other_share"  # no share_ prefix, so a category called "other" cannot collide with it
TWO_SAMPLE_CHI2 = "chi2_two_sample"
REPORT_HTML = "drift_report.html"
SUMMARY_JSON = "drift.json"


@dataclass
class DriftConfig:
    """When a change in user behaviour between two windows triggers regrouping."""

    threshold: float = 0.5  # share of drifted feature columns at or above which users are regrouped, in (0, 1]
    stattest: str | None = None  # one Evidently drift method for every column (e.g. "ks", "psi"); None = defaults
    stattest_threshold: float | None = None  # that method's per-column threshold (p-value or distance); None = default
    top_categories: int = 5  # share_<category> columns for the N most popular reference categories (0 = none)
    min_users: int = 50  # each window needs at least this many users, else detect_drift raises CoeaInputError
    two_sample_chi2: bool = True  # where Evidently's default is its chi-square, use a two-sample one (see module doc)

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold!r}")
        if self.stattest is not None and not (isinstance(self.stattest, str) and self.stattest.strip()):
            raise ValueError(f"stattest must be an Evidently method name or None, got {self.stattest!r}")
        if self.stattest is not None and self.stattest not in stattest_names():
            raise ValueError(f"stattest {self.stattest!r} is not a drift method of the installed Evidently; use one "
                             f"of {', '.join(stattest_names())}, or leave it out (null) for Evidently's defaults")
        if self.stattest_threshold is not None and not self.stattest_threshold > 0:
            raise ValueError(f"stattest_threshold must be > 0 or None, got {self.stattest_threshold!r}")
        if self.stattest_threshold is not None and self.stattest is None:
            raise ValueError(f"stattest_threshold {self.stattest_threshold!r} needs stattest: the default tests are "
                             "K-S p-values up to 1000 users and Wasserstein distances above, no one threshold fits; "
                             'set both, e.g. {"stattest": "ks", "stattest_threshold": 0.01}, or drop it')
        if self.top_categories < 0:
            raise ValueError(f"top_categories must be >= 0, got {self.top_categories!r}")
        if self.min_users < 2:
            raise ValueError(f"min_users must be >= 2, got {self.min_users!r}")


def stattest_names() -> tuple[str, ...]:
    """The names ``DriftConfig.stattest`` may take: the drift methods registered with the installed Evidently that
    test numerical or categorical columns (its text-only ones fit no behaviour feature), and ``chi2_two_sample``.
    Imports Evidently, so only a config that sets ``stattest`` pays for it."""
    with _quiet_evidently():
        import evidently.legacy.calculations.stattests  # noqa: F401  (registers Evidently's methods)
        from evidently.legacy.calculations.stattests.registry import _registered_stat_tests
        from evidently.legacy.core import ColumnType

    usable = {ColumnType.Numerical, ColumnType.Categorical}
    names = [name for name, by_type in _registered_stat_tests.items() if usable & set(by_type)]
    return (*sorted(set(names) - {TWO_SAMPLE_CHI2}, key=str.lower), TWO_SAMPLE_CHI2)


@dataclass(frozen=True)
class FeatureDrift:
    """Evidently's verdict on one feature column."""

    column: str
    stattest: str  # Evidently's display name of the method, e.g. "K-S p_value"
    score: float  # p-value for p-value methods, distance for distance methods
    threshold: float  # the method's threshold that was applied
    drifted: bool


@dataclass(frozen=True)
class DriftResult:
    """What :func:`detect_drift` found."""

    drift_share: float  # share of feature columns Evidently marks as drifted
    drifted: bool  # drift_share >= threshold: regroup users
    features: list[FeatureDrift]
    n_reference_users: int
    n_current_users: int
    html_path: Path | None = None  # Evidently's self-contained HTML report, when out_dir was given
    json_path: Path | None = None  # our summary plus the config, when out_dir was given

    @property
    def drifted_columns(self) -> list[str]:
        return [f.column for f in self.features if f.drifted]

    def to_dict(self) -> dict[str, Any]:
        return {
            "drift_share": self.drift_share,
            "drifted": self.drifted,
            "drifted_columns": self.drifted_columns,
            "n_reference_users": self.n_reference_users,
            "n_current_users": self.n_current_users,
            "features": [asdict(f) for f in self.features],
        }


def popular_categories(categories: Sequence[str] | pd.Series, n: int) -> list[str]:
    """The ``n`` most frequent values of ``categories`` (one entry per event), ties broken by name."""
    counts = pd.Series(categories, dtype=object).value_counts()
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    return [str(c) for c, _ in ranked[:n]]


def user_behaviour_features(
    interactions: pd.DataFrame,
    *,
    reference_categories: Sequence[str] | pd.Series | None = None,
    user_groups: Mapping[str, str] | None = None,
    top_categories: Sequence[str] | None = None,
    n_top: int = 5,
    prior: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per user (index ``user_id``, sorted) with the behaviour features of the module docstring.

    ``reference_categories`` is the category of every reference-window event (e.g. ``reference["category"]``);
    it gives the popularity behind ``ref_popularity`` and, unless ``top_categories`` names them, the ``n_top``
    ``share_<category>`` columns. When it is None this table's own categories stand in. ``user_groups`` adds the
    categorical ``group`` column; ``prior`` (canonical, events before the window) switches novelty to "not seen
    in prior history".
    """
    df = interactions[[USER, ITEM, CATEGORY, TIMESTAMP]].astype({USER: str, ITEM: str, CATEGORY: str})
    df = df.sort_values([USER, TIMESTAMP, ITEM], kind="mergesort").reset_index(drop=True)
    users = pd.Index(sorted(df[USER].unique()), name=USER)
    counts = df.groupby([USER, CATEGORY], sort=True).size()  # (user, category) -> events
    activity = counts.groupby(level=USER).sum().reindex(users)
    probs = counts / counts.index.get_level_values(USER).map(activity).to_numpy()  # p_uc
    out = pd.DataFrame(index=users)
    out["activity"] = activity.astype("int64")
    out["entropy"] = (-(probs * np.log(probs))).groupby(level=USER).sum().reindex(users).clip(lower=0.0)
    out["top_share"] = probs.groupby(level=USER).max().reindex(users)
    out["breadth"] = counts.groupby(level=USER).size().reindex(users).astype("int64")
    out["novelty"] = _novelty_prior(df, prior, users) if prior is not None else _novelty_within(df, users)
    source = df[CATEGORY] if reference_categories is None else pd.Series(reference_categories, dtype=object)
    top = popular_categories(source, n_top) if top_categories is None else [str(c) for c in top_categories]
    out = out.join(_taste_features(probs, users, source.astype(str).value_counts(normalize=True), top))
    if user_groups is not None:  # a user without a group: missing (None), not a category the reference lacks
        out[GROUP] = [None if (g := user_groups.get(u)) is None else str(g) for u in users]
    return out


def _taste_features(probs: pd.Series, users: pd.Index, ref_dist: pd.Series, top: list[str]) -> pd.DataFrame:
    """``ref_popularity``, ``share_<c>`` for ``c`` in ``top`` and ``other_share`` from p_uc (``probs``)."""
    pi = probs.index.get_level_values(CATEGORY).map(ref_dist).fillna(0.0).to_numpy()
    out = pd.DataFrame(index=users)
    out["ref_popularity"] = (probs * pi).groupby(level=USER).sum().reindex(users).astype("float64")
    if not top:
        return out
    shares = probs.unstack(CATEGORY, fill_value=0.0).reindex(index=users, columns=top).fillna(0.0)
    for cat in top:
        out[f"{SHARE_PREFIX}{cat}"] = shares[cat].astype("float64")
    out[OTHER_SHARE] = (1.0 - shares.sum(axis=1)).clip(lower=0.0).astype("float64")
    return out


def _novelty_within(df: pd.DataFrame, users: pd.Index) -> pd.Series:
    """Share of a user's later events (after the first ceil(n/2)) whose category the earlier part lacks."""
    pos = df.groupby(USER, sort=False).cumcount().to_numpy()
    n = df[USER].map(df.groupby(USER).size()).to_numpy()
    earlier = pos < np.ceil(n / 2)
    seen = pd.MultiIndex.from_frame(df.loc[earlier, [USER, CATEGORY]].drop_duplicates())
    later = df.loc[~earlier, [USER, CATEGORY]]
    is_new = ~pd.MultiIndex.from_frame(later).isin(seen)
    rate = pd.Series(is_new, index=later[USER].to_numpy()).groupby(level=0).mean()
    return rate.reindex(users).fillna(0.0).astype("float64")


def _novelty_prior(df: pd.DataFrame, prior: pd.DataFrame, users: pd.Index) -> pd.Series:
    """Share of a user's window events whose category the user never showed in ``prior``."""
    seen = pd.MultiIndex.from_frame(prior[[USER, CATEGORY]].astype(str).drop_duplicates())
    is_new = ~pd.MultiIndex.from_frame(df[[USER, CATEGORY]]).isin(seen)
    rate = pd.Series(is_new, index=df[USER].to_numpy()).groupby(level=0).mean()
    return rate.reindex(users).astype("float64")


def detect_drift(cfg: DriftConfig, reference: pd.DataFrame, current: pd.DataFrame, out_dir: Path | None = None, *,
                 user_groups: Mapping[str, str] | None = None) -> DriftResult:
    """Compare the per-user behaviour of two canonical windows with Evidently; see the module docstring.

    With ``out_dir``, writes ``drift_report.html`` (Evidently's self-contained report) and ``drift.json``
    (this result plus ``cfg``) atomically.
    """
    start = time.perf_counter()
    kwargs = {"reference_categories": reference[CATEGORY], "n_top": cfg.top_categories, "user_groups": user_groups}
    ref = user_behaviour_features(reference, **kwargs)
    cur = user_behaviour_features(current, **kwargs)
    for name, feats in (("reference", ref), ("current", cur)):
        if len(feats) < cfg.min_users:  # an input error: the same data fails the same way on every retry
            raise CoeaInputError(f"the {name} window has {len(feats)} users, fewer than min_users={cfg.min_users}",
                                 source="drift config", option="min_users", fix="lower min_users, or give the "
                                 "period more data: a longer window holds more users with a history under the split")
    if GROUP in cur and (cur[GROUP].isna().all() or ref[GROUP].isna().all()):  # nothing to test
        log.warning("a window without a user in the groups: the group column is left out")
        ref, cur = ref.drop(columns=GROUP), cur.drop(columns=GROUP)
    numerical = [c for c in ref.columns if c != GROUP]
    categorical = [GROUP] if GROUP in ref.columns else []
    snapshot = _run_evidently(cfg, ref.reset_index(drop=True), cur.reset_index(drop=True), numerical, categorical)
    share, features = _parse_snapshot(snapshot.dict())
    result = DriftResult(share, share >= cfg.threshold, features, len(ref), len(cur))
    if out_dir is not None:
        result = _write_outputs(cfg, result, snapshot, Path(out_dir))
    log.info("drift share %.3f over %d features (%d vs %d users): %s in %.1fs; drifted: %s", share,
             len(features), len(ref), len(cur), "REGROUP" if result.drifted else "keep groups",
             time.perf_counter() - start, ", ".join(result.drifted_columns) or "none")
    return result


def chi2_two_sample(reference: pd.Series, current: pd.Series) -> float:
    """P-value of Pearson's chi-square test that both samples come from one categorical distribution.

    ``X^2 = sum_{s,c} (O_sc - E_sc)^2 / E_sc`` over the 2 x k table of counts (sample s, value c), with
    ``E_sc = n_s * m_c / N``, against chi-square with ``k - 1`` degrees of freedom; 1.0 when k < 2.
    """
    from scipy.stats import chi2_contingency

    table = pd.concat([reference.value_counts(), current.value_counts()], axis=1).fillna(0).to_numpy().T
    if table.shape[1] < 2:
        return 1.0
    return float(chi2_contingency(table, correction=False).pvalue)


def _register_two_sample_chi2() -> None:
    """Make ``chi2_two_sample`` known to Evidently (idempotent)."""
    from evidently.legacy.calculations.stattests import StatTest, register_stattest
    from evidently.legacy.calculations.stattests.registry import _registered_stat_tests
    from evidently.legacy.core import ColumnType

    if TWO_SAMPLE_CHI2 in _registered_stat_tests:
        return

    def impl(reference_data: pd.Series, current_data: pd.Series, feature_type: Any, threshold: float):
        p_value = chi2_two_sample(reference_data.dropna(), current_data.dropna())
        return p_value, p_value < threshold

    test = StatTest(name=TWO_SAMPLE_CHI2, display_name="chi-square two-sample p_value",
                    allowed_feature_types=[ColumnType.Categorical, ColumnType.Numerical])
    register_stattest(test, impl)


def _chi2_columns(ref: pd.DataFrame, cur: pd.DataFrame, numerical: list[str], categorical: list[str]) -> list[str]:
    """Columns for which Evidently's defaults would choose its (goodness-of-fit) chi-square test. Evidently counts
    a column's reference rows after dropping its missing values (the group of a user the groups lack), so does
    this: 1010 users of whom 20 lack a group are 990 rows, where Evidently picks its chi-square."""
    out = []
    for col in [*numerical, *categorical]:
        if ref[col].replace([np.inf, -np.inf], np.nan).notna().sum() > 1000:
            continue
        n_values = pd.concat([ref[col], cur[col]]).nunique()
        if n_values > 2 and (col in categorical or n_values <= 5):
            out.append(col)
    return out


@contextlib.contextmanager
def _quiet_evidently() -> Iterator[None]:
    """Silence Evidently's (and pandas' / scipy's) warnings and sub-ERROR log records for one run."""
    logger = logging.getLogger("evidently")
    old_level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(old_level)


def _run_evidently(cfg: DriftConfig, ref: pd.DataFrame, cur: pd.DataFrame,
                   numerical: list[str], categorical: list[str]) -> Any:
    """Run ``Report([DataDriftPreset()])`` with explicit column types; returns Evidently's snapshot."""
    with _quiet_evidently():
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        per_column = None
        if cfg.stattest == TWO_SAMPLE_CHI2:
            _register_two_sample_chi2()
        if cfg.stattest is None and cfg.two_sample_chi2:
            _register_two_sample_chi2()
            per_column = dict.fromkeys(_chi2_columns(ref, cur, numerical, categorical), TWO_SAMPLE_CHI2) or None
        definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
        preset = DataDriftPreset(drift_share=cfg.threshold, method=cfg.stattest, threshold=cfg.stattest_threshold,
                                 per_column_method=per_column)
        report = Report([preset], include_tests=True)
        try:
            return report.run(current_data=Dataset.from_pandas(cur, data_definition=definition),
                              reference_data=Dataset.from_pandas(ref, data_definition=definition))
        except ValueError as err:
            if cfg.stattest is None:
                raise
            raise ValueError(f"stattest {cfg.stattest!r} cannot be used on these features: {err}") from err


def _parse_snapshot(snap: dict[str, Any]) -> tuple[float, list[FeatureDrift]]:
    """Drift share and per-column verdicts from ``Snapshot.dict()`` (metrics plus their tests)."""
    failed = {t["metric_config"]["metric_id"]: t["status"] == "FAIL" for t in snap["tests"]
              if t.get("bound_test", {}).get("type", "").endswith("ValueDriftBoundTest")}
    share = math.nan
    features = []
    for metric in snap["metrics"]:
        kind = metric["config"]["type"]
        if kind.endswith(":DriftedColumnsCount"):
            share = float(metric["value"]["share"])
        elif kind.endswith(":ValueDrift"):
            conf = metric["config"]
            features.append(FeatureDrift(conf["column"], _display_name(str(conf["method"])), float(metric["value"]),
                                         float(conf["threshold"]), failed[metric["id"]]))
    if math.isnan(share) or not features:
        raise RuntimeError("Evidently's snapshot lacks DriftedColumnsCount/ValueDrift results; is evidently 0.7?")
    own = sum(f.drifted for f in features) / len(features)
    if not math.isclose(share, own):
        log.warning("Evidently's drift share %.3f differs from its per-column verdicts %.3f", share, own)
    return share, features


def _display_name(method: str) -> str:
    """Evidently reports defaults by display name ("K-S p_value") and chosen methods by name ("ks"): unify."""
    from evidently.legacy.calculations.stattests.registry import _registered_stat_tests

    by_type = _registered_stat_tests.get(method)
    return next(iter(by_type.values())).display_name if by_type else method


def _write_outputs(cfg: DriftConfig, result: DriftResult, snapshot: Any, out_dir: Path) -> DriftResult:
    import evidently

    html_path, json_path = out_dir / REPORT_HTML, out_dir / SUMMARY_JSON
    with _quiet_evidently():
        write_text_atomic(html_path, snapshot.get_html_str(as_iframe=False))
    result = dataclasses.replace(result, html_path=html_path, json_path=json_path)
    summary = {**result.to_dict(), "html_path": REPORT_HTML, "config": config_to_dict(cfg),
               "evidently_version": evidently.__version__}
    write_json_atomic(json_path, summary)
    return result
