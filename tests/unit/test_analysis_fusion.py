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


def test_fused_scores_add_the_weighted_cooccurrence_shares_and_name_them_u():
    """``--cooc-weights``: each point of the grid adds ``u log s`` (the co-occurrence log shares) to the fusion;
    u 0 leaves the label and the scores as without the expert."""
    log_n = np.log(np.array([[0.5, 0.3, 0.2]]))
    enc = np.array([[0.0, 2.0, 0.0]])
    log_q = np.log(np.array([0.1, 0.1, 0.8]))
    log_c = np.log(np.array([[0.05, 0.05, 0.9]]))  # co-occurrence prefers the third
    out = fused_scores(log_n, enc, log_q, [1.0], [0.0, 2.0], log_c, (0.0, 4.0))
    assert list(out) == ["w=1", "w=1,u=4", "w=1,v=2", "w=1,v=2,u=4"]
    np.testing.assert_allclose(out["w=1"], fused_scores(log_n, enc, log_q, [1.0], [0.0])["w=1"])
    np.testing.assert_allclose(out["w=1,v=2,u=4"], out["w=1,v=2"] + 4 * log_c)
    assert out["w=1"].argmax() == 1 and out["w=1,u=4"].argmax() == 2


def test_genre_similarity_is_the_jaccard_of_the_genre_sets():
    from benchmarks.analysis_fusion import genre_similarity

    sim = genre_similarity(["Action|Thriller", "Action|Sci-Fi|Thriller", "Comedy"])
    np.testing.assert_allclose(sim, [[1, 2 / 3, 0], [2 / 3, 1, 0], [0, 0, 1]])


def test_mmr_top_k_is_the_plain_top_k_at_lambda_0_and_skips_a_near_duplicate_when_lambda_is_large():
    from benchmarks.analysis_fusion import mmr_top_k

    scores = np.log(np.array([[0.4, 0.35, 0.2, 0.05]]))
    sim = np.eye(4)
    sim[0, 1] = sim[1, 0] = 0.9  # the second category is a near-duplicate of the first
    assert mmr_top_k(scores, sim, 0.0, 3).tolist() == [[0, 1, 2]]
    assert mmr_top_k(scores, sim, 2.0, 3).tolist() == [[0, 2, 1]]  # 0.9 * 2 > log(0.35 / 0.2)
    banned = scores.copy()
    banned[0, 2:] = -np.inf  # two allowed categories: the other positions stay empty (-1)
    assert mmr_top_k(banned, sim, 2.0, 3).tolist() == [[0, 1, -1]]


def test_ensemble_rows_average_the_two_encoders_log_softmaxes_and_fuse_that_mean():
    """``--ensemble-run``: ``sasrec_ens+x`` is the mean of the two encoders' log-probabilities (not of their raw
    logits, whose scales differ between fits), and ``w=W, 2 encoders`` adds w times it to the N-LLM's."""
    from benchmarks.analysis_fusion import ensemble_rows

    log_n = np.log(np.array([[0.6, 0.3, 0.1]]))
    enc = np.array([[0.0, 1.0, 0.0]])
    enc2 = np.array([[0.0, 0.0, 30.0]]) + 7.0  # sharper and shifted: only its log-softmax enters
    out = ensemble_rows(log_n, enc, enc2, [0.0, 2.0])
    assert list(out) == ["sasrec_ens+x", "w=2, 2 encoders"]

    def ls(x):
        return x - np.log(np.exp(x - x.max()).sum()) - x.max()

    np.testing.assert_allclose(out["sasrec_ens+x"], (ls(enc) + ls(enc2)) / 2)
    np.testing.assert_allclose(out["w=2, 2 encoders"], log_n + 2 * ls((ls(enc) + ls(enc2)) / 2))
    assert out["sasrec_ens+x"].argmax() == 2 and out["w=2, 2 encoders"].argmax() == 2
