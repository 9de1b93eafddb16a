"""The serving stage (run_recommend) on full histories for every method, and users the groups do not know."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from coea.data.prepared import read_prepared
from coea.dsie.groups import complete_assignment, largest_group
from coea.evaluation.registry import METHODS
from coea.layout import ArtifactDirs
from coea.stages import run_pco_stage, run_recommend

K = 5


@pytest.fixture(scope="module")
def dirs(fitted, llm_dirs, tmp_path_factory) -> ArtifactDirs:
    """DSIE, both SFT models and a 1-round PCO dir on the tiny log (8 users' prompts, its metrics on 8 users: what
    is served from it does not depend on the round's size)."""
    cfg = replace(fitted.cfg, pco=replace(fitted.cfg.pco, rounds=1, users_per_round=8),
                  eval=replace(fitted.cfg.eval, round_users=8))
    llm = (llm_dirs["novelty"], llm_dirs["relevance"])
    pco = run_pco_stage(cfg, fitted.data, fitted.dsie, llm, tmp_path_factory.mktemp("pco") / "pco").out_dir
    return ArtifactDirs(dsie=fitted.dsie, llm=llm, pco=pco)


@pytest.mark.parametrize("method", [m for base in sorted(METHODS) for m in (base, f"{base}+x")])
def test_every_method_serves_k_finite_categories_to_every_user(method: str, tmp_path: Path, fitted, dirs) -> None:
    """K rows per user of the whole log (nothing held out), finite scores, best first; +x never repeats a
    category of the user's full log."""
    result = run_recommend(fitted.cfg, fitted.data, dirs, method, K, tmp_path / "recs.parquet")
    recs = pd.read_parquet(result.path)
    log = read_prepared(fitted.data).interactions
    assert result.n_users == log["user_id"].nunique() == 120 and result.short_users == 0
    assert (recs.groupby("user_id").size() == K).all()
    assert np.isfinite(recs["score"]).all()
    assert (recs.groupby("user_id")["score"].diff().dropna() <= 1e-12).all()  # best first
    if method.endswith("+x") or method.endswith("_novel"):
        seen = set(zip(log["user_id"], log["category"], strict=True))  # the FULL log, last events included
        assert not any((u, c) in seen for u, c in zip(recs["user_id"], recs["category"], strict=True))


def test_users_unknown_to_the_groups_get_the_cold_start_group_not_the_first() -> None:
    groups = pd.DataFrame({"user_id": ["a", "b", "c", "d"], "csid": ["0-0-0", "0-0-1", "1-1-0", "1-1-1"],
                           "group_id": ["0-0", "0-0", "1-1", "1-1"], "cold_start": [False] * 4})
    events = pd.DataFrame({"user_id": ["a", "b", "c", "d"], "category": ["x", "x", "y", "y"]})
    short = {"a": ["x"], "b": ["x"], "c": ["y"], "d": ["y"], "new": ["y"], "blank": []}
    out = complete_assignment(groups, events, short, ["x", "y"])
    assert out["new"] == "1-1"  # nearest group by its short-term categories (the first group is 0-0)
    assert out["blank"] == "0-0"  # nothing to go on: the largest group (tie: first by count order)
    assert {u: out[u] for u in "abcd"} == {"a": "0-0", "b": "0-0", "c": "1-1", "d": "1-1"}


def test_llm_method_prompts_a_new_user_with_the_cold_start_group(fitted, dirs) -> None:
    """Users the groups no longer know (new since DSIE ran) are prompted with the group and profile their
    cold-start assignment gives them, which for some of them is not the groups' first (nor largest) group."""
    from coea.data.split import chronological_split
    from coea.evaluation.registry import build_method, method_context, parse_method
    from coea.llm.prompts import parse_csid
    from coea.stages import load_artifacts

    log = read_prepared(fitted.data).interactions
    hist = chronological_split(log, fitted.cfg.split).histories
    arts = load_artifacts(["nllm_sft"], dirs)
    groups = arts.dsie.groups
    first = str(groups["group_id"].iloc[0])
    others = [str(u) for u, g in zip(groups["user_id"], groups["group_id"], strict=True) if str(g) != first]
    dropped = others[-12:]  # users of the other groups that the groups no longer know
    arts.dsie.groups = groups[~groups["user_id"].astype(str).isin(dropped)]
    method = build_method(parse_method("nllm_sft"), method_context(fitted.cfg, arts)).fit(hist)
    expected = complete_assignment(arts.dsie.groups, hist.interactions, hist.short_term, hist.categories)
    elsewhere = [u for u in dropped if expected[u] not in (first, largest_group(arts.dsie.groups))]
    assert elsewhere, "some dropped users are assigned to another group than the first and the largest"
    profiles = {g: str(p.get("profile", "")) for g, p in arts.dsie.profiles.items()}
    for user, context in zip(dropped, method.contexts(dropped), strict=True):
        assert (context.csid, context.profile) == (parse_csid(expected[user]), profiles[expected[user]]), user
    assert np.isfinite(method.score(dropped)).all()
    # a user with no history event at all (e.g. every event held out): the largest group, empty short-term set
    ghost = method.contexts(["nobody"])[0]
    assert ghost.short_term == () and ghost.csid == parse_csid(largest_group(arts.dsie.groups))


@pytest.mark.parametrize("method", ["pop_novel", "sasrec+x", "coea_seq+x", "pop"])
def test_a_later_period_excludes_earlier_periods_categories_and_keeps_the_lists_of_inactive_users(
        method: str, tmp_path: Path, fitted, dirs) -> None:
    """The recurring pipeline's log is one period. ``seen`` (earlier periods' pairs) is excluded by a +x list as
    the period's own categories are, and the users of ``served`` with no event in the period keep their lists,
    cut to the top K (before: +x excluded the period's categories only, and each publish dropped every inactive
    user)."""
    from coea.data.loaders import LoadedData
    from coea.data.prepared import write_prepared

    log = read_prepared(fitted.data).interactions
    users = sorted(log["user_id"].unique())
    active, inactive = users[:80], users[80:]
    period = tmp_path / "period"
    later = log[log["user_id"].isin(active)].groupby("user_id").tail(10).reset_index(drop=True)
    write_prepared(LoadedData(later, "the later period"), period, {})
    mine = set(later.loc[later["user_id"] == active[0], "category"])
    popular = [c for c in log["category"].value_counts().index if c not in mine][:3]  # what every method ranks high
    earlier = pd.DataFrame({"user_id": [active[0]] * 3, "category": popular})
    earlier.to_parquet(tmp_path / "seen_before.parquet", index=False)
    longer = K + 2  # a list served under a larger K: only its top K is kept
    served = pd.DataFrame({"user_id": [inactive[0]] * longer + [active[1]], "rank": [*range(1, longer + 1), 1],
                           "category": [f"x{r}" for r in range(1, longer + 1)] + ["z"],
                           "score": [float(longer - r) for r in range(longer)] + [3.0]})
    served.to_parquet(tmp_path / "served.parquet", index=False)
    result = run_recommend(fitted.cfg, period, dirs, method, K, tmp_path / "recs.parquet",
                           seen=tmp_path / "seen_before.parquet", served=tmp_path / "served.parquet",
                           seen_out=tmp_path / "seen.parquet")
    recs = pd.read_parquet(result.path)
    now = read_prepared(period).interactions
    seen = pd.read_parquet(tmp_path / "seen.parquet")
    pairs = set(zip(now["user_id"], now["category"], strict=True)) | set(zip(earlier["user_id"],
                                                                              earlier["category"], strict=True))
    assert set(zip(seen["user_id"], seen["category"], strict=True)) == pairs and len(seen) == len(pairs)
    kept = recs[recs["user_id"] == inactive[0]]
    assert kept[["rank", "category"]].values.tolist() == [[r, f"x{r}"] for r in range(1, K + 1)]
    assert result.kept_users == 1
    assert "z" not in set(recs["category"])  # an active user gets a new list, not the served one
    assert set(recs["user_id"]) == set(now["user_id"]) | {inactive[0]}
    assert result.n_users == len(set(now["user_id"])) + 1
    fresh = recs[recs["user_id"] != inactive[0]]
    assert (fresh.groupby("user_id").size() == K).all()
    hits = [(u, c) in pairs for u, c in zip(fresh["user_id"], fresh["category"], strict=True)]
    if method.endswith("+x") or method.endswith("_novel"):
        assert not any(hits)
    else:
        assert any(hits)  # plain pop repeats seen categories: the exclusion belongs to +x only
