"""Group profiles: statistics per group and a text profile used in the LLM prompts.

``template`` (default) writes a deterministic text from the statistics. ``llm`` prompts a local Hugging Face
causal LM with the statistics and stores what it generates: useful text needs a real pretrained model (a
from-scratch model only exercises the code path).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from coea.data.schema import CATEGORY, USER
from coea.dsie.config import ProfileConfig, ProfilerKind


def _adoption_rate(g: pd.DataFrame) -> float:
    """Share of a user's distinct categories first seen in the later half of the user's history."""
    half = len(g) // 2
    first = set(g[CATEGORY].iloc[:half])
    distinct = set(g[CATEGORY])
    return len(distinct - first) / len(distinct) if distinct and half else 0.0


def group_stats(history: pd.DataFrame, user_group: Mapping[str, str], top: int) -> dict[str, dict[str, Any]]:
    """Per group: size, top categories with shares, breadth, adoption rate (history events of its members)."""
    df = history[history[USER].isin(user_group)]
    df = df.assign(group=df[USER].map(user_group))
    sizes = Counter(user_group.values())  # group -> members (one pass, not one per group)
    out: dict[str, dict[str, Any]] = {}
    for gid, g in df.groupby("group", sort=True):
        shares = g[CATEGORY].value_counts(normalize=True)
        per_user = g.groupby(USER, sort=False)
        out[str(gid)] = {
            "size": int(sizes[gid]),
            "events": len(g),
            "top_categories": [{"category": c, "share": round(float(s), 4)} for c, s in shares.head(top).items()],
            "breadth": round(float(per_user[CATEGORY].nunique().mean()), 2),
            "adoption_rate": round(float(np.mean([_adoption_rate(u) for _, u in per_user])), 4),
        }
    return out


def template_profile(gid: str, stats: Mapping[str, Any]) -> str:
    """A deterministic one-paragraph profile from a group's statistics."""
    favs = ", ".join(f"{t['category']} ({t['share']:.0%})" for t in stats["top_categories"])
    return (f"Group {gid}: {stats['size']} users. Long-term favourites: {favs}. "
            f"Members explore {stats['breadth']:.0f} categories on average; "
            f"{stats['adoption_rate']:.0%} of their categories were first tried in the later half of their history.")


def build_profiles(history: pd.DataFrame, user_group: Mapping[str, str], csid_of_group: Mapping[str, str],
                   cfg: ProfileConfig, *, device: str = "cpu") -> dict[str, dict[str, Any]]:
    """``profiles.json`` content: group id -> {csid, profile, stats}; an ``llm`` profiler runs on ``device``."""
    stats = group_stats(history, user_group, cfg.top_categories)
    profiler = None
    if cfg.kind is ProfilerKind.LLM:
        from coea.dsie.llm_profiler import LlmProfiler

        assert cfg.model_path is not None
        profiler = LlmProfiler(Path(cfg.model_path), cfg.max_new_tokens, device=device)
    out = {}
    for gid, s in stats.items():
        text = profiler.profile(s) if profiler is not None else template_profile(gid, s)
        out[gid] = {"csid": csid_of_group[gid], "profile": text, "stats": s, "profiler": cfg.kind.value}
    return out
