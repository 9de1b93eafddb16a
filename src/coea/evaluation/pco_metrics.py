"""Per-round evaluation of a PCO run on the evaluation split (the ``evaluate`` callback of
:func:`coea.pco.run.run_pco`; the loop itself never sees the split).

Per-round metrics (K = the PCO config's ``k``): C-H, C-N, NCP, CLTP, S-H of the N-LLM's plain top-K and S-H,
C-H of its ``+x`` top-K (seen categories removed) on the split's evaluated users; ``rscore``: the R-LLM's mean
P(yes) of the plain top-K; ``kl_sft``: the mean over evaluated users of KL(SFT || current) between the N-LLM's
category distributions (first-step softmax restricted to category names, exact). The evaluation future is
used only here, to score; nothing computed from it reaches training.

The judge's quality, beside the proposer's: ``judge_S-H`` = S-H@K of ranking each judged user's UNSEEN
categories by the R-LLM's P(yes) (one prompt per (user, unseen category)), and ``x_S-H_judged`` = the N-LLM's
``+x`` S-H@K (its log-probability ranking of the same unseen categories) on the SAME users, so the two compare
directly; ``judged_users`` = how many. To bound the U x C prompts, the judged users are a seeded subsample
(:func:`judge_rows`, seed 0, the same every round) of at most ``judge_users`` evaluated users (0 = no judge
metric). On a large log ``round_users`` bounds every per-round metric the same way (seed 1; 0 = all users).
"""

from __future__ import annotations

import logging

import numpy as np

from coea.config import EvalConfig
from coea.data.schema import CATEGORY
from coea.data.split import Split
from coea.evaluation.metrics import evaluate_lists, long_tail
from coea.llm.models import ModelBundle
from coea.llm.prompts import novelty_prompt, relevance_prompt
from coea.llm.sft_config import LlmConfig
from coea.llm.sft_data import GroupInfo, category_sequences, item_sequences, prompt_context
from coea.pco.reward import rllm_scores

log = logging.getLogger(__name__)


def category_log_softmax(bundle: ModelBundle, index, prompts: list[str], batch_size: int) -> np.ndarray:
    """(P, C) log-softmax of the N-LLM's category log-probs over the category names only."""
    from coea.llm.decode import category_logprobs

    lp = category_logprobs(bundle.model, bundle.tokenizer, prompts, index, batch_size)
    return lp - np.logaddexp.reduce(lp, axis=1, keepdims=True)


def top_categories(scores: np.ndarray, categories: list[str], k: int,
                   banned: list[set[str]] | None = None) -> list[list[str]]:
    """Top-``k`` category names per row of ``scores`` (P, C), best first, ``banned[row]`` left out."""
    s = scores.copy()
    if banned is not None:
        col = {c: j for j, c in enumerate(categories)}
        for row, b in enumerate(banned):
            s[row, [col[c] for c in b if c in col]] = -np.inf
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return [[categories[j] for j in cols if np.isfinite(s[row, j])] for row, cols in enumerate(order)]


def judge_rows(n_users: int, limit: int, seed: int = 0) -> list[int]:
    """Sorted row indices of at most ``limit`` of ``n_users`` users: all of them, or a seeded subsample."""
    if n_users <= limit:
        return list(range(n_users))
    return sorted(np.random.default_rng(seed).choice(n_users, limit, replace=False).tolist())


def top_by_score(candidates: list[list[str]], scores: list, k: int) -> list[list[str]]:
    """Per row the ``k`` candidates with the highest scores (aligned with ``candidates``), best first."""
    return [[cs[j] for j in np.argsort(-np.asarray(s, dtype=float), kind="stable")[:k]]
            for cs, s in zip(candidates, scores, strict=True)]


class SplitEvaluator:
    """The per-round metrics callback of a PCO run (holds the split; the loop never sees it). The first call
    fixes the distribution ``kl_sft`` compares against (round 0 = the SFT models)."""

    def __init__(self, split: Split, groups: dict[str, GroupInfo], llm: LlmConfig, k: int,
                 long_tail_share: float = EvalConfig().long_tail_share,
                 judge_users: int = EvalConfig().judge_users, round_users: int = EvalConfig().round_users) -> None:
        hist = split.histories
        self.split, self.llm, self.k, self.categories = split, llm, k, list(hist.categories)
        self.users = [u for u in split.warm_users if u in groups]
        if round_users:  # a seeded subsample (its own seed: the judged users are then drawn among these)
            self.users = [self.users[i] for i in judge_rows(len(self.users), round_users, seed=1)]
        self.history = hist.user_categories()  # what the lists exclude (+x); the metrics' H: self.seen
        self.seen = split.seen_before_future()
        counts = hist.interactions[CATEGORY].value_counts().to_dict()
        self.tail = long_tail({c: int(counts.get(c, 0)) for c in self.categories}, long_tail_share)
        seqs = category_sequences(hist.interactions)
        items = item_sequences(hist.interactions) if llm.data.items else {}
        self.contexts = [prompt_context(groups[u], seqs.get(u, []), llm.data, hist.short_term.get(u, ()),
                                        items.get(u, ())) for u in self.users]
        self.prompts = [novelty_prompt(c, with_group=llm.data.with_group) for c in self.contexts]
        self.judged = judge_rows(len(self.users), judge_users)
        self.sft_logp: np.ndarray | None = None

    def _metrics(self, recs: list[list[str]], users: list[str] | None = None) -> dict[str, float]:
        users = self.users if users is None else users
        return evaluate_lists(dict(zip(users, recs, strict=True)), users, self.seen,
                              self.split.future_categories, self.tail, len(self.categories), [self.k])

    def judge(self, relevance: ModelBundle, novel: list[list[str]]) -> dict[str, float]:
        """``judge_S-H``, ``x_S-H_judged``, ``judged_users`` (module doc); ``novel`` = the N-LLM's ``+x`` top-K of
        every evaluated user. Empty when no user is judged."""
        if not self.judged:
            return {}
        users = [self.users[i] for i in self.judged]
        unseen = [[c for c in self.categories if c not in self.history.get(u, set())] for u in users]
        p_yes = rllm_scores(relevance, [self.contexts[i] for i in self.judged], unseen, self.llm)
        key = f"S-H@{self.k}"
        return {"judge_S-H": self._metrics(top_by_score(unseen, p_yes, self.k), users)[key],
                "x_S-H_judged": self._metrics([novel[i] for i in self.judged], users)[key],
                "judged_users": len(users)}

    def __call__(self, r: int, novelty: ModelBundle, relevance: ModelBundle) -> dict[str, float]:
        from coea.llm.decode import CategoryIndex, relevance_scores

        index = CategoryIndex(novelty.tokenizer, self.categories)
        logp = category_log_softmax(novelty, index, self.prompts, self.llm.batch_size)  # (U, C)
        if self.sft_logp is None:
            self.sft_logp = logp  # round 0 = the SFT model
        kl = float(np.mean(np.sum(np.exp(self.sft_logp) * (self.sft_logp - logp), axis=1)))
        plain = top_categories(logp, self.categories, self.k)
        novel = top_categories(logp, self.categories, self.k, [self.history.get(u, set()) for u in self.users])
        pairs = [relevance_prompt(c, cat, with_group=self.llm.data.with_group)
                 for c, row in zip(self.contexts, plain, strict=True) for cat in row]
        rscore = float(np.mean(relevance_scores(relevance.model, relevance.tokenizer, pairs,
                                                batch_size=self.llm.batch_size))) if pairs else 0.0
        m = {name.split("@")[0]: v for name, v in self._metrics(plain).items()}
        m.update({f"x_{name.split('@')[0]}": v for name, v in self._metrics(novel).items()})
        out = {key: m[key] for key in ("C-H", "C-N", "NCP", "CLTP", "S-H", "x_S-H", "x_C-H")}
        out.update(rscore=rscore, kl_sft=kl, evaluated_users=len(self.users))
        out.update(self.judge(relevance, novel))
        log.info("pco round %d eval: %s", r, ", ".join(f"{k} {v:.4f}" for k, v in out.items()))
        return out
