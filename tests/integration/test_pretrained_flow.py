"""The whole flow on a local pretrained base with LoRA (``llm.model.base_model``, the `gpu` path with a Qwen2.5
directory), through the CLI: ``coea evaluate`` trains DSIE, both SFTs, a PCO round, scores the methods, then
``coea serve`` reloads the round's adapter. The base is a tiny randomly initialised Llama with a word-level
tokenizer (no model can be downloaded here); what it checks is that every stage runs on a peft model and saves
and reloads adapters, not what a real base learns. Before session 58 no test ran PCO on a LoRA model, and its
DPO update failed on every round."""

from __future__ import annotations

import json

import pandas as pd

from coea.data.synthetic import category_names
from tests.helpers import coea, tiny_causal_lm

N_CATEGORIES = 14
CONFIG = """synthetic: {{n_users: 60, n_categories: {n}, n_groups: 3, mean_interactions: 40}}
dsie:
  encoder: {{dim: 16, epochs: 3}}
  rqvae: {{epochs: 20}}
  group: {{min_group_size: 5}}
llm:
  model: {{base_model: {base}, lora_r: 4}}
  novelty: {{epochs: 1, batch_size: 16, max_examples: 200}}
  relevance: {{epochs: 1, batch_size: 32, max_examples: 200}}
  best_of_n: 4
pco: {{rounds: 1, users_per_round: 20, candidates: 4}}
eval: {{methods: [nllm_sft+x, coea+x, coea_seq+x, sasrec+x]}}
"""


def test_evaluate_and_serve_train_and_reload_lora_adapters_on_a_local_base(tmp_path):
    words = [w for c in category_names(N_CATEGORIES) for w in c.split()] + ["yes", "no"]
    base = tiny_causal_lm(tmp_path / "base", words)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG.format(n=N_CATEGORIES, base=base))
    run = tmp_path / "run"
    res = coea("evaluate", "--config", str(cfg), "--out", str(run))
    assert res.returncode == 0, res.stderr
    for model in ("novelty", "relevance"):  # adapters saved, not copies of the base
        assert (run / "llm" / model / "adapter_model.safetensors").is_file()
        assert not (run / "llm" / model / "model.safetensors").exists()
    rounds = json.loads((run / "pco" / "pco_metrics.json").read_text())["rounds"]
    assert [r["round"] for r in rounds] == [0, 1] and rounds[1]["dpo_steps"] > 0
    tuned = run / "pco" / "rounds" / "round_001" / "novelty" / "adapter_model.safetensors"
    assert tuned.read_bytes() != (run / "llm" / "novelty" / "adapter_model.safetensors").read_bytes()
    methods = json.loads((run / "metrics.json").read_text())["methods"]
    assert set(methods) == {"nllm_sft+x", "coea+x", "coea_seq+x", "sasrec+x"}
    out = tmp_path / "served.parquet"
    res = coea("serve", "--config", str(cfg), "--run", str(run), "--method", "coea+x", "--k", "3", "--out", str(out))
    assert res.returncode == 0, res.stderr
    log, recs = pd.read_parquet(run / "data" / "interactions.parquet"), pd.read_parquet(out)
    allowed = {u: N_CATEGORIES - len(c) for u, c in log.groupby("user_id").category.apply(set).items()}
    sizes = recs.groupby("user_id").size()
    assert {u: int(sizes.get(u, 0)) for u in allowed} == {u: min(3, n) for u, n in allowed.items()}
    seen = set(zip(log.user_id, log.category, strict=True))
    assert not any((u, c) in seen for u, c in zip(recs.user_id, recs.category, strict=True))
