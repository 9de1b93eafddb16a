"""dual_best_of_n's verified score: the N-LLM's log-probability plus the R-LLM's weighted log-odds."""

from __future__ import annotations

import numpy as np
import pytest

from coea.evaluation.llm_methods import verified_scores
from coea.llm.sft_config import LlmConfig


def test_weight_none_ranks_by_p_yes_alone():
    assert verified_scores(np.array([-1.0, -5.0]), np.array([0.2, 0.9]), None).tolist() == [0.2, 0.9]


def test_weighted_score_is_log_p_plus_weight_times_logit_and_trades_the_two_models_off():
    logp, p = np.log([0.5, 0.1]), np.array([0.4, 0.8])
    out = verified_scores(logp, p, 0.5)
    assert out == pytest.approx(logp + 0.5 * np.log(p / (1 - p)))
    assert out[0] > out[1]  # the N-LLM's 5x odds outweigh the R-LLM's 6x odds at half weight
    assert verified_scores(logp, p, 2.0)[1] > verified_scores(logp, p, 2.0)[0]  # at weight 2 the R-LLM wins
    assert verified_scores(logp, p, 0.0) == pytest.approx(logp)  # weight 0 = the N-LLM's own order
    assert np.isfinite(verified_scores(logp, np.array([0.0, 1.0]), 1.0)).all()  # P(yes) of 0 or 1 is clipped


def test_negative_weight_is_refused():
    with pytest.raises(ValueError, match="verify_weight"):
        LlmConfig(verify_weight=-1.0)


def test_top_proposals_are_the_n_most_likely_allowed_categories():
    from types import SimpleNamespace

    from coea.evaluation.llm_methods import DualBestOfN

    cats = ["a", "b", "c", "d"]
    method = SimpleNamespace(categories=cats, index={c: i for i, c in enumerate(cats)})
    logp = np.log(np.array([[0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4]]))
    logp[0, 0] = logp[1, 1:] = -np.inf  # banned: a for the first row, b, c, d for the second
    out = DualBestOfN.top_allowed(method, logp, 2)
    assert out == [["b", "c"], ["a"]]  # banned ones never proposed; fewer when fewer are allowed


def test_propose_mode_is_validated():
    from coea.llm.sft_config import Propose

    assert LlmConfig(propose="sample").propose is Propose.SAMPLE and LlmConfig().propose is Propose.TOP
    with pytest.raises(ValueError, match="best"):
        LlmConfig(propose="best")


def test_coea_dual_is_the_dual_inference_on_the_models_after_pco():
    """``coea_dual`` reads the ``pco`` artifact (the tuned N-LLM, the refreshed R-LLM), not the SFT pair, and ranks as
    ``dual_best_of_n`` does."""
    from coea.evaluation.llm_methods import CoeaDual, DualBestOfN
    from coea.evaluation.registry import MethodArtifacts, Need, parse_method

    assert parse_method("coea_dual+x").needs == {Need.DSIE, Need.PCO}
    assert issubclass(CoeaDual, DualBestOfN) and CoeaDual.masked_scores is DualBestOfN.masked_scores
    sft, tuned = object(), object()
    assert MethodArtifacts(llms=sft, pco=tuned).get(CoeaDual.models_from, "coea_dual") is tuned
