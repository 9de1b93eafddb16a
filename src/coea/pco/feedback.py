"""Logged feedback of a PCO round, read from the history only.

Round r prompts the users active in its period with their state at the period's end (:mod:`coea.pco.periods`).
Their feedback lies in the round's *feedback period*, the next history period (``end <= timestamp <
window.feedback_end``): a category is *taken up* by a user when it appears among their events there and is not
in what they had seen by the period's end (a novel take-up, the event the N-LLM's proposals aim at). A user
without events in the feedback period has no feedback (None): nothing is known about their proposals, which is
different from an empty tuple (active, took up nothing new). The feedback period never extends past the
history the loop was given (the loop only ever receives histories, so nothing here can read the evaluation
future).

The feedback feeds the ``feedback``/``hybrid`` rewards (:mod:`coea.pco.reward`), the injection of logged
positives (:func:`inject_taken_up`) and the on-policy R-LLM refresh (:func:`on_policy_examples`).

**Exposure** (:func:`exposed_categories`, :func:`inject_exposed`). Where the loop is given what the serving store
showed each user (the recurring pipeline: the state's active served lists, published before the period its rounds
read), a served category the user had not seen by the round's end is a candidate whose outcome the log knows in a
way it never knows for a proposal: the user was shown it. Taken up in the feedback period, it is a logged positive;
not taken up, it was shown and ignored, the negative that "proposed and not taken up" only approximates. The
served lists come from a run before the period, so they carry nothing from the rounds' feedback periods (and never
anything from the evaluation future, which no PCO input holds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from coea.data.schema import CATEGORY, TIMESTAMP, USER
from coea.llm.prompts import PromptContext, relevance_completion, relevance_prompt
from coea.pco.periods import Window

Feedback = tuple[str, ...] | None  # a user's take-ups in order of first appearance; None = no events there


def feedback_takeups(history: pd.DataFrame, window: Window, users: Sequence[str],
                     seen: Sequence[set[str]], horizon: int | None = None) -> list[Feedback]:
    """Per user (aligned with ``users``): the categories they took up in ``window``'s feedback period (only its
    first ``horizon`` events of each user's, when set), in order of first appearance, excluding ``seen[i]``; None
    when they have no event there or the window has none. ``history`` rows are in time order within a user."""
    if window.feedback_end is None:
        return [None] * len(users)
    ts = history[TIMESTAMP].to_numpy()
    after = history[(ts >= window.end) & (ts < window.feedback_end)]
    cats = {str(u): g[CATEGORY].tolist()[:horizon] for u, g in after.groupby(USER, sort=False)}
    return [None if u not in cats else tuple(c for c in dict.fromkeys(cats[u]) if c not in s)
            for u, s in zip(users, seen, strict=True)]


def inject_taken_up(candidates: Sequence[Sequence[str]], feedback: Sequence[Feedback],
                    limit: int) -> tuple[list[list[str]], int]:
    """Candidates with each user's take-ups the N-LLM did not sample appended (first take-ups first) until
    the user has ``limit`` taken-up candidates; returns (candidates, number appended)."""
    out, added = [], 0
    for cands, took in zip(candidates, feedback, strict=True):
        row = list(cands)
        if took:
            have = sum(c in took for c in row)
            extra = [c for c in took if c not in row][:max(0, limit - have)]
            row += extra
            added += len(extra)
        out.append(row)
    return out, added


def exposed_categories(exposure: Mapping[str, Sequence[str]], users: Sequence[str],
                       seen: Sequence[set[str]]) -> list[set[str]]:
    """Per user (aligned with ``users``): the categories the serving store showed them (``exposure``: user ->
    served categories) that they had not seen (``seen[i]``); empty for a user it showed nothing."""
    return [set(exposure.get(u, ())) - s for u, s in zip(users, seen, strict=True)]


def inject_exposed(candidates: Sequence[Sequence[str]], exposed: Sequence[set[str]], feedback: Sequence[Feedback],
                   order: Mapping[str, Sequence[str]], users: Sequence[str]) -> tuple[list[list[str]], int]:
    """Candidates with each user's exposed categories (``exposed[i]``) not among them appended in served order
    (``order[user]``), for users with feedback only (the others yield no pair); returns (candidates, number
    appended)."""
    out, added = [], 0
    for cands, shown, took, u in zip(candidates, exposed, feedback, users, strict=True):
        row = list(cands)
        if took is not None and shown:
            extra = [c for c in order.get(u, ()) if c in shown and c not in row]
            row += extra
            added += len(extra)
        out.append(row)
    return out, added


def on_policy_examples(contexts: Sequence[PromptContext], candidates: Sequence[Sequence[str]],
                       seen: Sequence[set[str]], feedback: Sequence[Feedback], negatives_per_positive: int,
                       eos: str, rng: np.random.Generator, *, with_group: bool = True) -> list[dict[str, str]]:
    """R-LLM SFT examples from the N-LLM's own proposals: for each user with feedback, every proposed category
    new to them (what the R-LLM judges at inference) with its prompt ``relevance_prompt(context, candidate)``,
    ``yes`` if taken up in the feedback period, ``no`` otherwise. Balanced like the SFT examples: all ``yes``,
    at most ``negatives_per_positive`` times as many ``no`` (a seeded draw); shuffled."""
    pos, neg = [], []
    for ctx, cands, s, took in zip(contexts, candidates, seen, feedback, strict=True):
        if took is None:
            continue
        for c in cands:
            if c not in s:
                (pos if c in took else neg).append((ctx, c))
    keep = min(len(neg), negatives_per_positive * len(pos))
    neg = [neg[i] for i in np.sort(rng.choice(len(neg), size=keep, replace=False))] if keep else []
    out = [{"prompt": relevance_prompt(ctx, c, with_group=with_group), "completion": relevance_completion(label, eos)}
           for label, items in ((True, pos), (False, neg)) for ctx, c in items]
    return [out[i] for i in rng.permutation(len(out))]
