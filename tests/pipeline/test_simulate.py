"""``coea simulate`` end to end: period 0 seeds the state (groups and SFT models), periods 1-3 each run
coea_recurring with kfp.local (PCO update of the state's models, coea_seq+x served); the synthetic log carries a
lasting interest shift from period 2 on, and only that period regroups."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from coea.config import SERVED_METHOD, EvalConfig, SplitConfig, SyntheticConfig
from coea.pco.config import PcoConfig
from coea.state import read_pointer
from pipelines.simulate import run_simulate
from tests.pipeline.pipeline_helpers import BASELINES, tiny_config

pytestmark = pytest.mark.slow

SHIFT = 2


def test_simulate_regroups_in_the_shifted_period_only(tmp_path: Path) -> None:
    # 250 users over 12 categories, few new categories per user (explore_rate 0.05): windows of ~2,500 events
    # where same-taste periods stay far below the threshold and the shifted one far above (unit-tested too)
    synthetic = SyntheticConfig(seed=3, n_users=250, n_categories=12, n_groups=4, items_per_category=8,
                                mean_interactions=40, min_interactions=25, explore_rate=0.05,
                                shift_period=SHIFT, shift_periods=4)
    cfg = tiny_config(synthetic=synthetic, split=SplitConfig(n_future=3, min_history=3),
                      eval=EvalConfig(methods=BASELINES, ks=[5]),  # coea_seq+x, the served method, is added
                      pco=PcoConfig(rounds=1, users_per_round=40, candidates=4))
    result = run_simulate(cfg, tmp_path / "sim", periods=4, rec_k=5)
    assert result.method == SERVED_METHOD

    rows = result.periods
    assert [p.index for p in rows] == [0, 1, 2, 3]
    assert [p.regrouped for p in rows] == [True, False, True, False]  # seed, keep, REGROUP, keep
    assert [p.drifted for p in rows] == [None, False, True, False]
    assert result.regrouped_periods == [SHIFT]
    shares = [p.drift_share for p in rows[1:]]
    assert shares[SHIFT - 1] >= 0.5 > max(s for i, s in enumerate(shares) if i != SHIFT - 1)
    assert all(rows[i].end == rows[i + 1].start for i in range(3)) and sum(p.events for p in rows) > 9000
    for p in rows:  # every period was evaluated; the *_novel and +x methods never recommend a seen category
        assert p.metrics["group_pop_novel.NCP@5"] > 0.99 and 0.0 < p.metrics["group_pop_novel.C-H@5"] <= 1.0
        assert p.metrics[f"{SERVED_METHOD}.NCP@5"] > 0.99 and 0.0 <= p.metrics[f"{SERVED_METHOD}.C-H@5"] <= 1.0
        assert set(p.metrics) >= {f"{m}.S-H@5" for m in [*BASELINES, SERVED_METHOD]}
    # the seed saved the SFT models; every later period ran PCO from the state's models and saved a new version
    assert len({p.models for p in rows}) == 4
    assert (rows[0].run_dir / "llm" / "novelty").is_dir()
    served = [pd.read_parquet(rows[0].run_dir / "recommendations.parquet")]  # the seed served, like training
    for p in rows[1:]:
        (run,) = [d for d in (p.run_dir / "kfp").iterdir() if d.is_dir()]
        (pco,) = [d for d in run.iterdir() if d.name.startswith("pco-loop")]
        assert (pco / "model" / "rounds" / "round_001" / "novelty").is_dir()
        # PCO was handed what the previous period served: the users' exposure during this one
        shown = pd.read_parquet(run / "load-state" / "served")
        key = ["user_id", "rank"]
        assert shown.sort_values(key).reset_index(drop=True)[["user_id", "rank", "category"]].equals(
            served[-1].sort_values(key).reset_index(drop=True)[["user_id", "rank", "category"]].astype(
                {"user_id": str}))
        (recommend,) = [d for d in run.iterdir() if d.name.startswith("recommend")]
        served.append(pd.read_parquet(recommend / "recommendations"))
        # a served +x list never holds a category the user had in ANY period so far (not only this one), and
        # nobody served before is dropped: a user with no event in the period keeps their list
        logs = pd.concat([pd.read_parquet(q.run_dir / "interactions.parquet") for q in rows[:p.index + 1]])
        had = set(zip(logs["user_id"].astype(str), logs["category"].astype(str), strict=True))
        now = served[-1].astype({"user_id": str})
        assert not any((u, c) in had for u, c in zip(now["user_id"], now["category"], strict=True))
        explored_all = {u for u, n in logs.groupby("user_id")["category"].nunique().items()
                        if n == logs["category"].nunique()}  # no category left to recommend: no list
        assert set(now["user_id"]) == (set(served[-2]["user_id"].astype(str))
                                       | set(logs["user_id"].astype(str))) - {str(u) for u in explored_all}
        saved = "save-state" if p.regrouped else "save-models"  # new groups switch with their models
        assert (run / "load-models").is_dir() and any(d.name.startswith(saved) for d in run.iterdir())

    # the state's reference window is the shifted period, grouped there; nothing after replaced it
    state = result.paths["state"]
    pointer = read_pointer(str(state))
    assert pointer is not None and pointer["snapshot"] == rows[SHIFT].snapshot == rows[3].snapshot
    assert pointer["models"]["snapshot"] == rows[3].models
    assert rows[1].snapshot == rows[0].snapshot != rows[SHIFT].snapshot
    reference = pd.read_parquet(state / "snapshots" / pointer["snapshot"] / "data" / "interactions.parquet")
    assert reference.equals(pd.read_parquet(rows[SHIFT].run_dir / "interactions.parquet"))

    saved = json.loads(result.paths["json"].read_text())
    assert saved["regrouped_periods"] == [SHIFT] and [r["regrouped"] for r in saved["periods"]] == [
        True, False, True, False]
    assert saved["config"]["synthetic"]["shift_period"] == SHIFT
    table = result.paths["table"].read_text()
    (regrouped_row,) = [line for line in table.splitlines() if "**yes**" in line]
    assert table == result.table() and regrouped_row.startswith(f"| {SHIFT} |") and f"{SERVED_METHOD} S-H@5" in table
    assert "-" not in regrouped_row.split("|")[-2]  # the served method's metrics are there
    assert all((p.run_dir / "drift_report.html").stat().st_size > 10_000 for p in rows[1:])
    # every period folder is a run folder with its report: what it served, its metrics, plots, PCO rounds and (for
    # a later period) its drift check; the copies under kfp/ are not shown again
    for p in rows:
        page = (p.run_dir / "report.html").read_text()
        assert f"<td>{SERVED_METHOD}</td>" in page and '<table id="metrics-table">' in page
        assert 'id="pco-table"' in page and "<figcaption>metrics_at_5.png</figcaption>" in page
        assert ('<section id="drift">' in page) == (p.index > 0)
        # no kfp/ path shown (outside the inline images, whose base64 text can spell "kfp/" by chance)
        assert "kfp/" not in re.sub(r"data:[a-z/+]+;base64,[A-Za-z0-9+/=]+", "", page)
    assert json.loads((rows[SHIFT].run_dir / "drift.json").read_text())["drift_share"] == rows[SHIFT].drift_share
    # the state's record of what users have seen covers every period
    every = pd.concat([pd.read_parquet(p.run_dir / "interactions.parquet") for p in rows])
    seen = pd.read_parquet(state / "seen.parquet")
    assert set(zip(seen["user_id"], seen["category"], strict=True)) == set(zip(
        every["user_id"].astype(str), every["category"].astype(str), strict=True))
