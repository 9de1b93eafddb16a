"""Summary statistics of a canonical interaction table (``coea data stats``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from coea.data.schema import CATEGORY, ITEM, TIMESTAMP, USER
from coea.data.timestamps import iso_utc


def top_category_share(df: pd.DataFrame, top_fraction: float = 0.2) -> float:
    """Share of interactions held by the ``ceil(top_fraction * n_categories)`` most popular categories."""
    counts = df[CATEGORY].value_counts().to_numpy()
    n_top = max(1, int(np.ceil(top_fraction * counts.size)))
    return float(counts[:n_top].sum() / counts.sum())


def data_stats(df: pd.DataFrame) -> dict[str, Any]:
    """Users, items, interactions, categories, time span, per-user activity and category concentration."""
    per_user = df.groupby(USER, sort=False).size()
    t_min, t_max = int(df[TIMESTAMP].min()), int(df[TIMESTAMP].max())
    return {
        "users": int(df[USER].nunique()),
        "items": int(df[ITEM].nunique()),
        "interactions": len(df),
        "categories": int(df[CATEGORY].nunique()),
        "time_span": {"start": iso_utc(t_min), "end": iso_utc(t_max), "days": round((t_max - t_min) / 86400, 1)},
        "interactions_per_user": {
            "min": int(per_user.min()), "median": float(per_user.median()), "max": int(per_user.max()),
        },
        "top20pct_category_share": round(top_category_share(df, 0.2), 4),
    }
