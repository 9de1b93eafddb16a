"""Category-level recommendation metrics: pure functions, formula in each docstring.

Notation, per user u: ``R`` = the top-K list (ordered), ``H`` = history categories, ``T`` = future categories,
``N = T - H`` = novel categories taken up, ``tail`` = the long-tail categories. ``k`` is the cut-off K; a list
shorter than K (e.g. after exclusions) still divides by K. :func:`per_user_metrics` gives each metric's value per
evaluated user (what the paired bootstrap of :mod:`coea.evaluation.bootstrap` resamples); :func:`evaluate_lists`
averages them over users; ``coverage`` is computed over all users at once.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence

import numpy as np


def hit(rec: Sequence[str], target: Collection[str], k: int) -> float:
    """C-H@K = 1 if R[:K] ∩ T ≠ ∅ else 0."""
    return float(any(c in target for c in rec[:k]))


def ndcg(rec: Sequence[str], target: Collection[str], k: int) -> float:
    """C-N@K = DCG / IDCG with DCG = Σ_{i<K, R_i∈T} 1/log2(i+2) and IDCG = Σ_{i<min(|T|,K)} 1/log2(i+2).

    0 when T is empty.
    """
    dcg = sum(1.0 / math.log2(i + 2) for i, c in enumerate(rec[:k]) if c in target)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(target), k)))
    return dcg / ideal if ideal > 0 else 0.0


def novel_proportion(rec: Sequence[str], history: Collection[str], k: int) -> float:
    """NCP@K = |R[:K] - H| / K."""
    return sum(1 for c in rec[:k] if c not in history) / k


def long_tail_proportion(rec: Sequence[str], tail: Collection[str], k: int) -> float:
    """CLTP@K = |R[:K] ∩ tail| / K."""
    return sum(1 for c in rec[:k] if c in tail) / k


def serendipity_hit(rec: Sequence[str], novel_taken: Collection[str], k: int) -> float:
    """S-H@K = 1 if R[:K] ∩ N ≠ ∅ else 0, with N = T - H (novel AND taken up)."""
    return hit(rec, novel_taken, k)


def serendipity_precision(rec: Sequence[str], novel_taken: Collection[str], k: int) -> float:
    """S-P@K = |R[:K] ∩ N| / K."""
    return sum(1 for c in rec[:k] if c in novel_taken) / k


def coverage(recs: Mapping[str, Sequence[str]], n_categories: int, k: int) -> float:
    """Cov@K = |∪_u R_u[:K]| / |C| (distinct categories recommended over all users / all categories)."""
    seen = {c for rec in recs.values() for c in rec[:k]}
    return len(seen) / n_categories if n_categories else 0.0


def long_tail(counts: Mapping[str, int], head_share: float = 0.8) -> set[str]:
    """The long tail: categories outside the head, the head being the fewest most popular categories whose
    counts reach ``head_share`` of all events (ties in count broken by name). Categories with zero count
    (in the universe but never in history) are tail."""
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    total = sum(counts.values())
    head: set[str] = set()
    running = 0
    for cat, n in ordered:
        if total and running >= head_share * total:
            break
        head.add(cat)
        running += n
    return {c for c in counts if c not in head}


PER_USER = {
    "C-H": lambda r, h, t, n, tail, k: hit(r, t, k),
    "C-N": lambda r, h, t, n, tail, k: ndcg(r, t, k),
    "NCP": lambda r, h, t, n, tail, k: novel_proportion(r, h, k),
    "CLTP": lambda r, h, t, n, tail, k: long_tail_proportion(r, tail, k),
    "S-H": lambda r, h, t, n, tail, k: serendipity_hit(r, n, k),
    "S-P": lambda r, h, t, n, tail, k: serendipity_precision(r, n, k),
}


def per_user_metrics(
    recs: Mapping[str, Sequence[str]],
    users: Sequence[str],
    history: Mapping[str, Collection[str]],
    future: Mapping[str, Collection[str]],
    tail: Collection[str],
    ks: Sequence[int],
) -> dict[str, np.ndarray]:
    """``{"<metric>@<K>": (U,) float array}``: every per-user metric (all but ``Cov``) at every K, one value per
    user in the order of ``users`` (a user missing from ``recs`` gets an empty list)."""
    empty: frozenset[str] = frozenset()
    rows = []
    for u in users:
        r = recs.get(u, [])
        h, t = history.get(u, empty), future.get(u, empty)
        n = {c for c in t if c not in h}
        rows.append([fn(r, h, t, n, tail, k) for k in ks for fn in PER_USER.values()])
    values = np.array(rows, dtype=np.float64).reshape(len(users), len(ks) * len(PER_USER))
    names = [f"{name}@{k}" for k in ks for name in PER_USER]
    return {name: values[:, j] for j, name in enumerate(names)}


def _mean_in_order(values: Iterable[float]) -> float:
    """The mean, summed left to right (the order :func:`evaluate_lists` has always used, so figures are stable
    to the last bit)."""
    total, n = 0.0, 0
    for v in values:
        total += float(v)
        n += 1
    return total / n


def evaluate_lists(
    recs: Mapping[str, Sequence[str]],
    users: Sequence[str],
    history: Mapping[str, Collection[str]],
    future: Mapping[str, Collection[str]],
    tail: Collection[str],
    n_categories: int,
    ks: Sequence[int],
) -> dict[str, float]:
    """Every metric at every K: the mean over ``users`` of :func:`per_user_metrics`, and ``Cov`` over them all."""
    out: dict[str, float] = {}
    if not users:
        return out
    per_user = per_user_metrics(recs, users, history, future, tail, ks)
    for k in ks:
        for name in PER_USER:
            out[f"{name}@{k}"] = _mean_in_order(per_user[f"{name}@{k}"])
        out[f"Cov@{k}"] = coverage({u: recs.get(u, []) for u in users}, n_categories, k)
    return out
