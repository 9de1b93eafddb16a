"""A log whose users have 5-8 events: ``coea evaluate`` with the default SFT windows (they follow the split)
trains both LLMs on a non-trivial number of examples. The config sets only data, the split (a 2-event future
leaves such users a history) and the model size/epochs, never the SFT windows."""

import json

import numpy as np
import pandas as pd

from coea.config import SyntheticConfig
from coea.data.synthetic import generate_synthetic
from tests.helpers import coea

CONFIG = """data: {{spec: "parquet:{path}"}}
split: {{n_future: 2, min_history: 2}}
dsie:
  encoder: {{dim: 16, epochs: 3}}
  rqvae: {{epochs: 20}}
  group: {{min_group_size: 5}}
llm:
  model: {{hidden_size: 32, intermediate_size: 64}}
  novelty: {{epochs: 1}}
  relevance: {{epochs: 1}}
"""


def short_log(n_users: int = 150, seed: int = 0) -> pd.DataFrame:
    """Synthetic events, each user's first 5-8 (seeded) kept."""
    syn = SyntheticConfig(seed=5, n_users=n_users, n_categories=20, n_groups=4, items_per_category=8,
                          mean_interactions=7, min_interactions=5)
    log = generate_synthetic(syn).interactions
    keep = dict(zip(sorted(log.user_id.unique()), np.random.default_rng(seed).integers(5, 9, size=n_users),
                    strict=True))
    return log[log.groupby("user_id").cumcount() < log.user_id.map(keep)]


def test_short_histories_train_both_llms(tmp_path):
    log = short_log()
    sizes = log.groupby("user_id").size()
    assert sizes.between(5, 8).all() and sizes.nunique() == 4
    log.to_parquet(tmp_path / "log.parquet", index=False)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG.format(path=tmp_path / "log.parquet"))
    out = tmp_path / "run"
    res = coea("evaluate", "--config", str(cfg), "--out", str(out), "--methods", "markov+x,nllm_sft+x,dual_best_of_n")
    assert res.returncode == 0, res.stderr
    sft = {m: json.loads((out / "llm" / f"sft_metrics_{m}.json").read_text()) for m in ("novelty", "relevance")}
    users = log.user_id.nunique()
    assert sft["novelty"]["novelty"]["examples"] >= users  # >= 1 N-LLM example per user on average
    assert sft["relevance"]["relevance"]["examples"] > 0.3 * users
    # the default prompt sections on 5-8-event histories: one warning naming them and the fix
    assert res.stderr.count("the warm users' histories have a median of") == 1, res.stderr
    assert "prompt shows llm.data.items=50" in res.stderr and "--config short" in res.stderr
    data = sft["novelty"]["config"]["data"]  # the resolved windows: the split's n_short and n_future
    assert (data["min_prefix"], data["horizon"], data["novelty_horizon"], data["n_short"]) == (10, 4, 2, 10)
    metrics = json.loads((out / "metrics.json").read_text())
    assert "nllm_sft+x" in json.dumps(metrics)


def test_the_short_preset_runs_a_5_to_8_event_log_with_every_user_warm_and_a_distill_update_in_every_pco_round(
        tmp_path):
    """``--config short`` (the packaged preset, only ``--data`` added) on the 5-8-event log: every user is scored
    (none cold-start), without the cold-start warning; every PCO round (the preset's ``distil`` teacher with the
    ``distill`` update, session 46) prompts every user, reads every category each has not seen and fits the N-LLM to
    the teacher's target (no pairs), which moves it; the served method (``SERVED_METHOD``) is evaluated. The default
    split leaves most of these users cold-start, and says so."""
    from coea.config import SERVED_METHOD, SplitConfig, load_run_config, preset_path
    from coea.data.split import chronological_split, cold_start_warning

    log = short_log()
    assert cold_start_warning(chronological_split(log, SplitConfig())) is not None  # the defaults: most users cold
    log.to_parquet(tmp_path / "log.parquet", index=False)
    out = tmp_path / "run"
    res = coea("evaluate", "--config", "short", "--data", f"parquet:{tmp_path / 'log.parquet'}", "--out", str(out),
               "--methods", f"markov+x,{SERVED_METHOD}")
    assert res.returncode == 0, res.stderr
    assert "scored as cold-start" not in res.stderr and "prompted users have events" not in res.stderr
    assert "histories have a median of" not in res.stderr  # the preset turns the sections off
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["protocol"]["cold_start_users"] == 0
    assert metrics["protocol"]["evaluated_users"] == log.user_id.nunique()
    assert SERVED_METHOD in metrics["methods"]
    pco_metrics = json.loads((out / "pco" / "pco_metrics.json").read_text())
    rounds = pco_metrics["rounds"][1:]
    assert pco_metrics["k"] == load_run_config(preset_path("short")).pco.k  # the report's "K = ..." reads it
    n_cats = log.category.nunique()
    assert len(rounds) == 3 and all(r["prompts"] == log.user_id.nunique() and r["pairs"] == 0 for r in rounds)
    assert all(r["prompts"] * (n_cats - 8) <= r["candidates"] < r["prompts"] * n_cats for r in rounds)  # all unseen
    assert all(r["dpo_steps"] > 0 and r["distill_kl"] > 0 for r in rounds)
    assert all(r["kl_sft"] > 0 for r in rounds)
