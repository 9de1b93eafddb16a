"""benchmarks/analysis_frontier.py: reading one model's re-ranking curve at another model's C-H."""

import pytest

from benchmarks.analysis_frontier import ncp_at


def test_ncp_at_interpolates_along_the_pareto_frontier_in_c_h_and_says_none_outside_it():
    # a curve as the lam sweep makes it: C-H peaks at a small penalty, so (0.91, 0.10) is dominated by (0.92, 0.30)
    curve = [{"C-H": 0.90, "NCP": 0.50}, {"C-H": 0.92, "NCP": 0.30}, {"C-H": 0.80, "NCP": 0.90},
             {"C-H": 0.91, "NCP": 0.10}]
    assert ncp_at(curve, 0.91) == pytest.approx(0.40)  # between (0.90, 0.50) and (0.92, 0.30), not the dominated point
    assert ncp_at(curve, 0.85) == pytest.approx(0.70)
    assert ncp_at(curve, 0.92) == pytest.approx(0.30)
    assert ncp_at(curve, 0.93) is None and ncp_at(curve, 0.79) is None
    assert ncp_at([{"C-H": 0.9, "NCP": 0.4}, {"C-H": 0.9, "NCP": 0.6}], 0.9) == pytest.approx(0.6)
    assert ncp_at([{"C-H": 0.9, "NCP": 0.4}], 0.91) is None


def test_target_rows_keep_the_lists_within_one_percent_c_h_and_say_whether_ncp_reaches_1_19_times():
    import numpy as np

    from benchmarks.analysis_frontier import target_rows

    def row(lam, c_h, ncp):  # 100 users: c_h and ncp as the share of ones
        ones = lambda share: (np.arange(100) < round(share * 100)).astype(float)  # noqa: E731
        return {"lam": lam, "C-H": c_h, "NCP": ncp, "per_user": {"C-H": ones(c_h), "NCP": ones(ncp)}}

    curves = {"nllm_sft": [row(0.0, 0.90, 0.30), row(0.5, 0.85, 0.50)],
              "coea": [row(0.0, 0.91, 0.30), row(0.5, 0.90, 0.40), row(1.0, 0.80, 0.70)]}
    rows = target_rows(curves)
    assert len(rows) == 2  # nllm_sft at 0.5 and coea at 1.0 lose more than 1 % C-H; the reference is no row
    assert rows[0].startswith("| coea | 0.00 | 1.011 | 1.000 |") and rows[0].endswith("| no |")
    assert rows[1].startswith("| coea | 0.50 | 1.000 | 1.333 | +0.0000") and rows[1].endswith("| yes |")
    assert "+0.1000 [" in rows[1]  # the NCP difference and its interval


def test_the_frontier_adds_lam_to_the_unseen_categories_of_each_user_s_own_history():
    """Audit, session 55: ``_frontier`` (the re-ranking behind the plain view's NCP figures) had no test. 12
    categories, u has had c0 and c1 (ranked first by log-probability), v nothing: lam 0 keeps the model's order, a
    bonus larger than the log-probability gap puts u's two seen categories last (v's list is unchanged), a negative
    one puts them first; each row carries the metrics of exactly the lists it ranked."""
    from types import SimpleNamespace

    import numpy as np

    from benchmarks.analysis_frontier import LAMBDAS, _frontier

    cats = [f"c{j}" for j in range(12)]
    ranked: list[list[list[str]]] = []

    def metrics(recs):
        ranked.append(recs)
        return {"C-H@10": len(ranked), "NCP@10": 0.0, "S-H@10": 0.0}

    ev = SimpleNamespace(categories=cats, users=["u", "v"], history={"u": ["c0", "c1", "c99"]}, tail=set(),
                         seen={"u": ["c0", "c1", "c99"]},
                         split=SimpleNamespace(future_categories={"u": {"c11"}, "v": {"c0"}}), _metrics=metrics)
    logp = np.tile(-np.arange(12, dtype=float) * 0.1, (2, 1))  # c0 best ... c11 worst, gap 1.1 < lam 1.5
    rows = _frontier(ev, logp)
    assert [r["lam"] for r in rows] == list(LAMBDAS) and [r["C-H"] for r in rows] == list(range(1, len(LAMBDAS) + 1))
    by_lam = dict(zip(LAMBDAS, ranked, strict=True))
    assert by_lam[0.0] == [cats[:10], cats[:10]]
    assert by_lam[1.5][0] == cats[2:12] and by_lam[1.5][1] == cats[:10]  # u's seen c0, c1 out; v untouched
    assert by_lam[-1.0][0][:2] == ["c0", "c1"] and by_lam[-1.0][1] == cats[:10]
    assert rows[0]["per_user"]["C-H"].shape == (2,)
