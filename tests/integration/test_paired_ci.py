"""``coea evaluate``'s paired bootstrap CIs (metrics.json ``paired_ci``, metrics.md's second table), synthetic data."""

import json

from coea.evaluation.paired import choose_reference, is_baseline
from tests.helpers import coea

CONFIG = "synthetic:\n  n_users: 80\n  n_categories: 40\n  n_groups: 3\neval:\n  bootstrap: 500\n"


def test_paired_ci_against_the_best_baseline_and_a_chosen_reference(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG)
    out = tmp_path / "ev"
    res = coea("evaluate", "--config", str(cfg), "--methods", "pop,pop_novel,pop+x,markov+x,random", "--k", "5,10",
               "--out", str(out))
    assert res.returncode == 0, res.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    paired, methods = metrics["paired_ci"], metrics["methods"]
    best = max(methods, key=lambda m: methods[m]["S-H@10"])  # all five are baselines; max keeps the first of ties
    assert paired["reference"] == best and (paired["k"], paired["metrics"]) == (10, ["S-H", "C-H"])
    assert (paired["n_users"], paired["n_boot"], paired["level"]) == (metrics["protocol"]["evaluated_users"], 500, 0.95)
    assert set(paired["methods"]) == set(methods) - {best}
    for name, cis in paired["methods"].items():
        for metric in ("S-H", "C-H"):
            ci = cis[f"{metric}@10"]
            assert abs(ci["diff"] - (methods[name][f"{metric}@10"] - methods[best][f"{metric}@10"])) < 1e-12
            assert ci["low"] <= ci["diff"] <= ci["high"] and ci["excludes_zero"] == (ci["low"] > 0 or ci["high"] < 0)
    # pop+x and pop_novel serve identical lists: equal metrics, so the tie for the best goes to the first listed
    assert methods["pop+x"] == methods["pop_novel"] and best == "pop_novel"
    zero = {"diff": 0.0, "low": 0.0, "high": 0.0, "excludes_zero": False}
    assert paired["methods"]["pop+x"] == {"S-H@10": zero, "C-H@10": zero}
    md = (out / "metrics.md").read_text()
    assert f"## Paired difference vs {best} (95 % bootstrap CI over {paired['n_users']} users)" in md
    assert all(f"| {m} |" in md.split("## Paired difference")[1] for m in paired["methods"])
    assert "| pop+x | +0.0000 [+0.0000, +0.0000] | +0.0000 [+0.0000, +0.0000] |" in md

    # a chosen reference that is not the best baseline; against it the identical lists of pop+x and pop_novel,
    # on the same resampled users, get identical (non-zero) intervals
    res = coea("evaluate", "--config", str(cfg), "--methods", "pop,pop_novel,pop+x", "--k", "10",
               "--reference", "pop", "--out", str(tmp_path / "ev2"))
    assert res.returncode == 0, res.stderr
    paired = json.loads((tmp_path / "ev2" / "metrics.json").read_text())["paired_ci"]
    assert paired["reference"] == "pop" and set(paired["methods"]) == {"pop_novel", "pop+x"}
    assert paired["methods"]["pop+x"] == paired["methods"]["pop_novel"]
    assert paired["methods"]["pop+x"]["S-H@10"]["diff"] > 0 and paired["methods"]["pop+x"]["S-H@10"]["low"] > 0
    rows = [line.split("|")[2:] for line in (tmp_path / "ev2" / "metrics.md").read_text().split(
        "## Paired difference vs pop")[1].splitlines() if line.startswith(("| pop+x |", "| pop_novel |"))]
    assert len(rows) == 2 and rows[0] == rows[1]


def test_unknown_reference_is_one_line_exit_2(tmp_path):
    res = coea("evaluate", "--methods", "pop,markov", "--reference", "pop_novel", "--out", str(tmp_path / "x"))
    assert res.returncode == 2 and "reference 'pop_novel' is not among the methods" in res.stderr
    assert "Traceback" not in res.stderr


def test_reference_rule():
    metrics = {"nllm_sft+x": {"S-H@10": 0.9}, "pop": {"S-H@10": 0.2}, "markov+x": {"S-H@10": 0.4},
               "cooc_novel": {"S-H@10": 0.4}, "coea": {"S-H@10": 0.95}}
    assert [is_baseline(m) for m in metrics] == [False, True, True, True, False]
    assert choose_reference(metrics, 10) == "markov+x"  # the best baseline; ties: the first listed
    assert choose_reference(metrics, 10, "pop") == "pop"
    assert choose_reference({"coea": {}, "nllm_sft": {}}, 10) == "coea"  # no baseline: the first method
    # the methods that read DSIE's artifacts but neither LLM are baselines too (audit, session 55: a rule that
    # dropped every method needing an artifact passed, and the reference became a weaker one)
    assert is_baseline("group_pop_novel") and is_baseline("sasrec+x") and not is_baseline("dual_best_of_n+x")
    assert choose_reference({**metrics, "group_pop_novel": {"S-H@10": 0.5}}, 10) == "group_pop_novel"
