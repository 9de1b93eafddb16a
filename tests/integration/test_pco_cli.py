"""coea ablate / pco / evaluate --from-run through the CLI on tiny synthetic data."""

import json

from tests.integration.test_cli import coea

CONFIG = """synthetic: {n_users: 60, n_categories: 14, n_groups: 3, mean_interactions: 40}
dsie:
  encoder: {dim: 16, epochs: 3}
  rqvae: {epochs: 20}
  group: {min_group_size: 5}
llm:
  model: {hidden_size: 32, intermediate_size: 64}
  novelty: {epochs: 2, batch_size: 16, lr: 0.005}
  relevance: {epochs: 2, batch_size: 16, lr: 0.005}
  best_of_n: 6
pco:
  rounds: 2
  users_per_round: 30
  candidates: 4
  margin: 0.0
  relevance_refresh: {max_examples: 100}
"""


def test_ablate_then_evaluate_from_run(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG)
    out = tmp_path / "ablate"
    res = coea("ablate", "--config", str(cfg), "--out", str(out), "--prompt-variants")
    assert res.returncode == 0, res.stderr
    data = json.loads((out / "ablate.json").read_text())
    names = set(data["variants"])
    assert {"coea", "coea w/o KL", "coea w/o CSID", "coea alpha=0.1", "coea alpha=0.6", "coea + full CSID",
            "coea + long-term summary"} == names
    for name, slug, word in (("coea + full CSID", "coea_full_csid", "user:"),
                             ("coea + long-term summary", "coea_long_term_summary", "long:")):  # own SFT and prompts
        assert word in (out / "variants" / f"{slug}_llm" / "novelty" / "tokenizer.json").read_text()
        assert data["variants"][name][0] != data["variants"]["coea"][0]
    for rows in data["variants"].values():
        assert [r["round"] for r in rows] == [0, 1, 2] and all("NCP" in r and "C-H" in r for r in rows)
    # w/o CSID trains its own SFT models: its round 0 differs from the others' shared round 0
    assert data["variants"]["coea w/o KL"][0] == data["variants"]["coea"][0]
    assert data["variants"]["coea w/o CSID"][0] != data["variants"]["coea"][0]
    assert 0.0 <= data["simulated_acceptance"]["coea"] <= 1.0 and "nllm_sft" in data["simulated_acceptance"]
    assert {"pop_novel", "markov+x", "nllm_sft", "dual_best_of_n"} <= set(data["baselines"])
    paired = data["paired_ci"]  # default reference: the novelty-excluding baseline with the best S-H@K
    novel = {m: v for m, v in data["baselines"].items() if m.endswith(("+x", "_novel"))}
    assert paired["reference"] == max(novel, key=lambda m: novel[m][f"S-H@{data['k']}"])
    assert paired["metrics"] == ["S-H", "C-H", "x_S-H"] and paired["k"] == data["k"]
    assert set(paired["methods"]) == names | {"coea w/o R-LLM (= nllm_sft, round 0)"} | (
        set(data["baselines"]) - {paired["reference"]})
    k, ref = data["k"], data["baselines"][paired["reference"]]
    for name in names:  # the final round's figures of the split's evaluated users minus the reference's
        last, ci = data["variants"][name][-1], paired["methods"][name]
        assert abs(ci[f"S-H@{k}"]["diff"] - (last["S-H"] - ref[f"S-H@{k}"])) < 1e-9
        assert abs(ci[f"x_S-H@{k}"]["diff"] - (last["x_S-H"] - ref[f"S-H@{k}"])) < 1e-9
        assert ci[f"C-H@{k}"]["low"] <= ci[f"C-H@{k}"]["diff"] <= ci[f"C-H@{k}"]["high"]
    md = (out / "ablate.md").read_text()
    assert "coea w/o R-LLM" in md and "| coea w/o CSID |" in md
    assert f"## Paired difference vs {paired['reference']} (95 % bootstrap CI over" in md
    assert (out / "ablate.png").stat().st_size > 1000

    ev = tmp_path / "eval"
    res = coea("evaluate", "--from-run", str(out), "--methods", "coea,coea+x,nllm_sft", "--k", "10",
               "--out", str(ev))  # the run's own config.json is used
    assert res.returncode == 0, res.stderr
    metrics = json.loads((ev / "metrics.json").read_text())["methods"]
    last = data["variants"]["coea"][-1]
    assert abs(metrics["coea"]["NCP@10"] - last["NCP"]) < 1e-9  # the very models of the ablation's last round
    assert abs(metrics["coea"]["C-H@10"] - last["C-H"]) < 1e-9


def test_pco_resume_without_state_fails_cleanly(tmp_path):
    for part in ("data", "dsie", "llm"):
        (tmp_path / part).mkdir()
    res = coea("pco", "--run", str(tmp_path), "--resume")
    assert res.returncode == 2 and "nothing to resume" in res.stderr
    assert not (tmp_path / "pco").exists()
