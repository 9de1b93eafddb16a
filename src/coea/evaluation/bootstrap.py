"""Paired bootstrap confidence intervals over users: pure functions of two per-user metric vectors.

Two methods scored on the same U users give per-user values ``a_u`` and ``b_u`` (e.g. S-H@10 of each user's
list, :func:`coea.evaluation.metrics.per_user_metrics`). The difference of their means is
``D = mean_u(a_u) - mean_u(b_u) = mean_u(d_u)`` with ``d_u = a_u - b_u``. Replicate ``r = 1..B`` draws U user
indices ``I_r`` uniformly with replacement and applies the SAME indices to both vectors (paired: a user's two
values stay together, so what the users share cancels out):
``D*_r = mean_{i in I_r}(a_i) - mean_{i in I_r}(b_i) = mean_{i in I_r}(d_i)``. The level-``L`` percentile interval
is ``[Q(D*, (1 - L) / 2), Q(D*, (1 + L) / 2)]`` with ``Q`` the linearly interpolated empirical quantile
(``numpy.quantile``'s default).

Indices: ``I_r[j] = floor(U * x_rj)`` with ``x`` the rows of ``numpy.random.default_rng(seed).random((B, U))``
in order; drawn in blocks of rows, so memory stays bounded (``chunk_elements`` indices at a time) and the
result does not depend on the block size.

**Re-training noise** (:func:`seed_bootstrap_ci`). The interval above covers which users were drawn, not how the
models came out: two trainings of the same model with other seeds differ by more than many effects (README
'Results'). With several trainings (seeds) per arm, ``A`` (S_a x U) and ``B`` (S_b x U), replicate r draws the
users ``I_r`` as above (the same stream, so one seed per arm gives exactly :func:`paired_bootstrap_ci`) and, from a
second stream, S_a rows of A and S_b rows of B with replacement (``J_r``, ``K_r``):
``D*_r = mean_{s in J_r} mean_{i in I_r} A[s, i] - mean_{s in K_r} mean_{i in I_r} B[s, i]``; ``diff`` is the
difference of the two arms' means over all their rows. The seed part of a bootstrap over S rows has (S - 1) / S of
the seeds' variance, so with 2 seeds per arm the interval is too narrow on that part: read it as a lower bound.

**Paired trainings** (``paired_runs=True``). Where row s of B is the model row s of A was made from (the SFT model
a PCO run tuned: "does the loop improve what it tunes"), the question is the mean over trainings of the per-training
effect, not the difference of two independent arms. Replicate r then draws ONE set of S row indices ``J_r`` and
applies it to both arms: ``D*_r = mean_{s in J_r} mean_{i in I_r} (A[s, i] - B[s, i])``, so what a training shares
between its two rows (how well that SFT came out) cancels, as a user's share does in the user bootstrap.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

CHUNK_ELEMENTS = 1 << 21  # indices per block: 2M x (8 B uniform + 8 B index + 8 B value) ~ 48 MB at most


@dataclass(frozen=True)
class PairedCI:
    """The paired bootstrap interval of ``mean(a) - mean(b)``."""

    diff: float  # mean(a - b) over the users
    low: float
    high: float
    n_users: int
    excludes_zero: bool  # low > 0 or high < 0: the difference is significant at this level

    def as_dict(self) -> dict[str, float | bool]:
        """The JSON form written to metrics.json / ablate.json (``n_users`` is stated once, beside it)."""
        return {"diff": self.diff, "low": self.low, "high": self.high, "excludes_zero": self.excludes_zero}


def _percentile_ci(reps: np.ndarray, diff: float, n_users: int, level: float) -> PairedCI:
    """The level-``level`` percentile interval of the replicates ``reps`` around the point estimate ``diff``."""
    low, high = np.quantile(reps, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return PairedCI(diff=diff, low=float(low), high=float(high), n_users=n_users,
                    excludes_zero=bool(low > 0.0 or high < 0.0))


def _paired_differences(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"a and b must be 1-D vectors over the same users, got shapes {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError("no users: a paired bootstrap needs at least one user")
    return a - b


def bootstrap_mean_differences(a: np.ndarray, b: np.ndarray, *, n_boot: int = 2000, seed: int = 0,
                               chunk_elements: int = CHUNK_ELEMENTS) -> np.ndarray:
    """(n_boot,) replicate differences ``D*_r = mean_{i in I_r}(a_i - b_i)`` (module doc), computed in blocks of
    at most ``max(chunk_elements, U)`` indices."""
    d = _paired_differences(a, b)
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot!r}")
    out = np.empty(n_boot, dtype=np.float64)
    for start, stop, idx in _user_draws(d.size, n_boot, seed, chunk_elements):
        out[start:stop] = d[idx].mean(axis=1)
    return out


def _user_draws(n: int, n_boot: int, seed: int, chunk_elements: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """The replicates' user indices ``I_r`` (module doc) in blocks: (start, stop, (stop - start, n) indices) with at
    most ``max(chunk_elements, n)`` indices a block, all from one stream seeded by ``seed``."""
    rng = np.random.default_rng(seed)
    rows = max(1, chunk_elements // n)
    for start in range(0, n_boot, rows):
        stop = min(start + rows, n_boot)
        yield start, stop, np.minimum((rng.random((stop - start, n)) * n).astype(np.int64), n - 1)


def paired_bootstrap_ci(a: np.ndarray, b: np.ndarray, *, n_boot: int = 2000, level: float = 0.95,
                        seed: int = 0) -> PairedCI:
    """The percentile bootstrap interval of ``mean(a) - mean(b)`` over users, paired (module doc):
    ``diff = mean(a - b)``, ``[low, high] = [Q(D*, (1 - level) / 2), Q(D*, (1 + level) / 2)]`` over ``n_boot``
    replicates seeded by ``seed`` (the same seed resamples the same users, for every pair of vectors of this
    length)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    d = _paired_differences(a, b)
    reps = bootstrap_mean_differences(a, b, n_boot=n_boot, seed=seed)
    return _percentile_ci(reps, float(d.mean()), int(d.size), level)


def seed_bootstrap_ci(a_runs: list[np.ndarray], b_runs: list[np.ndarray], *, n_boot: int = 2000,
                      level: float = 0.95, seed: int = 0, paired_runs: bool = False) -> PairedCI:
    """The bootstrap interval of ``mean(A) - mean(B)`` resampling users (paired) AND each arm's trainings (module
    doc: re-training noise); ``a_runs``/``b_runs``: one per-user vector per training, all over the same users.
    With one training per arm it equals :func:`paired_bootstrap_ci` of the two vectors. ``paired_runs``: row s of
    A and row s of B come from one training (module doc: paired trainings), resampled together; both arms need the
    same number of rows."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if not a_runs or not b_runs:
        raise ValueError("each arm needs at least one training's per-user vector")
    a = np.stack([np.asarray(v, dtype=np.float64) for v in a_runs])
    b = np.stack([np.asarray(v, dtype=np.float64) for v in b_runs])
    if a.shape[1:] != b.shape[1:] or a.ndim != 2:
        raise ValueError(f"every vector must cover the same users, got arms of shapes {a.shape} and {b.shape}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot!r}")
    if paired_runs and a.shape[0] != b.shape[0]:
        raise ValueError(f"paired trainings need as many trainings in each arm, got {a.shape[0]} and {b.shape[0]}")
    n = a.shape[1]
    if n == 0:
        raise ValueError("no users: a paired bootstrap needs at least one user")
    runs = np.random.default_rng([seed, 1])
    reps = np.empty(n_boot, dtype=np.float64)
    for start, stop, idx in _user_draws(n, n_boot, seed, CHUNK_ELEMENTS):
        if paired_runs:  # one draw of trainings for both arms: each training's own difference
            reps[start:stop] = _drawn_runs_mean(a - b, idx, runs)
        else:
            reps[start:stop] = _drawn_runs_mean(a, idx, runs) - _drawn_runs_mean(b, idx, runs)
    return _percentile_ci(reps, float(a.mean() - b.mean()), int(n), level)


def _drawn_runs_mean(m: np.ndarray, idx: np.ndarray, runs: np.random.Generator) -> np.ndarray:
    """Per replicate row of ``idx`` (rows x U user indices): each training's (row of ``m``, S x U) mean over the
    drawn users, then the mean over S trainings drawn with replacement from ``runs`` (no draw with one training)."""
    per_run = np.stack([m[s][idx].mean(axis=1) for s in range(m.shape[0])], axis=1)  # (rows, S)
    if m.shape[0] == 1:
        return per_run[:, 0]
    return np.take_along_axis(per_run, runs.integers(0, m.shape[0], size=per_run.shape), axis=1).mean(axis=1)
