"""Evaluation on a split: fit methods on histories, score them on the held-out future, write the outputs
(the library half of the ``evaluate`` stage, :mod:`coea.stages.evaluate`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from coea.config import EvalConfig, RunConfig, config_to_dict, save_config
from coea.data.loaders import LoadedData
from coea.data.schema import CATEGORY
from coea.data.split import Split, cold_start_warning, require_warm_users
from coea.data.stats import data_stats
from coea.evaluation.baselines import Recommendations, ScoringMethod
from coea.evaluation.metrics import evaluate_lists, long_tail, per_user_metrics
from coea.evaluation.paired import choose_reference, paired_ci_section
from coea.evaluation.registry import MethodContext, build_method, parse_method
from coea.evaluation.report import bar_chart, metrics_table, paired_table
from coea.utils import seed_everything, write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)


@dataclass
class EvalResult:
    """What ``run_evaluate`` produced."""

    metrics: dict[str, Any]  # the content of metrics.json
    table: str  # the Markdown table of the main slice
    paths: dict[str, Path] = field(default_factory=dict)


def recommend_all(split: Split, cfg: EvalConfig, ctx: MethodContext) -> dict[str, dict[str, Recommendations]]:
    """``{method name: {"warm": recs, "cold": recs}}`` at K = max(cfg.ks); each base method fitted once."""
    k = max(cfg.ks)
    history = split.histories.user_categories()
    fitted: dict[str, ScoringMethod] = {}
    out: dict[str, dict[str, Recommendations]] = {}
    for name in cfg.methods:
        spec = parse_method(name)
        start = time.perf_counter()
        if spec.base not in fitted:
            fitted[spec.base] = build_method(spec, ctx).fit(split.histories)
        method = fitted[spec.base]
        exclude = history if spec.exclude_history else None
        out[name] = {
            "warm": method.recommend(split.warm_users, k, exclude=exclude),
            "cold": method.recommend(split.cold_users, k, exclude=exclude),
        }
        log.info("method %-16s fitted and ranked in %.2fs", name, time.perf_counter() - start)
    return out


def _long_tail_of(split: Split, share: float) -> set[str]:
    hist = split.histories
    counts = hist.interactions[CATEGORY].value_counts().to_dict()
    return long_tail({c: int(counts.get(c, 0)) for c in hist.categories}, share)


def score_split(split: Split, recs: dict[str, dict[str, Recommendations]], cfg: EvalConfig) -> dict[str, Any]:
    """metrics.json's ``methods`` and ``cold_start`` sections plus the protocol facts."""
    hist = split.histories
    tail = _long_tail_of(split, cfg.long_tail_share)
    history = split.seen_before_future()

    def slice_metrics(users: list[str], part: str) -> dict[str, dict[str, float]]:
        return lists_metrics(split, {name: r[part] for name, r in recs.items()}, users, cfg, tail, history)

    return {
        "protocol": {
            **config_to_dict(split.config),
            "ks": cfg.ks,
            "evaluated_users": len(split.warm_users),
            "cold_start_users": len(split.cold_users),
            "history_events": len(hist.interactions),
            "future_events": len(split.future),
            "dropped_by_min_gap": split.dropped_by_gap,
            "cold_by_min_gap": split.cold_by_gap,
            "categories": len(hist.categories),
            "long_tail_categories": len(tail),
            "long_tail_rule": f"outside the most popular categories holding {cfg.long_tail_share:.0%} of "
                              "history events",
        },
        "methods": slice_metrics(split.warm_users, "warm"),
        "cold_start": slice_metrics(split.cold_users, "cold") if split.cold_users else {},
    }


def lists_metrics(split: Split, lists: Mapping[str, Recommendations], users: list[str], cfg: EvalConfig,
                  tail: set[str] | None = None,
                  history: Mapping[str, set[str]] | None = None) -> dict[str, dict[str, float]]:
    """Per method (``lists``: its top-K lists) every metric at ``cfg.ks`` over ``users``
    (:func:`coea.evaluation.metrics.evaluate_lists`); ``tail`` and ``history`` (the long-tail set, the users'
    categories before the future: :meth:`~coea.data.split.Split.seen_before_future`) when the caller has them."""
    tail = _long_tail_of(split, cfg.long_tail_share) if tail is None else tail
    history = split.seen_before_future() if history is None else history
    n_cat = len(split.histories.categories)
    return {name: evaluate_lists(r, users, history, split.future_categories, tail, n_cat, cfg.ks)
            for name, r in lists.items()}


def warm_per_user(split: Split, recs: Mapping[str, Recommendations], cfg: EvalConfig,
                  ks: Sequence[int]) -> dict[str, dict[str, np.ndarray]]:
    """Per method (``recs``: its lists for the evaluated users): the per-user metric vectors at ``ks``
    (:func:`coea.evaluation.metrics.per_user_metrics`) over the split's evaluated users, in their order."""
    tail = _long_tail_of(split, cfg.long_tail_share)
    history = split.seen_before_future()
    return {name: per_user_metrics(r, split.warm_users, history, split.future_categories, tail, ks)
            for name, r in recs.items()}


def paired_ci(split: Split, recs: dict[str, dict[str, Recommendations]], cfg: EvalConfig,
              methods: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    """metrics.json's ``paired_ci`` section: every method against the reference (``cfg.reference``, else the
    best baseline by ``methods``' S-H at the largest K), paired bootstrap over the evaluated users at that K;
    empty when there is no evaluated user."""
    if not split.warm_users:
        return {}
    k = max(cfg.ks)
    reference = choose_reference(methods, k, cfg.reference)
    vectors = warm_per_user(split, {name: r["warm"] for name, r in recs.items()}, cfg, [k])
    return paired_ci_section(vectors, reference, k, n_boot=cfg.bootstrap, level=cfg.ci_level, seed=cfg.seed)


def ranking_note(llm, methods: Mapping[str, Any]) -> str:
    """metrics.md's line under the table when ``coea``'s plain list carries ``llm.novelty_bonus``, else ''."""
    if not llm.novelty_bonus or "coea" not in methods:
        return ""
    return (f"\n`coea`'s plain list adds llm.novelty_bonus {llm.novelty_bonus:g} to every category outside the "
            "user's history (the plain view's operating point; `coea+x` ranks the same whatever the bonus).\n")


def evaluate_split(cfg: RunConfig, out_dir: Path, loaded: LoadedData, split: Split, ctx: MethodContext) -> EvalResult:
    """Fit every method of ``cfg.eval`` on ``split``'s histories (with the fitted artifacts of ``ctx``), score
    them on the futures; write metrics.json/.md, a PNG and config.json under ``out_dir`` (config.json right after
    metrics.json: a folder's figures and the settings that made them are replaced together)."""
    seed_everything(cfg.eval.seed)
    log.info("split: %d evaluated users, %d cold-start, %d history / %d future events",
             len(split.warm_users), len(split.cold_users), len(split.histories.interactions), len(split.future))
    if (warning := cold_start_warning(split)) is not None:
        log.warning(warning)
    require_warm_users(split, loaded.source)
    recs = recommend_all(split, cfg.eval, ctx)  # stopped here, OUT still holds the earlier evaluation whole
    metrics = {"dataset": {"source": loaded.source, **data_stats(loaded.interactions)},
               **score_split(split, recs, cfg.eval)}
    metrics["paired_ci"] = paired_ci(split, recs, cfg.eval, metrics["methods"])
    note = ranking_note(cfg.llm, metrics["methods"])
    if note:  # coea's plain lists carry a bonus: say so where the figures are
        metrics["protocol"]["coea_novelty_bonus"] = cfg.llm.novelty_bonus
    out_dir.mkdir(parents=True, exist_ok=True)
    k = max(cfg.eval.ks)
    table = metrics_table(metrics["methods"], cfg.eval.ks)
    paths = {"metrics_json": out_dir / "metrics.json", "metrics_md": out_dir / "metrics.md",
             "plot": out_dir / f"metrics_at_{k}.png", "config": out_dir / "config.json"}
    md = f"# Evaluation on {loaded.source}\n\n{table}{note}"
    if metrics["paired_ci"].get("methods"):
        md += "\n" + paired_table(metrics["paired_ci"])
    if metrics["cold_start"]:
        md += f"\n## Cold-start users ({len(split.cold_users)})\n\n" + metrics_table(metrics["cold_start"], cfg.eval.ks)
    write_json_atomic(paths["metrics_json"], metrics)
    save_config(cfg, paths["config"])
    write_text_atomic(paths["metrics_md"], md)
    bar_chart(metrics["methods"], k, paths["plot"], title=f"{loaded.source}: K={k}")
    for stale in set(out_dir.glob("metrics_at_*.png")) - {paths["plot"]}:  # an earlier evaluation's other K: the
        stale.unlink(missing_ok=True)  # run's report.html shows every plot of the folder
    if loaded.truth is not None:
        for p in loaded.truth.write_ground_truth(out_dir / "ground_truth"):
            paths[p.stem] = p
    return EvalResult(metrics, table, paths)
