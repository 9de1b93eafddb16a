"""Methods built on the dual LLMs. They read fitted models (never train): the SFT LLMs (``llm`` artifact) or
the models after the last PCO round (``pco`` artifact), with the DSIE groups and profiles (``dsie``):

- ``nllm_sft``: the Novelty LLM after SFT alone; ranks categories by log P(name | N-LLM prompt);
- ``dual_best_of_n``: the N-LLM proposes ``best_of_n`` distinct allowed candidates per prompt (its most likely ones,
  or draws with ``llm.propose: sample``), the R-LLM verifies
  each (P(yes)); candidates rank by ``log P_N + llm.verify_weight * logit P(yes)`` (P(yes) alone when the weight
  is null), the other allowed categories after them by the N-LLM's log-probability (so K categories come out
  whenever K are allowed);
- ``rllm_rank``: the R-LLM alone scores every category (an upper reference for relevance; U x C prompts);
- ``coea``: the N-LLM after the PCO rounds, ranked like ``nllm_sft`` (what the loop tunes, alone), with
  ``llm.novelty_bonus`` added to the categories outside the history (the plain view's operating point; 0 by default);
- ``coea_dual``: the dual inference of ``dual_best_of_n`` with the models after the PCO rounds: the tuned N-LLM
  proposes, the R-LLM of the last round (refreshed on the periods' feedback) verifies;
- ``nllm_seq`` / ``coea_seq``: the N-LLM after SFT / after the PCO rounds, ranked by ``log P_N(c) + llm.encoder_weight *
  log p_S(c)``, p_S the DSIE long-term encoder's next-category distribution (the ``sasrec`` ranker: the user's last
  events in order, which the N-LLM's prompt does not carry). A product of the two experts: the long-term signal
  enters at ranking time, as a second opinion beside the R-LLM's. With ``llm.cooc_weight`` v > 0 they add ``v *
  log s_u(c)``, s_u(c) the share of c in the user's item-to-item co-occurrence scores (the ``cooc`` baseline, fitted
  on the same histories): a third expert, off by default (:func:`coea.data.cooccurrence.cooc_log_shares`).

The prompt carries the group and the short-term set (plus the optional sections of the LLM config's prompt
options: :func:`coea.llm.sft_data.prompt_context`, the recipe SFT and PCO use), never the full history, so the
plain view's novelty is the model's own; ``+x`` passes the history categories as exclusions. A user the DSIE groups do
not know (new since they were fitted) gets the cold-start assignment (:func:`coea.dsie.groups.complete_assignment`)
and the group's prefix as their code. A user without any history event is ranked, with ``llm.cold_start:
popularity`` (the default), by the history's category popularity in place of the N-LLM's log-probabilities, in
every method above (``dual_best_of_n`` then verifies the most popular allowed categories).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np

from coea.data.cooccurrence import cooc_log_shares
from coea.data.split import Histories
from coea.evaluation.baselines import ScoringMethod
from coea.evaluation.registry import Need
from coea.llm.prompts import PromptContext, novelty_prompt, relevance_prompt
from coea.llm.sft_config import ColdStart, Propose
from coea.llm.sft_data import GroupInfo, category_sequences, group_infos, item_sequences, prompt_context
from coea.utils import log_softmax_rows


class LlmMethod(ScoringMethod):
    """Base of the LLM methods: the models of ``models_from`` plus every user's prompt context."""

    models_from = Need.LLMS

    def __init__(self, ctx, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ctx = ctx

    def _fit(self, histories: Histories) -> None:
        from coea.dsie.groups import complete_assignment, largest_group
        from coea.llm.decode import CategoryIndex
        from coea.llm.models import admit_categories, check_prompt_options
        from coea.llm.prompts import parse_csid

        dsie = self.ctx.artifacts.get(Need.DSIE, self.name)
        self.llms = self.ctx.artifacts.get(self.models_from, self.name)
        for bundle in (self.llms.novelty, self.llms.relevance):  # categories new since the models were trained
            check_prompt_options(bundle, self.ctx.llm.data)
            admit_categories(bundle, self.categories)
        self.short_term = histories.short_term
        self.sequences = category_sequences(histories.interactions)
        self.items = item_sequences(histories.interactions) if self.ctx.llm.data.items else {}
        user_group = complete_assignment(dsie.groups, histories.interactions, histories.short_term, self.categories)
        known = group_infos(dsie.groups, dsie.profiles)  # DSIE's users, with their own full CSID code
        profile = {g: str(p.get("profile", "")) for g, p in dsie.profiles.items()}
        self.group_info = {u: known.get(u) or GroupInfo(parse_csid(g), profile.get(g, ""))
                           for u, g in user_group.items()}  # user -> GroupInfo
        fallback = largest_group(dsie.groups)  # a user without any history event
        self.fallback = GroupInfo(parse_csid(fallback), profile.get(fallback, ""))
        self.n_index = CategoryIndex(self.llms.novelty.tokenizer, self.categories)

    def contexts(self, users: Sequence[str]) -> list[PromptContext]:
        data = self.ctx.llm.data
        return [prompt_context(self.group_info.get(u, self.fallback), self.sequences.get(u, []), data,
                               self.short_term.get(u, ()), self.items.get(u, ())) for u in users]

    def novelty_logprobs(self, users: Sequence[str]) -> np.ndarray:
        """(U, C) log P(category | N-LLM prompt); with ``llm.cold_start: popularity`` a user without any history
        event gets the log of the history's category distribution (+1 smoothing) instead."""
        from coea.llm.decode import category_logprobs

        b, cfg = self.llms.novelty, self.ctx.llm
        prompts = [novelty_prompt(c, with_group=cfg.data.with_group) for c in self.contexts(users)]
        out = category_logprobs(b.model, b.tokenizer, prompts, self.n_index, batch_size=cfg.batch_size)
        if cfg.cold_start is ColdStart.POPULARITY:
            rows = [i for i, u in enumerate(users) if not self.sequences.get(u)]
            out[rows] = np.log(self.popularity + 1.0) - np.log(np.sum(self.popularity + 1.0))
        return out


class NoveltySft(LlmMethod):
    name = "nllm_sft"

    def score(self, users: Sequence[str]) -> np.ndarray:
        return self.novelty_logprobs(users)


class Coea(NoveltySft):
    name = "coea"
    models_from = Need.PCO

    def score(self, users: Sequence[str]) -> np.ndarray:
        """log P(c | the tuned N-LLM's prompt), plus ``llm.novelty_bonus`` for every category outside the user's
        history: the plain view's operating point (the ``+x`` view, which drops the history, ranks the same)."""
        out = super().score(users)
        if not self.ctx.llm.novelty_bonus:
            return out
        seen = np.zeros(out.shape, dtype=bool)  # (U, C)
        for row, user in enumerate(users):
            seen[row, [self.index[c] for c in self.user_history.get(user, ()) if c in self.index]] = True
        return out + self.ctx.llm.novelty_bonus * ~seen


def encoder_fused(logp_n: np.ndarray, encoder_logits: np.ndarray, weight: float) -> np.ndarray:
    """``log P_N + weight * log_softmax(encoder_logits)`` (U, C); a per-row constant of either term never changes a
    row's order, so renormalising over a user's allowed categories ranks the same."""
    return logp_n + weight * log_softmax_rows(encoder_logits) if weight else logp_n


class NoveltyWithEncoder(NoveltySft):
    name = "nllm_seq"

    def _fit(self, histories: Histories) -> None:
        from coea.evaluation.baselines import Cooccurrence
        from coea.evaluation.dsie_methods import SasRecMethod

        super()._fit(histories)
        self.encoder = SasRecMethod(self.ctx).fit(histories)
        self.cooc = Cooccurrence().fit(histories) if self.ctx.llm.cooc_weight else None

    def score(self, users: Sequence[str]) -> np.ndarray:
        out = encoder_fused(self.novelty_logprobs(users), self.encoder.score(users), self.ctx.llm.encoder_weight)
        if self.cooc is not None:
            out = out + self.ctx.llm.cooc_weight * cooc_log_shares(self.cooc.score(users))
        return out


class CoeaWithEncoder(NoveltyWithEncoder):
    name = "coea_seq"
    models_from = Need.PCO


CANDIDATES_FIRST = 1e6  # subtracted from the log-probabilities of the allowed categories that were not sampled


def verified_scores(logp: np.ndarray, p_yes: np.ndarray, weight: float | None) -> np.ndarray:
    """The score of N-LLM candidates the R-LLM verified: ``log P_N(c) + weight * logit P_R(yes | c)`` (a product of
    the two models' odds, ``weight`` the R-LLM's share), or P(yes) alone when ``weight`` is None."""
    if weight is None:
        return np.asarray(p_yes, dtype=float)
    p = np.clip(np.asarray(p_yes, dtype=float), 1e-9, 1 - 1e-9)
    return np.asarray(logp, dtype=float) + weight * (np.log(p) - np.log1p(-p))


class DualBestOfN(LlmMethod):
    name = "dual_best_of_n"

    def score(self, users: Sequence[str]) -> np.ndarray:
        return self.masked_scores(users)

    def masked_scores(self, users: Sequence[str], exclude: Mapping[str, Collection[str]] | None = None) -> np.ndarray:
        """Candidates (proposed among the allowed categories) rank first, by the verified score
        :func:`verified_scores`; the other allowed categories after them by log P_N-LLM; banned ones ``-inf``."""
        from coea.llm.decode import relevance_scores, sample_categories

        n, r, cfg = self.llms.novelty, self.llms.relevance, self.ctx.llm
        banned = self.banned(users, exclude)
        ctxs = self.contexts(users)
        allowed = self.novelty_logprobs(users)  # (U, C) log P_N-LLM, banned ones -inf below
        for row, b in enumerate(banned):
            allowed[row, [self.index[c] for c in b if c in self.index]] = -np.inf
        if cfg.propose is Propose.SAMPLE:
            prompts = [novelty_prompt(c, with_group=cfg.data.with_group) for c in ctxs]
            cands = sample_categories(n.model, n.tokenizer, prompts, self.n_index, cfg.best_of_n, cfg.temperature,
                                      seed=self.seed, exclude=banned, batch_size=cfg.batch_size)
        else:
            cands = self.top_allowed(allowed, cfg.best_of_n)
        pairs = [(row, c) for row, cs in enumerate(cands) for c in cs]
        rel = [relevance_prompt(ctxs[row], c, with_group=cfg.data.with_group) for row, c in pairs]
        p_yes = relevance_scores(r.model, r.tokenizer, rel, batch_size=cfg.batch_size) if rel else np.zeros(0)
        out = allowed - CANDIDATES_FIRST  # the other allowed categories after every candidate; banned stay -inf
        if pairs:
            rows = np.array([row for row, _ in pairs], dtype=int)
            cols = np.array([self.index[c] for _, c in pairs], dtype=int)
            out[rows, cols] = verified_scores(allowed[rows, cols], p_yes, cfg.verify_weight)
        return out

    def top_allowed(self, allowed: np.ndarray, n: int) -> list[list[str]]:
        """Per row, the ``n`` categories with the highest finite score in ``allowed`` (banned ones are ``-inf``)."""
        top = np.argsort(-allowed, axis=1, kind="stable")[:, :n]
        return [[self.categories[j] for j in cols if np.isfinite(allowed[row, j])] for row, cols in enumerate(top)]


class CoeaDual(DualBestOfN):
    name = "coea_dual"
    models_from = Need.PCO


class RelevanceRank(LlmMethod):
    name = "rllm_rank"

    def score(self, users: Sequence[str]) -> np.ndarray:
        from coea.llm.decode import relevance_scores

        r, cfg = self.llms.relevance, self.ctx.llm
        out = np.zeros((len(users), len(self.categories)))
        for row, c in enumerate(self.contexts(users)):
            prompts = [relevance_prompt(c, cat, with_group=cfg.data.with_group) for cat in self.categories]
            out[row] = relevance_scores(r.model, r.tokenizer, prompts, batch_size=cfg.batch_size)
        return out
