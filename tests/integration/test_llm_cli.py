"""group -> train-llms -> recommend-llm through the CLI on tiny synthetic data."""

import json

import pandas as pd

from tests.integration.test_cli import coea

CONFIG = """synthetic: {n_users: 60, n_categories: 14, n_groups: 3, mean_interactions: 40}
dsie:
  encoder: {dim: 16, epochs: 3}
  rqvae: {epochs: 20}
  group: {min_group_size: 5}
llm:
  model: {hidden_size: 32, intermediate_size: 64}
  novelty: {epochs: 2, batch_size: 16, lr: 0.005, logging_steps: 2}
  relevance: {epochs: 1, batch_size: 32}
  best_of_n: 6
"""


def test_train_and_recommend(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG)
    groups, models = tmp_path / "groups", tmp_path / "models"
    assert coea("group", "--config", str(cfg), "--out", str(groups)).returncode == 0
    res = coea("train-llms", "--config", str(cfg), "--groups", str(groups), "--out", str(models))
    assert res.returncode == 0, res.stderr
    sft = json.loads((models / "sft_metrics.json").read_text())
    assert sft["novelty"]["last_loss"] < sft["novelty"]["first_loss"]
    assert sft["relevance"]["examples"] > 0
    data = pd.read_parquet(groups / "groups.parquet")
    for method in ("nllm_sft+x", "dual_best_of_n"):
        out = tmp_path / f"{method}.parquet"
        res = coea("recommend-llm", "--config", str(cfg), "--groups", str(groups), "--models", str(models),
                   "--method", method, "--k", "5", "--out", str(out))
        assert res.returncode == 0, res.stderr
        recs = pd.read_parquet(out)
        # a user who has seen every category gets nothing from the +x view; everyone else gets a list
        assert set(recs.user_id) <= set(data.user_id) and recs.user_id.nunique() >= 0.8 * len(data)
        assert not recs.duplicated(["user_id", "category"]).any()
        assert recs.groupby("user_id")["rank"].max().max() <= 5
    res = coea("recommend-llm", "--config", str(cfg), "--groups", str(groups), "--models", str(models),
               "--method", "pop", "--out", str(tmp_path / "x.parquet"))
    assert res.returncode == 2 and "not an LLM method" in res.stderr
