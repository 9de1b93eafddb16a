"""benchmarks/analysis_fusion.py: the (encoder, popularity) sweep of fused rankings."""

import numpy as np
import pytest

from benchmarks.analysis_fusion import fused_scores, log_popularity


def test_log_popularity_is_the_add_one_smoothed_share_and_finite_for_an_unseen_category():
    log_q = log_popularity(np.array([3.0, 1.0, 0.0]))
    assert np.exp(log_q) == pytest.approx([4 / 7, 2 / 7, 1 / 7])
    assert np.isfinite(log_q).all()


def test_fused_scores_add_the_weighted_popularity_to_the_encoder_fusion_and_name_each_point_of_the_grid():
    log_n = np.log(np.array([[0.5, 0.3, 0.2]]))
    enc = np.array([[0.0, 2.0, 0.0]])  # logits: the encoder prefers the second category
    log_q = np.log(np.array([0.1, 0.1, 0.8]))  # popularity prefers the third
    out = fused_scores(log_n, enc, log_q, [0.0, 1.0], [0.0, 2.0])
    assert list(out) == ["w=0", "w=0,v=2", "w=1", "w=1,v=2"]
    np.testing.assert_allclose(out["w=0"], log_n)  # the N-LLM alone
    assert out["w=0"].argmax() == 0 and out["w=1"].argmax() == 1 and out["w=1,v=2"].argmax() == 2
    enc_logp = enc - np.log(np.exp(enc).sum())
    np.testing.assert_allclose(out["w=1,v=2"], log_n + enc_logp + 2 * log_q)
