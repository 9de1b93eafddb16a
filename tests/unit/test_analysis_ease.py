"""benchmarks/analysis_ease.py: EASE's sweep on a split, against popularity (the session-59 probe)."""

import numpy as np
import pytest

from benchmarks.analysis_ease import fusion_lists, main
from coea.data.ease import ease_log_shares


def test_ease_log_shares_are_the_rows_normalised_with_a_floor_so_a_zero_score_stays_finite():
    out = ease_log_shares(np.array([[3.0, 1.0, 0.0], [0.0, 0.0, -2.0]]))
    assert np.isfinite(out).all()
    np.testing.assert_allclose(np.exp(out).sum(axis=1), 1.0)
    assert np.exp(out[0, 0]) == pytest.approx(0.75, rel=1e-5)
    assert out[0, 2] == pytest.approx(np.log(1e-6 / (4 + 3e-6)))  # the floor: a few nats below, not ~20
    np.testing.assert_allclose(out[1], np.log(1 / 3))  # no positive score: uniform


def test_the_sweep_prints_one_row_per_setting_with_its_interval_against_pop_novel(tmp_path, capsys):
    """A synthetic log through the whole script (no run folder): pop_novel's row, then every (lambda, half-life)."""
    config = tmp_path / "c.yaml"
    config.write_text("synthetic: {n_users: 60, n_categories: 10, mean_interactions: 25, min_interactions: 15}\n"
                      "split: {n_future: 5, validation: true}\n", encoding="utf-8")
    assert main(["--config", str(config), "--lambdas", "10,100", "--half-lives", "inf,3"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")][1:]
    labels = [r.split(" | ")[0].lstrip("| ") for r in rows]
    assert labels == ["pop_novel", "ease_novel, lambda 10, half-life inf", "ease_novel, lambda 10, half-life 3",
                      "ease_novel, lambda 100, half-life inf", "ease_novel, lambda 100, half-life 3"]
    assert rows[0].endswith("| +0.0000 [+0.0000, +0.0000] |")


def test_the_run_rows_are_the_encoder_the_registered_sasrec_ease_and_each_weight_then_the_llms_fusion():
    """``--run`` rows: sasrec+x, sasrec_ease+x (the registered baseline's weight 1, equal to the w = 1 row), one row
    per w, then with ``--nllm``/``--served`` the LLM fusion alone and plus w x the shares."""
    log_s = np.log(np.array([[0.6, 0.3, 0.1]]))
    shares = np.log(np.array([[0.1, 0.1, 0.8]]))
    fused = np.log(np.array([[0.2, 0.7, 0.1]]))
    out = fusion_lists(log_s, shares, [0.5, 1.0], "coea_seq", fused)
    assert list(out) == ["sasrec+x", "sasrec_ease+x", "sasrec + 0.5 x ease", "sasrec + 1 x ease", "coea_seq+x",
                         "coea_seq + 0.5 x ease", "coea_seq + 1 x ease"]
    np.testing.assert_allclose(out["sasrec_ease+x"], out["sasrec + 1 x ease"])
    np.testing.assert_allclose(out["coea_seq + 0.5 x ease"], fused + 0.5 * shares)
    assert out["sasrec+x"].argmax() == 0 and out["sasrec_ease+x"].argmax() == 2
    assert list(fusion_lists(log_s, shares, [2.0])) == ["sasrec+x", "sasrec_ease+x", "sasrec + 2 x ease"]


def test_nllm_and_served_are_one_choice(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--nllm", "--served"])
    assert stop.value.code == 2 and "not allowed with" in capsys.readouterr().err
