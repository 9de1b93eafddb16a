"""coea ablate's paired CIs: which vectors each row compares, the reference rule, the tables."""

import numpy as np
import pytest

from coea.errors import CoeaInputError
from coea.evaluation.ablate_report import (
    WITHOUT_RLLM,
    ablate_paired_ci,
    ablate_paired_table,
    ablate_reference,
    check_reference,
    row_vectors,
)
from coea.evaluation.report import ci_cell


def vec(*values):
    return np.array(values, dtype=float)


def test_row_vectors_take_the_plain_and_the_novel_view():
    k = 2
    plain = {"S-H@2": vec(1, 0, 0), "C-H@2": vec(1, 1, 0)}
    novel = {"S-H@2": vec(1, 1, 0), "C-H@2": vec(1, 1, 1)}
    baselines = {"pop_novel": {"S-H@2": vec(0, 1, 0), "C-H@2": vec(0, 1, 1)},
                 "nllm_sft": {"S-H@2": vec(0, 0, 0), "C-H@2": vec(1, 0, 0)},
                 "nllm_sft+x": {"S-H@2": vec(0, 0, 1), "C-H@2": vec(0, 0, 1)},
                 "dual_best_of_n": {"S-H@2": vec(1, 1, 1), "C-H@2": vec(1, 1, 1)}}
    rows = row_vectors({"coea": (plain, novel)}, baselines, k)
    assert list(rows) == ["coea", WITHOUT_RLLM, "pop_novel", "nllm_sft", "nllm_sft+x", "dual_best_of_n"]
    assert rows["coea"]["x_S-H@2"] is novel["S-H@2"] and rows["coea"]["S-H@2"] is plain["S-H@2"]
    assert rows[WITHOUT_RLLM]["x_S-H@2"] is baselines["nllm_sft+x"]["S-H@2"]
    assert rows["pop_novel"]["x_S-H@2"] is baselines["pop_novel"]["S-H@2"]  # a novel view is its own +x view
    assert rows["nllm_sft"]["x_S-H@2"] is baselines["nllm_sft+x"]["S-H@2"]
    assert "x_S-H@2" not in rows["dual_best_of_n"]  # no +x view scored

    section = ablate_paired_ci(rows, "pop_novel", k, n_boot=200, level=0.95, seed=0)
    assert section["reference"] == "pop_novel" and "pop_novel" not in section["methods"]
    assert section["n_users"] == 3 and section["metrics"] == ["S-H", "C-H", "x_S-H"]
    coea = section["methods"]["coea"]
    assert coea["S-H@2"]["diff"] == pytest.approx(0.0) and coea["x_S-H@2"]["diff"] == pytest.approx(1 / 3)
    assert coea["C-H@2"]["diff"] == pytest.approx(0.0)
    table = ablate_paired_table(section)
    assert "| method | S-H@2 | C-H@2 | +x S-H@2 |" in table
    assert "## Paired difference vs pop_novel (95 % bootstrap CI over 3 users)" in table
    assert "| dual_best_of_n | +0.6667 [+0.0000, +1.0000] | +0.3333 [+0.0000, +0.6667] |  |" in table  # d = (1, 0, 1)
    assert ci_cell({"diff": 0.1, "low": 0.05, "high": 0.2, "excludes_zero": True}) == "**+0.1000 [+0.0500, +0.2000]**"


def test_a_reference_without_a_plus_x_view_warns_that_the_column_is_left_out(caplog):
    """Session 56 (a helper's audit): with eval.reference dual_best_of_n (no +x view scored) the +x S-H column
    vanished from the paired CIs without a word."""
    import logging

    rows = {"coea": {"S-H@2": vec(1, 0, 0), "C-H@2": vec(1, 1, 0), "x_S-H@2": vec(1, 1, 0)},
            "dual_best_of_n": {"S-H@2": vec(1, 1, 1), "C-H@2": vec(1, 1, 1)}}
    with caplog.at_level(logging.WARNING, logger="coea"):
        section = ablate_paired_ci(rows, "dual_best_of_n", 2, n_boot=50, level=0.95, seed=0)
    assert "x_S-H@2" not in section["methods"]["coea"]
    assert "the reference dual_best_of_n has no +x view" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="coea"):
        ablate_paired_ci({**rows, "pop_novel": rows["coea"]}, "pop_novel", 2, n_boot=50, level=0.95, seed=0)
    assert not caplog.text


def test_reference_rule_and_check():
    baselines = {"nllm_sft": {"S-H@10": 0.9}, "pop_novel": {"S-H@10": 0.3}, "markov+x": {"S-H@10": 0.4},
                 "cooc_novel": {"S-H@10": 0.4}}
    assert ablate_reference(baselines, 10) == "markov+x"  # the best novel view; ties: the first
    # an LLM method is no baseline, even where it leads (session 56: nllm_sft+x, the ablation's round 0, was chosen)
    with_llms = {**baselines, "nllm_sft+x": {"S-H@10": 0.95}, "dual_best_of_n+x": {"S-H@10": 0.9}}
    assert ablate_reference(with_llms, 10) == "markov+x"
    assert ablate_reference(baselines, 10, "nllm_sft") == "nllm_sft"
    assert ablate_reference({"nllm_sft": {"S-H@10": 0.9}}, 10) == "nllm_sft"  # no novel view: the first
    check_reference(None, ["coea"])
    check_reference("coea", ["coea", "pop_novel"])
    with pytest.raises(CoeaInputError, match="not a row of the ablation"):
        check_reference("sasrec+x", ["coea", "pop_novel"])


def test_every_ablation_curve_has_its_own_colour_and_style():
    """ablate.png drew its 11th curve in the 1st one's colour and style (the default 10-colour cycle): with identical
    values (coea and an alpha row) one hid the other. Every curve now differs from every other."""
    from coea.evaluation.ablate_report import curve_styles

    styles = curve_styles(25)
    assert len(set(styles)) == 25 and styles[0] == ("C0", "-", "o") and styles[10] == ("C0", "--", "s")


@pytest.mark.parametrize("round_users", [0, 20])
def test_ablate_md_says_when_the_variant_rows_are_a_user_sample(tmp_path, round_users):
    """With `eval.round_users: N` the variant rows (PCO's per-round metrics) are over N sampled users while the
    baseline rows and the paired table are over every user: ablate.md and ablate.json say so (they did not)."""
    import json
    from dataclasses import replace

    from coea.ablate import AblateResult, _write
    from coea.config import RunConfig

    cfg = RunConfig()
    cfg = replace(cfg, eval=replace(cfg.eval, round_users=round_users))
    rows = [{"round": 0, "NCP": 0.3, "C-H": 0.9, "S-H": 0.5, "x_S-H": 0.6}]
    result = _write(cfg, AblateResult({"coea": rows}, {"pop_novel": {"S-H@10": 0.4, "C-H@10": 0.8}}), tmp_path,
                    "synthetic", 10)
    md = result.paths["md"].read_text()
    said = "The per-round table and ablate.png are over a sample of 20 evaluated users (`eval.round_users`"
    assert (said in md) == bool(round_users)
    assert json.loads(result.paths["json"].read_text())["variant_users"] == (round_users or "all")


def test_ablate_table_rows_are_the_final_models_over_every_user():
    """With `eval.round_users: N` PCO's per-round metrics are an N-user sample's: the table's variant rows showed
    them while the baselines beside them were over every user. A variant's row now shows its final models' metrics
    over every user (R-LLM score and KL from its last round), and `coea w/o R-LLM` nllm_sft's own row."""
    from coea.evaluation.ablate_report import ablate_table

    rounds = [{"round": 0, "NCP": 0.1, "C-H": 0.2, "C-N": 0.3, "CLTP": 0.4, "S-H": 0.5, "x_S-H": 0.6, "rscore": 0.7},
              {"round": 1, "NCP": 0.11, "C-H": 0.21, "C-N": 0.31, "CLTP": 0.41, "S-H": 0.51, "x_S-H": 0.61,
               "rscore": 0.71, "kl_sft": 0.05}]
    metrics = {"C-H@10": 0.9, "C-N@10": 0.8, "NCP@10": 0.45, "CLTP@10": 0.35, "S-H@10": 0.55}
    baselines = {"nllm_sft": {**metrics, "S-H@10": 0.52}, "nllm_sft+x": {"S-H@10": 0.62}}
    sampled = ablate_table({"coea": rounds}, baselines, 10, {}).splitlines()
    every = ablate_table({"coea": rounds}, baselines, 10, {}, finals={"coea": {**metrics, "x_S-H": 0.66}})
    assert "| coea | 0.2100 | 0.3100 | 0.1100 | 0.4100 | 0.5100 | 0.6100 | 0.7100 | 0.0500 |" in sampled
    assert "| coea | 0.9000 | 0.8000 | 0.4500 | 0.3500 | 0.5500 | 0.6600 | 0.7100 | 0.0500 |" in every
    assert f"| {WITHOUT_RLLM} | 0.2000 | 0.3000 | 0.1000 | 0.4000 | 0.5000 | 0.6000 | 0.7000 | 0.0000 |" in sampled
    assert f"| {WITHOUT_RLLM} | 0.9000 | 0.8000 | 0.4500 | 0.3500 | 0.5200 | 0.6200 | 0.7000 | 0.0000 |" in every
