"""The leakage rule: nothing a method uses is computed from the interactions it is scored on.

Fit every baseline, change every future interaction (items, categories, timestamps), refit: the
recommendations must be identical. A control checks that the same procedure notices a change of history.
"""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from coea.config import DataConfig, EvalConfig, RunConfig, SplitConfig
from coea.data.prepared import read_prepared
from coea.data.split import chronological_split
from coea.data.synthetic import generate_synthetic
from coea.evaluation.evaluate import recommend_all
from coea.evaluation.registry import METHODS as REGISTRY
from coea.evaluation.registry import method_context
from coea.flow import run_flow
from coea.layout import RunLayout
from coea.pco.config import PcoConfig
from coea.stages import load_artifacts
from tests.pipeline.pipeline_helpers import tiny_llm

METHODS = sorted(REGISTRY) + [f"{m}+x" for m in sorted(REGISTRY)]
SPLIT = SplitConfig(n_future=5, n_short=5, min_history=3)


def _mutate_future(df: pd.DataFrame, n_future: int, rng: np.random.Generator) -> pd.DataFrame:
    """Permute the future events' (item, category) across users and push their timestamps later."""
    df = df.sort_values(["user_id", "timestamp", "item_id"], kind="mergesort").reset_index(drop=True)
    is_future = (df.groupby("user_id").cumcount(ascending=False) < n_future).to_numpy()
    fut = df[is_future]
    perm = rng.permutation(len(fut))
    df.loc[is_future, ["item_id", "category"]] = fut[["item_id", "category"]].to_numpy()[perm]
    df.loc[is_future, "timestamp"] = fut["timestamp"].to_numpy() + rng.integers(1, 1000, len(fut))
    return df


def _recs(df: pd.DataFrame, root):
    """Every method on ``df``'s histories: the training flow (DSIE, SFT of small LLMs, 2 small PCO rounds) on the
    log, then every method fitted with those artifacts (the rule does not depend on model size: PCO prompts,
    pairs and R-LLM refreshes are all cut from histories)."""
    root.mkdir(parents=True, exist_ok=True)
    df.to_parquet(root / "log.parquet", index=False)
    cfg = replace(RunConfig(), data=DataConfig(spec=f"parquet:{root / 'log.parquet'}"), split=SPLIT, llm=tiny_llm(),
                  pco=PcoConfig(rounds=2, users_per_round=40, candidates=4, margin=0.0),
                  eval=EvalConfig(methods=METHODS, ks=[10]), device="cpu")
    layout = RunLayout(root / "run")
    run_flow(cfg, layout, evaluate=False)
    split = chronological_split(read_prepared(layout.data).interactions, SPLIT)
    ctx = method_context(cfg, load_artifacts(METHODS, layout.artifacts()))
    return split, recommend_all(split, cfg.eval, ctx)


@pytest.fixture(scope="module")
def data(request):
    from coea.config import SyntheticConfig

    cfg = SyntheticConfig(seed=5, n_users=80, n_categories=15, n_groups=3, mean_interactions=30)
    return generate_synthetic(cfg).interactions


def test_changing_every_future_event_leaves_recommendations_identical(data, tmp_path):
    split_a, recs_a = _recs(data, tmp_path / "a")
    mutated = _mutate_future(data, SPLIT.n_future, np.random.default_rng(0))
    split_b, recs_b = _recs(mutated, tmp_path / "b")
    # the mutation really changed the futures, and left histories alone
    assert split_a.future_categories != split_b.future_categories
    pd.testing.assert_frame_equal(split_a.histories.interactions, split_b.histories.interactions)
    for name in METHODS:
        assert recs_a[name] == recs_b[name], f"{name} changed when only the future changed: leakage"


def test_control_changing_history_changes_recommendations(data, tmp_path):
    _, recs_a = _recs(data, tmp_path / "a")
    changed = data.copy()
    first = changed.groupby("user_id").head(3).index  # oldest events = history
    changed.loc[first, "category"] = changed["category"].iloc[0]
    _, recs_b = _recs(changed, tmp_path / "b")
    assert recs_a["pop"] != recs_b["pop"] or recs_a["markov"] != recs_b["markov"]
