"""``group_report.json``: does grouping by CSID put similar users together, and how well are codes used?

Cosine similarities are means over *pairs of distinct users*: intra = pairs in the same group, inter = pairs
in different groups, ratio = intra / inter (> 1 means groups are more homogeneous than the population).
They are computed from group sums in O(N·D): Σ_{i≠j∈g} cos(x_i, x_j) = ‖Σ_{i∈g} x̂_i‖² − Σ_{i∈g} ‖x̂_i‖².
The same numbers are reported for k-means with the same number of groups on the same embeddings.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from coea.dsie.rqvae import collision_rate, perplexity, utilisation


def intra_inter_cosine(x: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    """Mean pairwise cosine within and across groups of the rows of ``x`` (N, D); zero rows are ignored."""
    norms = np.linalg.norm(x, axis=1)
    keep = norms > 0
    xn = x[keep] / norms[keep, None]  # (N', D)
    lab = np.asarray(labels)[keep]
    total_sum, n = xn.sum(axis=0), len(xn)
    intra_sum, intra_pairs = 0.0, 0
    for g in np.unique(lab):
        members = xn[lab == g]
        s = members.sum(axis=0)
        intra_sum += float(s @ s) - len(members)
        intra_pairs += len(members) * (len(members) - 1)
    all_sum = float(total_sum @ total_sum) - n
    inter_pairs = n * (n - 1) - intra_pairs
    intra = intra_sum / intra_pairs if intra_pairs else float("nan")
    inter = (all_sum - intra_sum) / inter_pairs if inter_pairs else float("nan")
    return {"intra": intra, "inter": inter, "ratio": intra / inter if inter_pairs and inter else float("nan")}


def size_summary(labels: Sequence[str]) -> dict[str, Any]:
    sizes = sorted(Counter(labels).values(), reverse=True)
    return {"M_N": len(sizes), "min": int(sizes[-1]), "median": float(np.median(sizes)), "max": int(sizes[0]),
            "sizes": [int(s) for s in sizes]}


def _partition_report(labels: Sequence[str], emb: np.ndarray, dist: np.ndarray,
                      truth: Sequence[int] | None) -> dict[str, Any]:
    out = {"sizes": size_summary(labels), "embedding_cosine": intra_inter_cosine(emb, labels),
           "category_cosine": intra_inter_cosine(dist, labels)}
    if truth is not None:
        from sklearn.metrics import adjusted_rand_score  # here: steps that only read a DSIE dir skip sklearn

        out["ari_vs_planted"] = float(adjusted_rand_score(truth, labels))
    return out


def group_report(
    csids: np.ndarray,
    labels: Sequence[str],
    emb: np.ndarray,
    dist: np.ndarray,
    codebook_sizes: Sequence[int],
    *,
    truth: Mapping[str, int] | None = None,
    users: Sequence[str] = (),
    seed: int = 0,
) -> dict[str, Any]:
    """Report over warm users: CSID groups vs k-means(M_N) on the same embeddings (rows aligned)."""
    from sklearn.cluster import KMeans  # here: steps that only read a DSIE dir skip sklearn (~1.5 s per step)

    truth_list = [truth[u] for u in users] if truth is not None else None
    n_groups = len(set(labels))
    km = KMeans(n_clusters=n_groups, n_init=4, random_state=seed).fit_predict(emb)
    levels = [{"level": level, "codebook_size": int(size),
               "utilisation": utilisation(csids[:, level], size), "perplexity": perplexity(csids[:, level], size)}
              for level, size in enumerate(codebook_sizes)]
    return {
        "users": len(labels),
        "codebooks": levels,
        "csid_collision_rate": collision_rate(csids),
        "csid_groups": _partition_report(labels, emb, dist, truth_list),
        "kmeans_same_M_N": _partition_report([str(k) for k in km], emb, dist, truth_list),
    }


@dataclass(frozen=True)
class DsieSummary:
    """The handful of DSIE figures a person looks at first, read once from a :func:`group_report` dict."""

    m_n: int  # number of non-empty groups
    group_size_min: int
    group_size_median: float
    group_size_max: int
    category_cosine_ratio: float  # intra / inter mean cosine of users' category distributions, CSID groups
    kmeans_category_cosine_ratio: float  # the same for k-means with the same number of groups
    codebook_utilisation: tuple[float, ...]  # per RQ-VAE level
    codebook_perplexity: tuple[float, ...]
    csid_collision_rate: float
    cold_start_users: int
    ari_vs_planted: float | None = None  # synthetic data only
    kmeans_ari_vs_planted: float | None = None

    @classmethod
    def from_report(cls, report: dict[str, Any]) -> DsieSummary:
        csid, km = report["csid_groups"], report["kmeans_same_M_N"]
        sizes = csid["sizes"]
        return cls(int(sizes["M_N"]), int(sizes["min"]), float(sizes["median"]), int(sizes["max"]),
                   float(csid["category_cosine"]["ratio"]), float(km["category_cosine"]["ratio"]),
                   tuple(float(c["utilisation"]) for c in report["codebooks"]),
                   tuple(float(c["perplexity"]) for c in report["codebooks"]),
                   float(report.get("csid_collision_rate", 0.0)), int(report.get("cold_start_users", 0)),
                   csid.get("ari_vs_planted"), km.get("ari_vs_planted"))

    def as_dict(self) -> dict[str, Any]:
        """What ``coea group`` prints (rounded)."""
        out: dict[str, Any] = {
            "M_N": self.m_n,
            "group_size_min_median_max": [self.group_size_min, self.group_size_median, self.group_size_max],
            "category_cosine_ratio": round(self.category_cosine_ratio, 4),
            "kmeans_category_cosine_ratio": round(self.kmeans_category_cosine_ratio, 4),
            "codebook_utilisation": [round(u, 3) for u in self.codebook_utilisation],
            "cold_start_users": self.cold_start_users,
        }
        if self.ari_vs_planted is not None:
            out["ari_vs_planted"] = round(self.ari_vs_planted, 4)
            out["kmeans_ari_vs_planted"] = round(float(self.kmeans_ari_vs_planted or 0.0), 4)
        return out

    def metrics(self) -> dict[str, float]:
        """Flat numbers (for a KFP Metrics artifact)."""
        out = {"M_N": float(self.m_n), "category_cosine_ratio": self.category_cosine_ratio,
               "kmeans_category_cosine_ratio": self.kmeans_category_cosine_ratio,
               "group_size_min": float(self.group_size_min), "group_size_max": float(self.group_size_max),
               "codebook_utilisation_mean": sum(self.codebook_utilisation) / max(len(self.codebook_utilisation), 1),
               "cold_start_users": float(self.cold_start_users)}
        if self.ari_vs_planted is not None:
            out["ari_vs_planted"] = float(self.ari_vs_planted)
            out["kmeans_ari_vs_planted"] = float(self.kmeans_ari_vs_planted or 0.0)
        return out


def dsie_summary(report: dict[str, Any]) -> DsieSummary:
    """:meth:`DsieSummary.from_report`."""
    return DsieSummary.from_report(report)
