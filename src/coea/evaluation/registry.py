"""The method registry: the single source of truth for method names, factories and what each method needs.

``pop`` is the method as it is; ``pop+x`` is the same method with each user's history categories excluded
before the top-K is taken. ``*_novel`` methods always exclude history (so ``pop+x`` equals ``pop_novel``).

Every method declares the fitted artifacts it needs (:class:`Need`): the DSIE groups (``dsie/``), the SFT
LLMs (``llm/``) or the models after the PCO rounds (``pco/``). Stages load exactly those
(:func:`coea.stages.artifacts.load_artifacts`); nothing trains inside a method, and a need that is not met
is a :class:`~coea.errors.CoeaInputError` naming the method and the missing artifact.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from coea.config_values import close_match
from coea.errors import CoeaInputError
from coea.evaluation.baselines import Cooccurrence, Ease, Markov, Popularity, RandomMethod, ScoringMethod
from coea.llm.sft_config import LlmConfig

EXCLUDE_SUFFIX = "+x"


class Need(enum.StrEnum):
    """A fitted artifact a method reads."""

    DSIE = "dsie"  # groups, profiles, the long-term encoder (dsie/)
    LLMS = "llms"  # the SFT Novelty and Relevance LLMs (llm/)
    PCO = "pco"  # the models after the last complete PCO round (pco/)


@dataclass
class MethodArtifacts:
    """The fitted artifacts handed to methods (None = not loaded)."""

    dsie: Any = None  # coea.dsie.run.DsieResult
    llms: Any = None  # coea.llm.run.LlmTrainResult (SFT models)
    pco: Any = None  # coea.llm.run.LlmTrainResult (models after the last PCO round)

    def get(self, need: Need, method: str) -> Any:
        """The artifact ``need`` for ``method``; a clear error when it was not loaded."""
        value = getattr(self, need.value)
        if value is None:
            raise CoeaInputError(f"method {method!r} needs the {need.value} artifact, which was not given",
                                 option="--methods", fix=f"pass a run that holds {need.value}/ (e.g. --from-run) "
                                                          "or let `coea evaluate` train it; or drop the method")
        return value


@dataclass(frozen=True)
class MethodContext:
    """What a method factory may use besides histories."""

    seed: int = 0
    llm: LlmConfig = field(default_factory=LlmConfig)  # inference settings and prompt options of the LLM methods
    artifacts: MethodArtifacts = field(default_factory=MethodArtifacts, compare=False)


def method_context(cfg, artifacts: MethodArtifacts | None = None) -> MethodContext:
    """The context a :class:`~coea.config.RunConfig` describes, with the given fitted artifacts."""
    return MethodContext(seed=cfg.eval.seed, llm=cfg.llm, artifacts=artifacts or MethodArtifacts())


Factory = Callable[[MethodContext], ScoringMethod]


@dataclass(frozen=True)
class MethodInfo:
    """A registered method: how to build it and which fitted artifacts it reads."""

    factory: Factory
    needs: frozenset[Need] = frozenset()


def _dsie_methods():
    """Imported lazily: these methods need torch, the baselines do not."""
    from coea.evaluation import dsie_methods

    return dsie_methods


def _llm_methods():
    """Imported lazily: needs torch and transformers."""
    from coea.evaluation import llm_methods

    return llm_methods


_LLM = frozenset({Need.DSIE, Need.LLMS})
METHODS: dict[str, MethodInfo] = {
    "random": MethodInfo(lambda ctx: RandomMethod(seed=ctx.seed)),
    "pop": MethodInfo(lambda ctx: Popularity()),
    "pop_novel": MethodInfo(lambda ctx: Popularity(exclude_history=True)),
    "markov": MethodInfo(lambda ctx: Markov()),
    "cooc_novel": MethodInfo(lambda ctx: Cooccurrence(exclude_history=True)),
    "ease_novel": MethodInfo(lambda ctx: Ease(exclude_history=True)),
    "sasrec": MethodInfo(lambda ctx: _dsie_methods().SasRecMethod(ctx), frozenset({Need.DSIE})),
    "sasrec_ease": MethodInfo(lambda ctx: _dsie_methods().SasRecEase(ctx), frozenset({Need.DSIE})),
    "group_pop_novel": MethodInfo(lambda ctx: _dsie_methods().GroupPopularity(ctx, exclude_history=True),
                                  frozenset({Need.DSIE})),
    "nllm_sft": MethodInfo(lambda ctx: _llm_methods().NoveltySft(ctx, seed=ctx.seed), _LLM),
    "dual_best_of_n": MethodInfo(lambda ctx: _llm_methods().DualBestOfN(ctx, seed=ctx.seed), _LLM),
    "rllm_rank": MethodInfo(lambda ctx: _llm_methods().RelevanceRank(ctx, seed=ctx.seed), _LLM),
    "coea": MethodInfo(lambda ctx: _llm_methods().Coea(ctx, seed=ctx.seed), frozenset({Need.DSIE, Need.PCO})),
    "coea_dual": MethodInfo(lambda ctx: _llm_methods().CoeaDual(ctx, seed=ctx.seed), frozenset({Need.DSIE, Need.PCO})),
    "nllm_seq": MethodInfo(lambda ctx: _llm_methods().NoveltyWithEncoder(ctx, seed=ctx.seed), _LLM),
    "coea_seq": MethodInfo(lambda ctx: _llm_methods().CoeaWithEncoder(ctx, seed=ctx.seed),
                           frozenset({Need.DSIE, Need.PCO})),
}


@dataclass(frozen=True)
class MethodSpec:
    """A parsed method name: the base method and whether the ``+x`` view is asked for."""

    name: str
    base: str
    exclude_history: bool

    @property
    def needs(self) -> frozenset[Need]:
        return METHODS[self.base].needs


def parse_method(name: str) -> MethodSpec:
    name = name.strip()
    base = name[: -len(EXCLUDE_SUFFIX)] if name.endswith(EXCLUDE_SUFFIX) else name
    if base not in METHODS:
        match = close_match(name, [*METHODS, *(m + EXCLUDE_SUFFIX for m in METHODS)])
        suffix = f" ('{EXCLUDE_SUFFIX}' is the only suffix)" if "+" in name else ""
        fix = (f"did you mean {match!r}?{suffix}" if match else
               f"choose from {', '.join(sorted(METHODS))}, each optionally with the suffix '{EXCLUDE_SUFFIX}'")
        raise CoeaInputError(f"unknown method {name!r}", option="--methods", fix=fix)
    return MethodSpec(name, base, name.endswith(EXCLUDE_SUFFIX))


def needs_of(methods: Iterable[str]) -> frozenset[Need]:
    """Every artifact the named methods need together."""
    out: frozenset[Need] = frozenset()
    for name in methods:
        out |= parse_method(name).needs
    return out


def build_method(spec: MethodSpec, ctx: MethodContext) -> ScoringMethod:
    return METHODS[spec.base].factory(ctx)
