"""Method names -> method objects, and the ``+x`` view.

``pop`` is the method as it is; ``pop+x`` is the same method with each user's history categories excluded
before the top-K is taken. ``*_novel`` methods always exclude history (so ``pop+x`` equals ``pop_novel``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from coea.dsie.config import DsieConfig
from coea.errors import CoeaInputError
from coea.evaluation.baselines import Cooccurrence, Markov, Popularity, RandomMethod, ScoringMethod
from coea.llm.sft_config import LlmConfig
from coea.pco.config import PcoConfig

EXCLUDE_SUFFIX = "+x"


@dataclass(frozen=True)
class MethodContext:
    """What a method factory may use besides histories (later stages add groups and models here)."""

    seed: int = 0
    min_history: int = 5  # warm/cold threshold used by methods that group users (the split's)
    dsie: DsieConfig = field(default_factory=DsieConfig)
    llm: LlmConfig = field(default_factory=LlmConfig)
    pco: PcoConfig = field(default_factory=PcoConfig)
    n_short: int = 10  # the split's short-term length (PCO prompts the users' state at each period's end)
    cache: dict[str, Any] = field(default_factory=dict, compare=False)  # shared fits (e.g. one DSIE per run)


def method_context(cfg) -> MethodContext:
    """The context a :class:`~coea.config.RunConfig` describes (an empty cache)."""
    return MethodContext(seed=cfg.eval.seed, min_history=cfg.split.min_history, dsie=cfg.dsie, llm=cfg.llm,
                         pco=cfg.pco, n_short=cfg.split.n_short)


Factory = Callable[[MethodContext], ScoringMethod]

FACTORIES: dict[str, Factory] = {
    "random": lambda ctx: RandomMethod(seed=ctx.seed),
    "pop": lambda ctx: Popularity(),
    "pop_novel": lambda ctx: Popularity(exclude_history=True),
    "markov": lambda ctx: Markov(),
    "cooc_novel": lambda ctx: Cooccurrence(exclude_history=True),
    "sasrec": lambda ctx: _dsie_methods().SasRecMethod(ctx),
    "group_pop_novel": lambda ctx: _dsie_methods().GroupPopularity(ctx, exclude_history=True),
    "nllm_sft": lambda ctx: _llm_methods().NoveltySft(ctx, seed=ctx.seed),
    "dual_best_of_n": lambda ctx: _llm_methods().DualBestOfN(ctx, seed=ctx.seed),
    "rllm_rank": lambda ctx: _llm_methods().RelevanceRank(ctx, seed=ctx.seed),
    "coea": lambda ctx: _llm_methods().Coea(ctx, seed=ctx.seed),
}


def _llm_methods():
    """Imported lazily: needs torch and transformers."""
    from coea.evaluation import llm_methods

    return llm_methods


def _dsie_methods():
    """Imported lazily: these methods need torch, the baselines above do not."""
    from coea.evaluation import dsie_methods

    return dsie_methods


@dataclass(frozen=True)
class MethodSpec:
    """A parsed method name: the base method and whether the ``+x`` view is asked for."""

    name: str
    base: str
    exclude_history: bool


def parse_method(name: str) -> MethodSpec:
    name = name.strip()
    base = name[: -len(EXCLUDE_SUFFIX)] if name.endswith(EXCLUDE_SUFFIX) else name
    if base not in FACTORIES:
        raise CoeaInputError(f"unknown method {name!r}", option="--methods",
                             fix=f"choose from {sorted(FACTORIES)}, each optionally with the suffix '+x'")
    return MethodSpec(name, base, name.endswith(EXCLUDE_SUFFIX))


def build_method(spec: MethodSpec, ctx: MethodContext) -> ScoringMethod:
    return FACTORIES[spec.base](ctx)
