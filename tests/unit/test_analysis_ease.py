"""benchmarks/analysis_ease.py: EASE's sweep on a split, against popularity (the session-59 probe)."""

import numpy as np
import pytest

from benchmarks.analysis_ease import main
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
