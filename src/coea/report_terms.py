"""One sentence per figure the run report shows: the metrics, the PCO round columns and the DSIE summary.

Notation as in README *Metrics*: per user, R = the top-K list, H = history categories, T = future categories,
N = T - H (novel categories the user took up); means over evaluated users; a list shorter than K still divides
by K.
"""

from __future__ import annotations

METRIC_TERMS: dict[str, str] = {
    "C-H": "category hit: share of users with at least one recommended category among their future categories "
           "(R ∩ T ≠ ∅).",
    "C-N": "category NDCG: the ranks of the recommended categories that appear in the future, discounted by "
           "1/log2(rank+1) and divided by the best possible.",
    "NCP": "novel category proportion: the share of the K recommended categories that are not in the user's "
           "history (|R − H| / K).",
    "CLTP": "long-tail proportion: the share of the K recommended categories outside the most popular ones "
            "that together hold 80% of history events.",
    "S-H": "serendipity hit: share of users with at least one recommended category that is new to them AND "
           "taken up in their future (R ∩ N ≠ ∅).",
    "S-P": "serendipity precision: the share of the K recommended categories that are new and taken up "
           "(|R ∩ N| / K).",
    "Cov": "coverage: the share of all categories recommended to at least one user.",
}

PCO_TERMS: dict[str, str] = {
    "round": "PCO round (0 = the SFT models before any update).",
    "x_S-H": "S-H of the N-LLM's +x top-K (its list with the user's history categories removed).",
    "x_C-H": "C-H of the N-LLM's +x top-K.",
    "judge_S-H": "S-H of the R-LLM used as a ranker: each judged user's unseen categories ordered by its P(yes).",
    "x_S-H_judged": "the N-LLM's x_S-H on the same judged users, to compare with judge_S-H.",
    "rscore": "the R-LLM's mean P(yes) of the N-LLM's top-K categories: how relevant the judge finds the "
              "proposals.",
    "kl_sft": "mean over users of KL(SFT ‖ this round) between the N-LLM's category distributions: how far PCO "
              "has moved the N-LLM from its SFT start (0 at round 0).",
    "pairs": "chosen/rejected candidate pairs that passed the score margin and trained the N-LLM with DPO + KL "
             "this round.",
    "dpo_margin": "the last logged DPO reward margin (chosen minus rejected implicit reward; empty: no update).",
    "distill_kl": "pco.update distill: mean KL(target ‖ N-LLM) over the round's last epoch, the target being the "
                  "reference's distribution over each prompt's candidates times exp(reward / beta).",
    "acceptance_before": "share of the N-LLM's new-category proposals the R-LLM accepts (P(yes) above the "
                         "threshold) before the round's update.",
    "acceptance_after": "the same share after the round's update.",
    "round_s": "wall time of the round in seconds.",
}

DSIE_TERMS: dict[str, str] = {
    "csid_collision_rate": "share of users whose whole Collaborative Semantic ID (CSID) is shared with another "
                           "user; users sharing a CSID prefix form a group.",
    "rqvae_final_loss": "the RQ-VAE's training loss at its last epoch.",
    "M_N": "number of groups.",
    "ARI vs planted": "adjusted Rand index between the groups and the synthetic data's planted groups (1 = the "
                      "same partition, 0 = chance).",
}

PLUS_X = ("A method name ending in +x is that method with each user's history categories removed before the "
          "top-K is taken.")
