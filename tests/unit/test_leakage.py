"""The leakage rule: nothing a method uses is computed from the interactions it is scored on.

Fit every baseline, move every future interaction to the log's rarest category (new items, later timestamps:
the future's own events and the log's global category and item counts all change), refit: the recommendations
must be identical, for warm and cold-start users alike. A control checks that every method (but ``random``)
reacts to a change of history. The PCO rewards that read logged feedback (``feedback``, ``hybrid``) run the same
test on the CoEA methods, and a control checks that their feedback really is read: changing the last history
period (the last round's feedback period) changes that round's pairs and leaves the earlier round's alone. The
``teacher`` reward (the DSIE encoder ranks the candidates) runs the same test, and so do the fused methods with
the co-occurrence expert (``llm.cooc_weight``).
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
from coea.dsie.config import DsieConfig, EncoderConfig, RqVaeConfig
from coea.evaluation.evaluate import recommend_all
from coea.evaluation.registry import METHODS as REGISTRY
from coea.evaluation.registry import method_context
from coea.flow import run_flow
from coea.layout import RunLayout
from coea.llm.dpo_config import DpoTrainConfig
from coea.llm.sft_config import SftTrainConfig, resolve_llm
from coea.pco import round as round_module
from coea.pco.config import PcoConfig
from coea.pco.loop import PcoLoop
from coea.pco.periods import round_windows
from coea.stages import load_artifacts, load_llms, run_pco_stage
from tests.pipeline.pipeline_helpers import tiny_llm

METHODS = sorted(REGISTRY) + [f"{m}+x" for m in sorted(REGISTRY)]
# coea_dual reads the last round's refreshed R-LLM, coea_seq the encoder beside the tuned N-LLM (audit, session 55:
# only coea itself was checked after the feedback rewards' rounds)
COEA = ["coea", "coea+x", "coea_dual+x", "coea_seq+x"]
SPLIT = SplitConfig(n_future=5, n_short=5, min_history=3)


def _sorted_with_future_mask(df: pd.DataFrame, n_future: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The log in the split's order and, per row, whether it is one of its user's last ``n_future`` events."""
    df = df.sort_values(["user_id", "timestamp", "item_id"], kind="mergesort").reset_index(drop=True)
    return df, (df.groupby("user_id").cumcount(ascending=False) < n_future).to_numpy()


def _move_to_rarest(df: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """``rows`` of ``df`` (in the split's order) moved to the history's rarest category, each user's moved
    events on distinct items of it (an item keeps one category: the loader gives a relabelled item its
    majority category back)."""
    is_future = _sorted_with_future_mask(df, SPLIT.n_future)[1]
    rare = df.loc[~is_future, "category"].value_counts().idxmin()
    items = sorted(df.loc[df["category"] == rare, "item_id"].unique())
    position = df[rows].groupby("user_id").cumcount().to_numpy()
    df.loc[rows, "category"] = rare
    df.loc[rows, "item_id"] = [items[i % len(items)] for i in position]
    return df


def _mutate_future(df: pd.DataFrame, n_future: int, rng: np.random.Generator) -> pd.DataFrame:
    """Move every future event to the history's rarest category and later in time: the future changes, and so
    do the whole log's category and item counts."""
    df, is_future = _sorted_with_future_mask(df, n_future)
    df = _move_to_rarest(df, is_future)
    df.loc[is_future, "timestamp"] = df.loc[is_future, "timestamp"].to_numpy() + rng.integers(1, 1000, is_future.sum())
    return df


def _with_cold_users(df: pd.DataFrame, n_future: int, min_history: int) -> pd.DataFrame:
    """``df`` plus a cold-start user for every history length below ``min_history`` (0 = only future events),
    each a renamed prefix of an existing user's events."""
    users = sorted(df["user_id"].unique())
    cold = [df[df["user_id"] == users[n]].sort_values("timestamp").head(n_future + n).assign(user_id=f"cold_{n}")
            for n in range(min_history)]
    return pd.concat([df, *cold], ignore_index=True)


def _config(root, methods: list[str], reward: str = "serendipity") -> RunConfig:
    llm = tiny_llm()
    llm = replace(llm, novelty=replace(llm.novelty, max_examples=300),
                  relevance=replace(llm.relevance, max_examples=300))
    return replace(RunConfig(), data=DataConfig(spec=f"parquet:{root / 'log.parquet'}"), split=SPLIT, llm=llm,
                   dsie=DsieConfig(encoder=EncoderConfig(dim=16, epochs=3), rqvae=RqVaeConfig(epochs=20)),
                   pco=PcoConfig(rounds=2, users_per_round=24, candidates=4, margin=0.0, reward=reward,
                                 dpo=DpoTrainConfig(epochs=1.0),
                                 relevance_refresh=SftTrainConfig(lr=1e-3, max_examples=100, warmup_ratio=0.0)),
                   # PCO's per-round metrics (reported, never acted on: test_the_round_metrics_never_steer_the_rounds)
                   # on a sample of 8 users; the tests compare every method's lists for every user
                   eval=EvalConfig(methods=methods, ks=[10], round_users=8), device="cpu")


def _train(df: pd.DataFrame, root, methods: list[str] = METHODS) -> tuple[RunConfig, RunLayout]:
    """The training flow on ``df`` for ``methods`` (a small DSIE, SFT of small LLMs on at most 300 seeded examples
    each, 2 small PCO rounds with the serendipity reward; the rule does not depend on model or data size: DSIE
    inputs, SFT examples, PCO prompts, pairs, feedback and R-LLM refreshes are all cut from histories)."""
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
    return _with_cold_users(generate_synthetic(cfg).interactions, SPLIT.n_future, SPLIT.min_history)


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
    """The training flow on the log and on the log with every future event changed."""
    root = tmp_path_factory.mktemp("leakage")
    mutated = _mutate_future(data, SPLIT.n_future, np.random.default_rng(0))
    return {name: _train(df, root / name) for name, df in (("a", data), ("b", mutated))}


@pytest.fixture(scope="module")
def serendipity_recs(runs):
    """(split, every method's recommendations) of both runs, with the flow's own PCO run."""
    return {name: _recs(cfg, layout, METHODS) for name, (cfg, layout) in runs.items()}


@pytest.mark.parametrize(("reward", "periods", "negatives", "methods"), [
    ("serendipity", "global", "period", METHODS), ("feedback", "global", "period", COEA),
    ("hybrid", "global", "period", COEA), ("feedback", "user", "history", COEA),
    ("teacher", "user", "period", COEA), ("teacher+cooc", "user", "period", COEA),
    ("teacher+distill", "user", "period", COEA), ("relevance+distill", "user", "period", COEA),
    ("feedback+served", "user", "period", COEA)])  # per-user periods: with the served lists as exposure too
def test_changing_every_future_event_leaves_recommendations_identical(runs, serendipity_recs, reward, periods,
                                                                      negatives, methods):
    """Every method (serendipity: the flow's own PCO run), and coea/coea+x after PCO runs with the feedback
    rewards on the same SFT models (global time periods, and ``periods: user``: each user's own history replayed;
    ``negatives: history``: the rest of the history after the feedback period read too, on the continual windows of
    ``llm.data.holdout_share``, with ``takeup: recent`` and, by ``refresh_novelty``'s auto there, the N-LLM's SFT
continued on each period; ``teacher``: pairs ranked by the DSIE encoder after each user's history before the window's
end; ``teacher+cooc``: and by the co-occurrence shares of that history, ``pco.teacher_cooc_weight``;
``teacher+distill``: the N-LLM fitted to the teacher's target over every unseen category, ``pco.update: distill``;
``relevance+distill``: to the R-LLM's log-odds over the N-LLM's top 8 unseen, ``coea ablate``'s ``coea w/o teacher``;
``feedback+served``: with the serving store's lists of before the period as exposure, the recurring pipeline's input),
give identical lists to
    warm and cold-start users when only the evaluation future changed (its events, and with them the whole log's
    category and item counts)."""
    recs, splits = {}, {}
    for name, (cfg, layout) in runs.items():
        if reward == "serendipity":
            splits[name], recs[name] = serendipity_recs[name]
            continue
        pco_dir = layout.root / f"pco_{reward}_{periods}_{negatives}"
        cooc = 1.0 if reward == "teacher+cooc" else 0.0
        distil = ({"update": "distill", "candidates": None if reward.startswith("teacher") else 8, "propose": "top"}
                  if reward.endswith("+distill") else {})
        run_stage_cfg = replace(cfg, pco=replace(cfg.pco, reward=reward.partition("+")[0], periods=periods,
                                                 negatives=negatives, teacher_cooc_weight=cooc, **distil))
        if negatives == "history":  # with the continual windows (the rounds replay the held-out last quarter)
            run_stage_cfg = replace(run_stage_cfg, llm=replace(cfg.llm, data=replace(cfg.llm.data, holdout_share=0.25)),
                                    pco=replace(run_stage_cfg.pco, takeup="recent", feedback_horizon=3))
        served = _served(layout, root=layout.root) if reward.endswith("+served") else None
        run_pco_stage(run_stage_cfg, layout.data, layout.dsie, [layout.llm], pco_dir, served=served)
        rows = json.loads((pco_dir / "pco_metrics.json").read_text())["rounds"]
        if served is not None:  # the served lists were read: exposure joined the candidates
            assert sum(r["feedback_exposed"] for r in rows[1:]) > 0
        if reward in ("feedback", "hybrid"):  # the teacher and the R-LLM rewards read no feedback
            assert all(r["feedback_users"] > 0 and r["onpolicy_examples"] > 0 for r in rows[1:])  # feedback read
        assert all(r["pairs"] > 0 if not distil else r["dpo_steps"] > 0 and r["distill_kl"] > 0 for r in rows[1:])
        assert all((r["novelty_refresh_examples"] > 0) == (negatives == "history") for r in rows[1:])
        splits[name], recs[name] = _recs(cfg, layout, methods, pco_dir)
    a, b = splits["a"], splits["b"]  # the mutation changed the futures and the global counts, not the histories
    assert a.future_categories != b.future_categories and len({c for cs in b.future_categories.values()
                                                                for c in cs}) == 1
    assert a.future["category"].value_counts().to_dict() != b.future["category"].value_counts().to_dict()
    pd.testing.assert_frame_equal(a.histories.interactions, b.histories.interactions)
    assert a.histories.categories == b.histories.categories and a.cold_users == b.cold_users
    assert {"cold_0", "cold_1", "cold_2"} <= set(a.cold_users)
    for name in methods:
        assert len(recs["a"][name]["cold"]) == len(a.cold_users)
        assert recs["a"][name] == recs["b"][name], f"{name} changed when only the future changed: leakage"


def _served(layout: RunLayout, root):
    """What a serving store showed each user before the period: 3 categories each user never had in the history
    (the same file for both runs: their histories are the same), as a recommendations parquet."""
    history = chronological_split(read_prepared(layout.data).interactions, SPLIT).histories
    had = history.user_categories()
    rows = [(u, rank, c, 1.0 / rank) for u in sorted(had)
            for rank, c in enumerate([c for c in history.categories if c not in had[u]][:3], start=1)]
    path = root / "served.parquet"
    pd.DataFrame(rows, columns=["user_id", "rank", "category", "score"]).to_parquet(path, index=False)
    return path


def test_the_profile_refresh_reads_histories_only(runs, tmp_path) -> None:
    """The recurring pipeline's ``build_profiles`` step (the group profiles every prompt shows) rebuilds them from
    the histories of the period: identical for the log and for the log with every future event changed (audit,
    session 55: a refresh that counted the future passed)."""
    from coea.stages import run_build_profiles

    built = {}
    for name, (cfg, layout) in runs.items():
        built[name] = run_build_profiles(cfg, layout.data, layout.dsie, tmp_path / name)
    a, b = ((tmp_path / name / "profiles.json").read_text() for name in ("a", "b"))
    assert built["a"].refreshed and a == b


def test_the_round_metrics_never_steer_the_rounds(runs, monkeypatch) -> None:
    """The per-round evaluation (the only PCO input that holds the evaluation future) is reported, never acted on:
    two loops on the same models whose ``evaluate`` callbacks report opposite trends train on the same pairs and
    end with the same weights (audit, session 55: a loop that kept a round only when it raised x_S-H passed the
    flow-level test, whose tiny rounds never moved it)."""
    import torch

    cfg, layout = runs["a"]
    history = chronological_split(read_prepared(layout.data).interactions, SPLIT).histories
    cats = list(history.categories)
    pairs: list[list] = []
    real = round_module.dpo_update

    def spy(ctx, novelty, round_pairs, dpo_cfg):
        pairs[-1].append([(p.prompt, p.chosen, p.rejected) for p in round_pairs])
        return real(ctx, novelty, round_pairs, dpo_cfg)

    monkeypatch.setattr(round_module, "dpo_update", spy)
    finals = []
    for sign in (1.0, -1.0):
        llms = load_llms([layout.llm], layout.dsie, trainable=True)
        pairs.append([])
        trend = lambda r, novelty, relevance, _s=sign: {"x_S-H": 0.5 + _s * 0.1 * r, "S-H": 0.5 - _s * 0.1 * r}  # noqa: E731
        res = PcoLoop(cfg.pco, resolve_llm(cfg.llm, SPLIT), history.interactions, cats, llms.groups, llms.novelty,
                      llms.relevance, n_short=SPLIT.n_short, device="cpu", evaluate=trend).run()
        finals.append(res.novelty.model.state_dict())
    assert pairs[0] and pairs[0] == pairs[1]
    assert all(torch.equal(finals[0][k], finals[1][k]) for k in finals[0])


def test_control_changing_history_changes_every_method(data, serendipity_recs, tmp_path):
    """The procedure above notices a history change in every method family, the LLM and PCO methods included:
    moving each user's 3 oldest history events to the history's rarest category changes every method's lists
    (but ``random``'s, whose scores ignore history by design; ``random+x`` reacts through the history it
    excludes)."""
    events, is_future = _sorted_with_future_mask(data, SPLIT.n_future)
    oldest = np.zeros(len(events), dtype=bool)
    oldest[events[~is_future].groupby("user_id").head(3).index] = True
    events = _move_to_rarest(events, oldest)
    _, recs_a = serendipity_recs["a"]
    _, recs_changed = _recs(*_train(events, tmp_path / "changed"), METHODS)
    unchanged = [m for m in METHODS if m != "random" and recs_a[m] == recs_changed[m]]
    assert not unchanged, f"these methods ignored a change of history: {unchanged}"


def test_control_changing_the_last_history_period_changes_the_feedback_pairs(runs, monkeypatch):
    """Same SFT models (run a's), two histories that differ only in the last period's categories: round 1 (feedback from
    period 1) trains on the same pairs, round 2 (feedback from the last period) on different ones."""
    cfg, layout = runs["a"]
    cfg = replace(cfg, pco=replace(cfg.pco, reward="feedback"))
    history = chronological_split(read_prepared(layout.data).interactions, SPLIT).histories
    llms = load_llms([layout.llm], layout.dsie, trainable=True)
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


def test_llms_started_from_the_encoders_embeddings_give_identical_lists_when_only_the_future_changed(runs):
    """``llm.model.embedding_init: encoder``: both LLMs start their category and item rows from the DSIE encoder,
    which the flow fitted on histories; retrained that way on the log and on the log with every future event changed,
    the methods that read them list the same categories for every user."""
    from coea.stages import run_sft_stage

    methods = ["nllm_sft", "nllm_sft+x", "dual_best_of_n+x"]
    recs = {}
    for name, (cfg, layout) in runs.items():
        model = replace(cfg.llm.model, embedding_init="encoder")
        ecfg = replace(cfg, llm=replace(cfg.llm, model=model))
        llm_dir = layout.root / "llm_encoder_init"
        run_sft_stage(ecfg, layout.data, layout.dsie, llm_dir)
        split = chronological_split(read_prepared(layout.data).interactions, SPLIT)
        ctx = method_context(ecfg, load_artifacts(methods, replace(layout.artifacts(), llm=(llm_dir,))))
        recs[name] = recommend_all(split, replace(cfg.eval, methods=methods), ctx)
    for method in methods:
        assert recs["a"][method] == recs["b"][method], f"{method} changed when only the future changed: leakage"


def test_the_cooccurrence_expert_gives_identical_lists_when_only_the_future_changed(runs):
    """``llm.cooc_weight`` 1 (the ``short`` preset): ``nllm_seq`` and ``coea_seq`` add the users' co-occurrence shares,
    fitted on the histories; on the log and on the log with every future event changed they list the same categories
    for every user. Control: the expert changes some list (the test would pass vacuously if it were never read)."""
    methods = ["nllm_seq", "nllm_seq+x", "coea_seq+x"]
    recs = {}
    for name, (cfg, layout) in runs.items():
        ccfg = replace(cfg, llm=replace(cfg.llm, cooc_weight=1.0))
        recs[name] = _recs(ccfg, layout, methods)[1]
    for method in methods:
        assert recs["a"][method] == recs["b"][method], f"{method} changed when only the future changed: leakage"
    cfg, layout = runs["a"]
    assert _recs(cfg, layout, methods)[1]["nllm_seq+x"] != recs["a"]["nllm_seq+x"]
