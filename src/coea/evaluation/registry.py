"""Method names -> method objects, and the ``+x`` view.

``pop`` is the method as it is; ``pop+x`` is the same method with each user's history categories excluded
before the top-K is taken. ``*_novel`` methods always exclude history (so ``pop+x`` equals ``pop_novel``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from coea.errors import CoeaInputError
from coea.evaluation.baselines import Cooccurrence, Markov, Popularity, RandomMethod, ScoringMethod

EXCLUDE_SUFFIX = "+x"


@dataclass(frozen=True)
class MethodContext:
    """What a method factory may use besides histories (later stages add groups and models here)."""

    seed: int = 0


Factory = Callable[[MethodContext], ScoringMethod]

FACTORIES: dict[str, Factory] = {
    "random": lambda ctx: RandomMethod(seed=ctx.seed),
    "pop": lambda ctx: Popularity(),
    "pop_novel": lambda ctx: Popularity(exclude_history=True),
    "markov": lambda ctx: Markov(),
    "cooc_novel": lambda ctx: Cooccurrence(exclude_history=True),
}


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
