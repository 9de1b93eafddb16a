"""Methods built on the dual LLMs (all fitted on histories only, sharing one SFT per run via the context cache):

- ``nllm_sft``: the Novelty LLM after SFT alone; ranks categories by log P(name | N-LLM prompt);
- ``dual_best_of_n``: the N-LLM samples ``best_of_n`` distinct candidates per prompt, the R-LLM scores each
  (P(yes)), the top-K by that score are kept (inference-time only, no further training);
- ``rllm_rank``: the R-LLM alone scores every category (an upper reference for relevance; U x C prompts);
- ``coea``: the full method, SFT then ``pco.rounds`` PCO rounds on the histories (:mod:`coea.pco`), ranked like
  ``nllm_sft`` with the final N-LLM. The PCO models are fitted once per context, on copies of the SFT models
  (so ``nllm_sft`` in the same run stays the SFT-only model).

The prompt carries the group and the short-term set, never the full history, so the plain view's novelty is
the model's own; ``+x`` passes the history categories as exclusions into decoding.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np

from coea.data.split import Histories
from coea.evaluation.baselines import Recommendations, ScoringMethod, top_k
from coea.evaluation.dsie_methods import fitted_dsie
from coea.llm.prompts import PromptContext, novelty_prompt, relevance_prompt


def fitted_llms(ctx, histories: Histories):
    """SFT of both LLMs on ``histories`` once per context (after DSIE, whose groups and profiles they use)."""
    from coea.llm.run import run_train_llms

    key = ("llms", id(histories))
    if key not in ctx.cache:
        dsie = fitted_dsie(ctx, histories)
        levels = ctx.dsie.rqvae.codebook_sizes[: ctx.dsie.group.depth]
        ctx.cache[key] = run_train_llms(ctx.llm, histories, dsie.groups, dsie.profiles, levels)
    return ctx.cache[key]


def fitted_pco(ctx, histories: Histories):
    """PCO rounds on top of :func:`fitted_llms`, once per context (no evaluation callback: a method sees
    histories only)."""
    import copy

    from coea.llm.run import LlmTrainResult
    from coea.pco.loop import PcoLoop

    key = ("pco", id(histories))
    if key not in ctx.cache:
        llms = fitted_llms(ctx, histories)
        loop = PcoLoop(ctx.pco, ctx.llm, histories.interactions, list(histories.categories), llms.groups,
                       copy.deepcopy(llms.novelty), copy.deepcopy(llms.relevance), n_short=ctx.n_short,
                       device=ctx.llm.novelty.device)
        res = loop.run()
        ctx.cache[key] = LlmTrainResult(res.novelty, res.relevance, {}, llms.groups)
    return ctx.cache[key]


class _LlmMethod(ScoringMethod):
    def __init__(self, ctx, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ctx = ctx

    def _fit(self, histories: Histories) -> None:
        from coea.llm.decode import CategoryIndex
        from coea.llm.models import admit_categories

        self.llms = fitted_llms(self.ctx, histories)
        for bundle in (self.llms.novelty, self.llms.relevance):  # categories new since the models were trained
            admit_categories(bundle, self.categories)
        self.short_term = histories.short_term
        self.n_index = CategoryIndex(self.llms.novelty.tokenizer, self.categories)

    def contexts(self, users: Sequence[str]) -> list[PromptContext]:
        fallback = next(iter(self.llms.groups.values()))
        return [PromptContext(self.llms.groups.get(u, fallback).csid, self.llms.groups.get(u, fallback).profile,
                              tuple(self.short_term.get(u, ()))) for u in users]

    def _banned(self, users: Sequence[str], exclude: Mapping[str, Collection[str]] | None) -> list[set[str]]:
        out = []
        for u in users:
            banned = set(exclude.get(u, ())) if exclude else set()
            if self.exclude_history:
                banned |= self.user_history.get(u, set())
            out.append(banned)
        return out


class NoveltySft(_LlmMethod):
    name = "nllm_sft"

    def score(self, users: Sequence[str]) -> np.ndarray:
        from coea.llm.decode import category_logprobs

        b = self.llms.novelty
        prompts = [novelty_prompt(c, with_group=self.ctx.llm.data.with_group) for c in self.contexts(users)]
        return category_logprobs(b.model, b.tokenizer, prompts, self.n_index, batch_size=self.ctx.llm.batch_size)


class Coea(NoveltySft):
    name = "coea"

    def _fit(self, histories: Histories) -> None:
        super()._fit(histories)
        self.llms = fitted_pco(self.ctx, histories)


class DualBestOfN(_LlmMethod):
    name = "dual_best_of_n"

    def score(self, users: Sequence[str]) -> np.ndarray:
        return self._scores(users, [set() for _ in users])

    def _scores(self, users: Sequence[str], banned: list[set[str]]) -> np.ndarray:
        from coea.llm.decode import relevance_scores, sample_categories

        n, r, cfg = self.llms.novelty, self.llms.relevance, self.ctx.llm
        ctxs = self.contexts(users)
        prompts = [novelty_prompt(c, with_group=cfg.data.with_group) for c in ctxs]
        cands = sample_categories(n.model, n.tokenizer, prompts, self.n_index, cfg.best_of_n, cfg.temperature,
                                  seed=self.seed, exclude=banned, batch_size=cfg.batch_size)
        pairs = [(row, c) for row, cs in enumerate(cands) for c in cs]
        rel = [relevance_prompt(ctxs[row], c, with_group=cfg.data.with_group) for row, c in pairs]
        p_yes = relevance_scores(r.model, r.tokenizer, rel, batch_size=cfg.batch_size) if rel else np.zeros(0)
        out = np.full((len(users), len(self.categories)), -np.inf)
        for (row, c), p in zip(pairs, p_yes, strict=True):
            out[row, self.index[c]] = p
        return out

    def recommend(self, users: Sequence[str], k: int,
                  exclude: Mapping[str, Collection[str]] | None = None) -> Recommendations:
        if not users:
            return {}
        return top_k(self._scores(users, self._banned(users, exclude)), users, self.categories, k)


class RelevanceRank(_LlmMethod):
    name = "rllm_rank"

    def score(self, users: Sequence[str]) -> np.ndarray:
        from coea.llm.decode import relevance_scores

        r, cfg = self.llms.relevance, self.ctx.llm
        out = np.zeros((len(users), len(self.categories)))
        for row, c in enumerate(self.contexts(users)):
            prompts = [relevance_prompt(c, cat, with_group=cfg.data.with_group) for cat in self.categories]
            out[row] = relevance_scores(r.model, r.tokenizer, prompts, batch_size=cfg.batch_size)
        return out
