"""group -> train-llms -> serve through the CLI on tiny synthetic data."""

import json

import pandas as pd

from tests.helpers import coea

CONFIG = """synthetic: {n_users: 60, n_categories: 14, n_groups: 3, mean_interactions: 40}
dsie:
  encoder: {dim: 16, epochs: 3}
  rqvae: {epochs: 20}
  group: {min_group_size: 5}
llm:
  model: {hidden_size: 32, intermediate_size: 64}
  novelty: {epochs: 2, batch_size: 16, lr: 0.005, logging_steps: 2, max_examples: 300}
  relevance: {epochs: 1, batch_size: 32, max_examples: 300}
  best_of_n: 6
"""  # SFT on at most 300 examples each: the test follows the artifacts through the commands


def test_group_train_and_serve(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG)
    run = tmp_path / "run"
    assert coea("group", "--config", str(cfg), "--out", str(run)).returncode == 0
    res = coea("train-llms", "--config", str(cfg), "--run", str(run), "--device", "auto")
    assert res.returncode == 0, res.stderr
    sft = {m: json.loads((run / "llm" / f"sft_metrics_{m}.json").read_text())[m] for m in ("novelty", "relevance")}
    assert sft["novelty"]["last_loss"] < sft["novelty"]["first_loss"]
    assert sft["relevance"]["examples"] > 0
    # examples held out of the R-LLM's SFT (a tenth of them here, under the 2,000 default) and its AUC on them
    assert sft["relevance"]["heldout_examples"] > 0
    assert 0.0 <= sft["relevance"]["heldout_auc"] <= 1.0
    log = pd.read_parquet(run / "data" / "interactions.parquet")
    seen = set(zip(log.user_id, log.category, strict=True))
    for method in ("nllm_sft+x", "dual_best_of_n+x", "sasrec"):
        out = tmp_path / f"{method}.parquet"
        res = coea("serve", "--config", str(cfg), "--run", str(run), "--method", method, "--k", "5", "--out", str(out))
        assert res.returncode == 0, res.stderr
        recs = pd.read_parquet(out)
        # every user of the whole log (nothing held out) gets 5 distinct categories, or every allowed one when
        # fewer than 5 are left (+x: a user who has seen all but 2 categories gets those 2)
        n_cat = log.category.nunique()
        allowed = {u: n_cat - len(cats) if method.endswith("+x") else n_cat
                   for u, cats in log.groupby("user_id").category.apply(set).items()}
        sizes = recs.groupby("user_id").size()
        assert {u: int(sizes.get(u, 0)) for u in allowed} == {u: min(5, n) for u, n in allowed.items()}
        assert not recs.duplicated(["user_id", "category"]).any()
        if method.endswith("+x"):
            assert not any((u, c) in seen for u, c in zip(recs.user_id, recs.category, strict=True))
    res = coea("serve", "--config", str(cfg), "--run", str(run), "--method", "coea+x", "--out", str(tmp_path / "x"))
    assert res.returncode == 2 and "need the pco artifact" in res.stderr
    other = tmp_path / "long.yaml"  # the models were trained without the long-term section: refused, not misread
    other.write_text(CONFIG.replace("  best_of_n: 6\n", "  best_of_n: 6\n  data: {long_term: 3}\n"))
    res = coea("serve", "--config", str(other), "--run", str(run), "--method", "nllm_sft+x", "--out",
               str(tmp_path / "y.parquet"))
    assert res.returncode == 2 and "trained with prompt option(s) long_term: 0" in res.stderr, res.stderr
    assert not (tmp_path / "y.parquet").exists()
    res = coea("train-llms", "--run", str(tmp_path / "nothing"))
    assert res.returncode == 2 and "not a run folder: it does not exist" in res.stderr
    (tmp_path / "empty").mkdir()
    res = coea("train-llms", "--run", str(tmp_path / "empty"))
    assert res.returncode == 2 and "not a run folder: it holds no data/, dsie/" in res.stderr  # not 'run group'
    (tmp_path / "empty" / "dsie").mkdir()  # a run's part but no data/: the stage that writes it is named
    res = coea("train-llms", "--run", str(tmp_path / "empty"))
    assert res.returncode == 2 and "no data/ directory" in res.stderr and "coea group --out" in res.stderr
    # --only relevance re-trains the R-LLM from the N-LLM in RUN/llm (llm.relevance_init: novelty), N-LLM untouched
    novelty_bytes = (run / "llm" / "novelty" / "model.safetensors").read_bytes()
    warm = tmp_path / "warm.yaml"
    warm.write_text(CONFIG + "  relevance_init: novelty\n")
    res = coea("train-llms", "--config", str(warm), "--run", str(run), "--only", "relevance")
    assert res.returncode == 0, res.stderr
    assert (run / "llm" / "novelty" / "model.safetensors").read_bytes() == novelty_bytes
    assert json.loads((run / "llm" / "sft_metrics_relevance.json").read_text())["config"]["relevance_init"] == "novelty"
    res = coea("train-llms", "--run", str(run), "--only", "critic")
    assert res.returncode == 2 and "--only" in res.stderr and "novelty, relevance" in res.stderr
    # continuing the run's own N-LLM as a LoRA base would save the adapter over the base it reloads from: refused
    # before any training, the N-LLM untouched (with lora: false it continues every weight, test_llm_models)
    lora = tmp_path / "lora.yaml"
    lora.write_text(CONFIG.replace("  model: {hidden_size: 32, intermediate_size: 64}\n",
                                   f"  model: {{base_model: {run / 'llm' / 'novelty'}, lora: true}}\n"))
    res = coea("train-llms", "--config", str(lora), "--run", str(run), "--only", "novelty")
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert res.returncode == 2 and len(errors) == 1, res.stderr
    assert "adapter would be saved over its own base model" in errors[0] and "lora: false" in errors[0]
    assert (run / "llm" / "novelty" / "model.safetensors").read_bytes() == novelty_bytes
