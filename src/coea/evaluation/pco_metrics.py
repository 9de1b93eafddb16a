"""Per-round evaluation of a PCO run on the evaluation split (the ``evaluate`` callback of
:func:`coea.pco.run.run_pco`; the loop itself never sees the split).

Per-round metrics (K = the PCO config's ``k``): C-H, C-N, NCP, CLTP, S-H of the N-LLM's plain top-K and S-H,
C-H of its ``+x`` top-K (seen categories removed) on the split's evaluated users; ``rscore``: the R-LLM's mean
P(yes) of the plain top-K; ``kl_sft``: the mean over evaluated users of KL(SFT || current) between the N-LLM's
category distributions (first-step softmax restricted to category names, exact). The evaluation future is
used only here, to score; nothing computed from it reaches training.
"""

from __future__ import annotations

import logging

import numpy as np

from coea.config import EvalConfig
from coea.data.schema import CATEGORY
from coea.data.split import Split
from coea.evaluation.metrics import evaluate_lists, long_tail
from coea.llm.models import ModelBundle
from coea.llm.prompts import PromptContext, novelty_prompt, relevance_prompt
from coea.llm.sft_config import LlmConfig
from coea.llm.sft_data import GroupInfo

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


class SplitEvaluator:
    """The per-round metrics callback of a PCO run (holds the split; the loop never sees it). The first call
    fixes the distribution ``kl_sft`` compares against (round 0 = the SFT models)."""

    def __init__(self, split: Split, groups: dict[str, GroupInfo], llm: LlmConfig, k: int,
                 long_tail_share: float = EvalConfig().long_tail_share) -> None:
        hist = split.histories
        self.split, self.llm, self.k, self.categories = split, llm, k, list(hist.categories)
        self.users = [u for u in split.warm_users if u in groups]
        self.history = hist.user_categories()
        counts = hist.interactions[CATEGORY].value_counts().to_dict()
        self.tail = long_tail({c: int(counts.get(c, 0)) for c in self.categories}, long_tail_share)
        self.contexts = [PromptContext(groups[u].csid, groups[u].profile, tuple(hist.short_term.get(u, ())))
                         for u in self.users]
        self.prompts = [novelty_prompt(c, with_group=llm.data.with_group) for c in self.contexts]
        self.sft_logp: np.ndarray | None = None

    def _metrics(self, recs: list[list[str]]) -> dict[str, float]:
        return evaluate_lists(dict(zip(self.users, recs, strict=True)), self.users, self.history,
                              self.split.future_categories, self.tail, len(self.categories), [self.k])

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
        log.info("pco round %d eval: %s", r, ", ".join(f"{k} {v:.4f}" for k, v in out.items()))
        return out
