"""Paired comparisons against a reference method: which method is the reference, and the ``paired_ci`` section
of metrics.json / ablate.json (each method's paired bootstrap CI of its metric differences,
:func:`coea.evaluation.bootstrap.paired_bootstrap_ci`, over the same users)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from coea.errors import CoeaInputError
from coea.evaluation.bootstrap import PairedCI, paired_bootstrap_ci
from coea.evaluation.registry import EXCLUDE_SUFFIX, Need, parse_method

PAIRED_METRICS = ("S-H", "C-H")  # the metrics compared in metrics.json's paired_ci
NOVEL_VIEW_SUFFIXES = (EXCLUDE_SUFFIX, "_novel")  # a method name whose lists never hold a history category


def is_baseline(method: str) -> bool:
    """A baseline: a method (``+x`` view or plain) whose registry entry needs neither the LLMs nor PCO."""
    return not (parse_method(method).needs & {Need.LLMS, Need.PCO})


def best_by(methods: Mapping[str, Mapping[str, float]], key: str, candidates: Sequence[str]) -> str | None:
    """The candidate with the highest ``methods[c][key]`` (ties: the first in ``candidates``); None if none."""
    best: str | None = None
    for name in candidates:
        if best is None or methods[name].get(key, float("-inf")) > methods[best].get(key, float("-inf")):
            best = name
    return best


def choose_reference(methods: Mapping[str, Mapping[str, float]], k: int, reference: str | None = None) -> str:
    """``reference`` if given (it must be among ``methods``); else the best baseline: the baseline
    (:func:`is_baseline`) with the highest S-H@``k`` among ``methods`` (in their order, ties: the first); else,
    when no baseline was evaluated, the first method."""
    if reference is not None:
        if reference not in methods:
            raise CoeaInputError(f"reference method {reference!r} was not evaluated", option="--reference",
                                 fix=f"choose one of {list(methods)}")
        return reference
    best = best_by(methods, f"S-H@{k}", [m for m in methods if is_baseline(m)])
    return best if best is not None else next(iter(methods))


def paired_cis(per_user: Mapping[str, Mapping[str, np.ndarray]], reference: Mapping[str, np.ndarray], *,
               n_boot: int, level: float, seed: int) -> dict[str, dict[str, PairedCI]]:
    """Per method, per metric key present both in its vectors and in ``reference``'s: the paired bootstrap CI
    of ``method - reference`` (the same ``seed`` for all, so every comparison resamples the same users)."""
    return {name: {key: paired_bootstrap_ci(vec, reference[key], n_boot=n_boot, level=level, seed=seed)
                   for key, vec in vectors.items() if key in reference}
            for name, vectors in per_user.items()}


def ci_section(cis: Mapping[str, Mapping[str, PairedCI]], reference: str, k: int, metrics: Sequence[str], *,
               n_users: int, n_boot: int, level: float) -> dict[str, Any]:
    """The JSON ``paired_ci`` section: ``{"reference", "k", "metrics", "n_users", "n_boot", "level", "methods":
    {method: {"<metric>@<k>": {"diff", "low", "high", "excludes_zero"}}}}``."""
    return {"reference": reference, "k": k, "metrics": list(metrics), "n_users": n_users, "n_boot": n_boot,
            "level": level, "methods": {name: {key: ci.as_dict() for key, ci in per.items()}
                                        for name, per in cis.items()}}


def paired_ci_section(per_user: Mapping[str, Mapping[str, np.ndarray]], reference: str, k: int, *,
                      n_boot: int, level: float, seed: int, metrics: Sequence[str] = PAIRED_METRICS) -> dict[str, Any]:
    """metrics.json's ``paired_ci``: every method of ``per_user`` but ``reference`` against it, on
    ``metrics`` at ``k`` (``per_user[m]["<metric>@<k>"]``: per-user values, the same users in the same order)."""
    keys = [f"{m}@{k}" for m in metrics]
    ref = {key: per_user[reference][key] for key in keys}
    others = {name: {key: v[key] for key in keys} for name, v in per_user.items() if name != reference}
    cis = paired_cis(others, ref, n_boot=n_boot, level=level, seed=seed)
    return ci_section(cis, reference, k, metrics, n_users=len(ref[keys[0]]), n_boot=n_boot, level=level)
