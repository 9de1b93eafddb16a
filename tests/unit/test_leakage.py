"""The leakage rule: nothing a method uses is computed from the interactions it is scored on.

Fit every baseline, change every future interaction (items, categories, timestamps), refit: the
recommendations must be identical. A control checks that the same procedure notices a change of history. The
PCO rewards that read logged feedback (``feedback``, ``hybrid``) run the same test on the CoEA methods, and a
control checks that their feedback really is read: changing the last history period (the last round's feedback
period) changes that round's pairs and leaves the earlier round's alone.
"""

import copy
import json
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
from coea.evaluation.registry import Need, method_context
from coea.flow import run_flow
from coea.layout import RunLayout
from coea.llm.sft_config import resolve_llm
from coea.pco import round as round_module
from coea.pco.config import PcoConfig
from coea.pco.loop import PcoLoop
from coea.pco.periods import round_windows
from coea.stages import load_artifacts, load_llms, run_pco_stage
from tests.pipeline.pipeline_helpers import tiny_llm

METHODS = sorted(REGISTRY) + [f"{m}+x" for m in sorted(REGISTRY)]
COEA = ["coea", "coea+x"]
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


def _config(root, methods: list[str], reward: str = "serendipity") -> RunConfig:
    return replace(RunConfig(), data=DataConfig(spec=f"parquet:{root / 'log.parquet'}"), split=SPLIT, llm=tiny_llm(),
                   pco=PcoConfig(rounds=2, users_per_round=40, candidates=4, margin=0.0, reward=reward),
                   eval=EvalConfig(methods=methods, ks=[10]), device="cpu")


def _train(df: pd.DataFrame, root, methods: list[str] = METHODS) -> tuple[RunConfig, RunLayout]:
    """The training flow on ``df`` for ``methods`` (DSIE, SFT of small LLMs, 2 small PCO rounds with the
    serendipity reward; the rule does not depend on model size: PCO prompts, pairs, feedback and R-LLM
    refreshes are all cut from histories)."""
    root.mkdir(parents=True, exist_ok=True)
    df.to_parquet(root / "log.parquet", index=False)
    cfg = _config(root, methods)
    layout = RunLayout(root / "run")
    run_flow(cfg, layout, evaluate=False)
    return cfg, layout


def _recs(cfg: RunConfig, layout: RunLayout, methods: list[str], pco_dir=None):
    """``methods`` fitted with the run's artifacts (``pco_dir``: another PCO run on the same SFT models)."""
    split = chronological_split(read_prepared(layout.data).interactions, SPLIT)
    dirs = replace(layout.artifacts(), pco=pco_dir or layout.pco)
    ctx = method_context(cfg, load_artifacts(methods, dirs))
    return split, recommend_all(split, replace(cfg.eval, methods=methods), ctx)


@pytest.fixture(scope="module")
def data(request):
    from coea.config import SyntheticConfig

    cfg = SyntheticConfig(seed=5, n_users=80, n_categories=15, n_groups=3, mean_interactions=30)
    return generate_synthetic(cfg).interactions


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
    """The training flow on the log and on the log with every future event changed."""
    root = tmp_path_factory.mktemp("leakage")
    mutated = _mutate_future(data, SPLIT.n_future, np.random.default_rng(0))
    return {name: _train(df, root / name) for name, df in (("a", data), ("b", mutated))}


@pytest.mark.parametrize(("reward", "methods"), [("serendipity", METHODS), ("feedback", COEA), ("hybrid", COEA)])
def test_changing_every_future_event_leaves_recommendations_identical(runs, reward, methods):
    """Every method (serendipity: the flow's own PCO run), and coea/coea+x after PCO runs with the feedback
    rewards on the same SFT models, give identical lists when only the evaluation future changed."""
    recs, splits = {}, {}
    for name, (cfg, layout) in runs.items():
        pco_dir = None
        if reward != "serendipity":
            pco_dir = layout.root / f"pco_{reward}"
            run_stage_cfg = replace(cfg, pco=replace(cfg.pco, reward=reward))
            run_pco_stage(run_stage_cfg, layout.data, layout.dsie, [layout.llm], pco_dir)
            rows = json.loads((pco_dir / "pco_metrics.json").read_text())["rounds"]
            assert all(r["feedback_users"] > 0 and r["onpolicy_examples"] > 0 for r in rows[1:])  # feedback read
        splits[name], recs[name] = _recs(cfg, layout, methods, pco_dir)
    # the mutation really changed the futures, and left histories alone
    assert splits["a"].future_categories != splits["b"].future_categories
    pd.testing.assert_frame_equal(splits["a"].histories.interactions, splits["b"].histories.interactions)
    for name in methods:
        assert recs["a"][name] == recs["b"][name], f"{name} changed when only the future changed: leakage"


def test_control_changing_history_changes_recommendations(data, tmp_path):
    methods = ["pop", "markov"]
    _, recs_a = _recs(*_train(data, tmp_path / "a", methods), methods)
    changed = data.copy()
    first = changed.groupby("user_id").head(3).index  # oldest events = history
    changed.loc[first, "category"] = changed["category"].iloc[0]
    _, recs_b = _recs(*_train(changed, tmp_path / "b", methods), methods)
    assert recs_a["pop"] != recs_b["pop"] or recs_a["markov"] != recs_b["markov"]


def test_control_changing_the_last_history_period_changes_the_feedback_pairs(data, tmp_path, monkeypatch):
    """Same SFT models, two histories that differ only in the last period's categories: round 1 (feedback from
    period 1) trains on the same pairs, round 2 (feedback from the last period) on different ones."""
    root = tmp_path / "sft"
    root.mkdir()
    data.to_parquet(root / "log.parquet", index=False)
    cfg = _config(root, COEA, "feedback")
    run_flow(cfg, RunLayout(root / "run"), needs=frozenset({Need.LLMS}), evaluate=False)
    history = chronological_split(read_prepared(RunLayout(root / "run").data).interactions, SPLIT).histories
    llms = load_llms([root / "run" / "llm"], root / "run" / "dsie", trainable=True)
    last = round_windows(history.interactions, cfg.pco.rounds, True, feedback=True)[-1]
    events = history.interactions.copy()
    tail = (events["timestamp"] >= last.end).to_numpy()
    cats = list(history.categories)
    events.loc[tail, "category"] = [cats[(cats.index(c) + 1) % len(cats)] for c in events.loc[tail, "category"]]
    assert tail.sum() > 0
    pairs: list[list[list[tuple[str, str, str]]]] = []
    real = round_module.dpo_update

    def spy(ctx, novelty, round_pairs, dpo_cfg):
        pairs[-1].append([(p.prompt, p.chosen, p.rejected) for p in round_pairs])
        return real(ctx, novelty, round_pairs, dpo_cfg)

    monkeypatch.setattr(round_module, "dpo_update", spy)
    for frame in (history.interactions, events):
        pairs.append([])
        PcoLoop(cfg.pco, resolve_llm(cfg.llm, SPLIT), frame, cats, llms.groups, copy.deepcopy(llms.novelty),
                copy.deepcopy(llms.relevance), n_short=SPLIT.n_short, device="cpu").run()
    (a1, a2), (b1, b2) = pairs
    assert a1 and a1 == b1
    assert a2 != b2
