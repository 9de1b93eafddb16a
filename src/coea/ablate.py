"""``coea ablate``: the full method and its ablations in one run, over the same rounds and the same split (the
same number of rounds; a feedback reward cuts the history into ``rounds + 1`` periods, period r + 1 being round r's
feedback, so ``coea w/o feedback``'s ``rounds`` windows end elsewhere than ``coea``'s). Variants (each PCO run
starts from the same SFT models, except ``w/o CSID`` / ``+ CSID`` and the prompt variants, which need their own SFT):

- ``coea``: SFT + ``pco.rounds`` rounds with the configured alpha;
- ``coea w/o R-LLM``: the SFT N-LLM alone (one-time alignment, = ``nllm_sft``): round 0 of every curve;
- ``coea w/o KL``: alpha = 0 (no KL penalty: sigmoid DPO, plus the chosen completions' NLL when ``pco.dpo.nll``
  is set); left out when ``pco.dpo.alpha`` is 0 already (it would be ``coea``);
- ``coea w/o reference`` (only with ``pco.update: distill``): the target without the SFT model's factor
  (``pco.reference: none``, alpha 0): the KL to the SFT model that the closed form carries, removed;
- ``coea w/o CSID``: prompts without group tokens, profile or the user's own code (both LLMs re-trained so); where
  they show none already (``llm.data.with_group: false``, e.g. the ``short`` preset; no full-CSID prompt variant
  then) ``coea + CSID``: the group, its profile and (``llm.data.full_csid``) the user's code added, re-trained so;
- ``coea alpha=A`` for A in ``alphas``: the KL sensitivity sweep (none under ``pco.reference: none``: no KL);
- ``coea w/o feedback`` (only when ``pco.reward`` reads logged feedback: ``feedback`` or ``hybrid``): the R-LLM
  judges the candidates instead (``relevance`` reward: among the user's unseen categories) and is refreshed on the
  periods' interactions only (``refresh: auto`` then means ``period``), so no logged take-up reaches the loop;
- ``coea w/o teacher`` (only when ``pco.reward`` is ``teacher``, e.g. the ``distil`` preset): the R-LLM judges the
  candidates instead (the ``relevance`` reward; with ``candidates`` null the N-LLM's top ``JUDGED_CANDIDATES``), every
  other PCO setting as configured: what the encoder as teacher adds over the R-LLM judge;
- ``coea + encoder (= coea_seq)``: the ``coea`` variant's final N-LLM ranked by log P_N + ``llm.encoder_weight`` x
  log p_S of the DSIE long-term encoder (the ``coea_seq`` method: the user's events in order, which the prompt lacks),
  no training of its own; its SFT-only counterpart is the ``nllm_seq`` baseline row. With ``llm.cooc_weight`` > 0
  (the ``short`` preset) it adds the co-occurrence expert, and ``coea + encoder w/o co-occurrence`` ranks the same
  final N-LLM without it;
- with ``extras`` (``coea ablate --prompt-variants``), the richer prompts (:class:`coea.llm.sft_config.SftDataConfig`),
  each with its own SFT pair. A prompt option the run has is taken away, one it lacks is added: ``coea w/o full
  CSID`` (the default prompts show the user's full CSID code; ``coea + full CSID`` where the config turns it off),
  ``coea + long-term summary`` (the user's ``LONG_TERM`` most frequent history categories; ``coea w/o
  long-term summary`` where the config has one), ``coea w/o event sequence`` (the default prompts show the
  categories of the user's last 50 events in order; ``coea + event sequence`` adds ``SEQUENCE`` where the config
  turns it off) and ``coea w/o item sequence`` (the default prompts show the items of the user's last 50 events;
  ``coea + item sequence`` adds ``ITEMS`` where the config turns it off).

``only`` (``coea ablate --variants``) keeps ``coea`` and the named variants (any of the above, the prompt ones
included without ``extras``). With ``from_run`` the ``coea`` row reuses that run's own PCO rounds when they finished
with the same PCO config from its SFT pair as it is now (:func:`finished_rounds`), else it trains them anew.

Baselines scored on the same split by ``coea evaluate``'s code: the novelty-excluding methods
(``pop_novel``, ``cooc_novel``, ``ease_novel``, ``markov+x``, ``sasrec+x``, ``sasrec_ease+x``, ``group_pop_novel``,
``nllm_sft+x``), ``nllm_sft`` and ``dual_best_of_n``; beside them ``nllm_seq`` / ``nllm_seq+x`` (the SFT N-LLM with the
encoder), which are never the default reference (so adding them left the reference rule as it was). On synthetic data
the table adds *simulated acceptance*: the share of recommended novel categories (not in the user's history) whose
planted affinity for the user is above uniform (1 / #categories): the synthetic stand-in for an online A/B test of
what users would take up.

Paired CIs (``paired_ci`` in ablate.json, a table in ablate.md): each row's final S-H@K and C-H@K (plain top-K)
and S-H@K of its ``+x`` top-K minus the reference's (``eval.reference``, default: the novelty-excluding baseline
of ``REFERENCE_POOL`` with the highest S-H@K), paired bootstrap over the split's evaluated users
(:mod:`coea.evaluation.ablate_report`).

Outputs: ``ablate.json``, ``ablate.md`` (final-round table, paired CIs, per-round NCP@K / C-H@K), ``ablate.png``. The
table's rows and the paired CIs score each variant's final models on every evaluated user (``finals``); the
per-round rows (``variants``) and the plot are PCO's per-round metrics (over ``eval.round_users``' sample if set).
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from coea import lineage
from coea.config import RunConfig, save_config
from coea.data.prepared import read_prepared
from coea.data.split import Split, chronological_split
from coea.errors import CoeaInputError
from coea.evaluation.ablate_report import (
    WITHOUT_RLLM,
    ablate_paired_ci,
    ablate_paired_table,
    ablate_reference,
    ablate_table,
    check_reference,
    plot_ablation,
    row_vectors,
)
from coea.evaluation.baselines import Recommendations, top_k
from coea.evaluation.evaluate import lists_metrics, recommend_all, score_split, warm_per_user
from coea.evaluation.registry import MethodArtifacts, Need, build_method, method_context, parse_method
from coea.flow import run_flow
from coea.layout import RunLayout
from coea.pco.checkpoint import read_state
from coea.pco.config import FEEDBACK_REWARDS, Reference, RefreshKind, RewardKind, Update
from coea.stages import load_artifacts, load_dsie, load_pco, run_pco_stage, run_sft_stage
from coea.stages.sft import trained_with
from coea.utils import seed_everything, write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

ALPHAS = (0.1, 0.4, 0.6)
# `coea w/o teacher` under `pco.candidates: null`: the R-LLM judges the N-LLM's top 20 (the distil preset's count)
JUDGED_CANDIDATES = 20
LONG_TERM = 5  # categories in the long-term summary of the ``coea + long-term summary`` variant
SEQUENCE = 50  # events in the ``coea + event sequence`` variant's ``seq:`` section (the DSIE encoder's max_len)
ITEMS = 50  # events in the ``coea + item sequence`` variant's ``items:`` section
REFERENCE_POOL = ["pop_novel", "cooc_novel", "ease_novel", "markov+x", "sasrec+x", "sasrec_ease+x", "group_pop_novel",
                  "nllm_sft", "nllm_sft+x", "dual_best_of_n"]  # the baselines the default reference is chosen among
BASELINES = [*REFERENCE_POOL, "nllm_seq", "nllm_seq+x"]
ENCODER_ROW = "coea + encoder (= coea_seq)"  # the coea variant's final N-LLM x the DSIE encoder: no training
# with llm.cooc_weight > 0 ENCODER_ROW has the co-occurrence expert too, and this row ranks without it
NO_COOC_ROW = "coea + encoder w/o co-occurrence"


@dataclass
class AblateResult:
    """Per variant its per-round rows; the baselines' metrics at K; where things were written."""

    variants: dict[str, list[dict[str, Any]]]
    baselines: dict[str, dict[str, float]]
    # rows that re-rank a variant's final models (ENCODER_ROW): their metrics at K, "x_S-H" = the +x view's S-H@K
    rankings: dict[str, dict[str, float]] = field(default_factory=dict)
    # per variant its final models' metrics at K over every evaluated user (the table's rows; ``variants`` holds
    # PCO's per-round metrics, over ``eval.round_users``' sample when that is set)
    finals: dict[str, dict[str, float]] = field(default_factory=dict)
    acceptance: dict[str, float] = field(default_factory=dict)
    paired_ci: dict[str, Any] = field(default_factory=dict)  # ablate.json's paired_ci (ablate_report.ci_section)
    paths: dict[str, Path] = field(default_factory=dict)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "_", name.lower()).strip("_")


def variant_configs(cfg: RunConfig, alphas=ALPHAS, extras: bool = False,
                    only: Sequence[str] | None = None) -> dict[str, RunConfig]:
    """Variant name -> its RunConfig (only ``pco`` and the prompt options of ``llm.data`` differ); ``extras`` adds
    the richer-prompt variants; ``only``: ``coea`` and these variants (any name, the richer-prompt ones included;
    an unknown name is a :class:`~coea.errors.CoeaInputError` that lists the names), and with ``extras`` every
    richer-prompt variant as well."""
    if only:
        return _selected(cfg, alphas, extras, only)

    def with_alpha(a: float) -> RunConfig:  # rebuilt, so PcoConfig checks the alpha against the rest of pco
        return replace(cfg, pco=replace(cfg.pco, dpo=replace(cfg.pco.dpo, alpha=a)))

    out = {"coea": copy.deepcopy(cfg)}
    if cfg.pco.dpo.alpha:  # at alpha 0 (the short preset's distill update) the row would be coea itself
        out["coea w/o KL"] = with_alpha(0.0)
    if cfg.pco.update is Update.DISTILL and cfg.pco.reference is not Reference.NONE:  # its KL is in the target
        out["coea w/o reference"] = replace(cfg, pco=replace(cfg.pco, reference=Reference.NONE,
                                                             dpo=replace(cfg.pco.dpo, alpha=0.0)))
    has, csid = cfg.llm.data.with_group, copy.deepcopy(cfg)  # prompts without any (the short preset's): + CSID
    csid.llm.data = replace(csid.llm.data, with_group=not has, full_csid=csid.llm.data.full_csid and not has)
    out["coea w/o CSID" if has else "coea + CSID"] = csid
    for a in alphas if cfg.pco.reference is not Reference.NONE else ():  # no KL to weigh without a reference
        if a != cfg.pco.dpo.alpha:
            out[f"coea alpha={a:g}"] = with_alpha(a)
    if cfg.pco.reward in FEEDBACK_REWARDS:
        on_policy = cfg.pco.refresh in (RefreshKind.ON_POLICY, RefreshKind.BOTH)
        out["coea w/o feedback"] = replace(cfg, pco=replace(cfg.pco, reward=RewardKind.RELEVANCE, refresh=(
            RefreshKind.PERIOD if on_policy else cfg.pco.refresh)))
    if cfg.pco.reward is RewardKind.TEACHER:
        judged = copy.deepcopy(cfg)
        # the judge swapped, the update kept: under DPO the R-LLM's pairs are hard-labelled (soft labels are the
        # teacher's); under distill its log-odds are the reward. It judges the N-LLM's top JUDGED_CANDIDATES where the
        # teacher read every unseen category, and the co-occurrence and EASE terms are the teacher's
        judged.pco = replace(judged.pco, reward=RewardKind.RELEVANCE, soft_preferences=False,
                             candidates=judged.pco.candidates or JUDGED_CANDIDATES, teacher_cooc_weight=0.0,
                             teacher_ease_weight=0.0)
        out["coea w/o teacher"] = judged
    if extras:
        out.update(_prompt_variants(cfg))
    return out


def _selected(cfg: RunConfig, alphas, extras: bool, only: Sequence[str]) -> dict[str, RunConfig]:
    """:func:`variant_configs` with ``only``: ``coea``, the named variants and, with ``extras``, the prompt ones."""
    every = variant_configs(cfg, alphas, extras=True)
    unknown = [n for n in only if n not in every]
    if unknown:
        why = " (the config's prompts show no CSID: llm.data.with_group is false; 'coea + CSID' adds it)" if any(
            "w/o CSID" in n for n in unknown) and not cfg.llm.data.with_group else ""
        why += " (pco.reference none has no KL term: no alpha rows)" if any(
            n.startswith("coea alpha=") for n in unknown) and cfg.pco.reference is Reference.NONE else ""
        raise CoeaInputError(f"unknown ablation variant(s) {unknown}{why}", option="--variants",
                             fix=f"name variants among {list(every)} (comma-separated)")
    prompts = set(_prompt_variants(cfg)) if extras else set()  # --prompt-variants beside --variants
    return {n: c for n, c in every.items() if n == "coea" or n in only or n in prompts}


def _prompt_variants(cfg: RunConfig) -> dict[str, RunConfig]:
    """Each prompt addition the run has taken away (``w/o``), each it lacks added (``+``)."""
    out, data = {}, cfg.llm.data
    for label, field_name, on, off in (("full CSID", "full_csid", True, False),
                                        ("long-term summary", "long_term", LONG_TERM, 0),
                                        ("event sequence", "sequence", SEQUENCE, 0),
                                        ("item sequence", "items", ITEMS, 0)):
        if field_name == "full_csid" and not data.with_group:
            continue  # without the group no code is shown, full or not: the prompts would be coea's
        has = getattr(data, field_name) != off
        name = f"coea w/o {label}" if has else f"coea + {label}"
        out[name] = copy.deepcopy(cfg)
        out[name].llm.data = replace(data, **{field_name: off if has else on})
    return out


def simulated_acceptance(recs: dict[str, list[str]], history: dict[str, set[str]], affinity) -> float:
    """Share of recommended categories new to the user whose planted affinity is above 1 / #categories."""
    threshold = 1.0 / affinity.shape[1]
    hits = total = 0
    for user, cats in recs.items():
        if user not in affinity.index:
            continue
        row = affinity.loc[user]
        novel = [c for c in cats if c not in history.get(user, set()) and c in row.index]
        hits += sum(float(row[c]) > threshold for c in novel)
        total += len(novel)
    return hits / total if total else float("nan")


def _final_lists(cfg: RunConfig, layout: RunLayout, pco_dir: Path, split: Split, k: int,
                 method_name: str = "coea") -> tuple[Recommendations, Recommendations]:
    """The plain and the ``+x`` top-``k`` of the N-LLM after the last round in ``pco_dir`` by ``method_name`` (a
    method of the final models: ``coea``, or ``coea_seq`` with the DSIE encoder) for the split's evaluated users,
    from one scoring pass."""
    arts = MethodArtifacts(dsie=load_dsie(layout.dsie), pco=load_pco(pco_dir, layout.dsie))
    method = build_method(parse_method(method_name), method_context(cfg, arts)).fit(split.histories)
    users = split.warm_users
    scores = np.array(method.score(users), dtype=np.float64)  # (U, C)
    plain = top_k(scores, users, method.categories, k)
    for row, banned in enumerate(method.banned(users, split.histories.user_categories())):
        scores[row, [method.index[c] for c in banned if c in method.index]] = -np.inf
    return plain, top_k(scores, users, method.categories, k)


def _ranking_configs(cfg: RunConfig) -> dict[str, RunConfig]:
    """The rows that re-rank the ``coea`` variant's final N-LLM with ``coea_seq`` (no training): ``ENCODER_ROW``
    with ``cfg``'s ranking settings, and with a co-occurrence expert ``NO_COOC_ROW`` without it."""
    out = {ENCODER_ROW: cfg}
    if cfg.llm.cooc_weight:
        out[NO_COOC_ROW] = replace(cfg, llm=replace(cfg.llm, cooc_weight=0.0))
    return out


def _variant_pco_dir(name: str, layout: RunLayout, out_dir: Path, from_run: Path | None) -> Path:
    """Where a variant's PCO rounds go: the run's ``pco/`` for ``coea`` of a fresh run, else ``variants/<slug>``."""
    return layout.pco if name == "coea" and from_run is None else out_dir / "variants" / _slug(name)


def _ranking_row(split: Split, eval_cfg, lists: tuple[Recommendations, Recommendations], k: int) -> dict[str, float]:
    """A re-ranking row's table figures: every metric of its plain top-``k``, ``x_S-H`` that of its ``+x`` one."""
    scored = lists_metrics(split, {"plain": lists[0], "+x": lists[1]}, split.warm_users, eval_cfg)
    return {**scored["plain"], "x_S-H": scored["+x"][f"S-H@{k}"]}


def _variant_llm_dir(name: str, vcfg: RunConfig, cfg: RunConfig, layout: RunLayout, out_dir: Path) -> Path:
    """The SFT models a variant starts from: the run's, or (other prompt options) its own SFT pair."""
    if vcfg.llm.data == cfg.llm.data:
        return layout.llm
    llm_dir = out_dir / "variants" / ("no_csid_llm" if name == "coea w/o CSID" else f"{_slug(name)}_llm")
    if not trained_as(llm_dir, vcfg, layout):
        run_sft_stage(vcfg, layout.data, layout.dsie, llm_dir)
    return llm_dir


def trained_as(llm_dir: Path, vcfg: RunConfig, layout: RunLayout) -> bool:
    """Whether ``llm_dir`` holds a finished SFT pair with ``vcfg``'s LLM settings on ``layout``'s data, split and
    groups (an interrupted ablation, or one run with another config, left a pair that must not be reused); not the
    ranking-time settings (encoder_weight, ...) nor those that do not change the model (checkpoint_minutes)."""
    return all(trained_with(llm_dir, name, vcfg, layout.data, layout.dsie) for name in ("novelty", "relevance"))


def _check_run_pair(cfg: RunConfig, layout: RunLayout) -> None:
    """``--from-run``: the run's SFT pair was trained with ``cfg``'s LLM settings, else a :class:`CoeaInputError`
    (the rows reusing it would differ from the prompt variants, whose pairs train with ``cfg``, in more than their
    one change)."""
    if not trained_as(layout.llm, cfg, layout):
        raise CoeaInputError(
            "the run's SFT pair was trained with other LLM settings than this config's (llm: model, data, novelty, "
            "relevance)", source=layout.llm, option="--config",
            fix="leave --config out (the run's own config.json is used), or keep the run's llm section and change "
                "only pco, eval, llm.encoder_weight or llm.cooc_weight")


def run_ablate(cfg: RunConfig, out_dir: Path, alphas=ALPHAS, extras: bool = False,
               from_run: Path | None = None, only: Sequence[str] | None = None) -> AblateResult:
    """Every variant (``extras``: with the richer-prompt ones; ``only``: ``coea`` and these) and
    ``ENCODER_ROW`` over the same split and rounds (see module doc);
    written under ``out_dir``, which also becomes a run folder (``data/``, ``dsie/``, ``llm/``, ``pco/`` = the
    ``coea`` variant) that ``coea evaluate --from-run`` reads. With ``from_run``, that run's prepared data, DSIE
    and SFT pair are used instead of training them (nothing is written there; the ``coea`` variant's rounds go to
    ``out_dir/variants/coea``). A variant's own SFT pair already in ``out_dir/variants/`` is reused."""
    seed_everything(cfg.eval.seed)
    configs = variant_configs(cfg, alphas, extras, only)
    check_reference(cfg.eval.reference, [*configs, *_ranking_configs(cfg), WITHOUT_RLLM, *BASELINES])  # before training
    out_dir = Path(out_dir)
    layout = RunLayout(out_dir if from_run is None else Path(from_run))
    if from_run is None:
        run_flow(cfg, layout, needs=frozenset({Need.DSIE, Need.LLMS}), evaluate=False)
    else:
        _check_run_pair(cfg, layout)
    loaded = read_prepared(layout.data)
    split = chronological_split(loaded.interactions, cfg.split)
    k = cfg.pco.k
    variants, finals, coea_dir = _run_variants(configs, cfg, layout, out_dir, from_run, split)
    rankings = _ranking_configs(cfg)
    for name, rcfg in rankings.items():
        log.info("ablate: %r", name)
        finals[name] = _final_lists(rcfg, layout, coea_dir, split, k, method_name="coea_seq")
    eval_cfg = replace(cfg.eval, methods=BASELINES, ks=[k], reference=None)
    recs = recommend_all(split, eval_cfg, method_context(cfg, load_artifacts(BASELINES, layout.artifacts())))
    baselines = score_split(split, recs, eval_cfg)["methods"]
    result = AblateResult(variants, baselines,
                          rankings={name: _ranking_row(split, eval_cfg, finals[name], k) for name in rankings},
                          finals={name: _ranking_row(split, eval_cfg, finals[name], k) for name in configs})
    if loaded.truth is not None:
        history = split.seen_before_future()
        lists = {**{name: plain for name, (plain, _) in finals.items()},
                 **{name: recs[name]["warm"] for name in ("nllm_sft", "nllm_sft+x", "dual_best_of_n", "markov+x",
                                                          "cooc_novel")}}
        result.acceptance = {name: simulated_acceptance(r, history, loaded.truth.affinity) for name, r in lists.items()}
    if split.warm_users:
        result.paired_ci = _paired_ci(split, eval_cfg, finals, recs, baselines, k, cfg.eval.reference)
    return _write(cfg, result, out_dir, loaded.source, k)


def _run_variants(configs: dict[str, RunConfig], cfg: RunConfig, layout: RunLayout, out_dir: Path,
                  from_run: Path | None, split: Split) -> tuple[dict[str, list[dict[str, Any]]], dict, Path]:
    """Each variant's PCO rounds (per-round rows) and final lists, and the ``coea`` variant's PCO dir: with
    ``from_run``, the run's own rounds when :func:`finished_rounds` can reuse them."""
    variants: dict[str, list[dict[str, Any]]] = {}
    finals: dict[str, tuple[Recommendations, Recommendations]] = {}
    reused = finished_rounds(configs["coea"], layout) if from_run is not None else None
    coea_dir = layout.pco if reused is not None else _variant_pco_dir("coea", layout, out_dir, from_run)
    for name, vcfg in configs.items():
        log.info("ablate: variant %r", name)
        pco_dir = coea_dir if name == "coea" else _variant_pco_dir(name, layout, out_dir, from_run)
        if name == "coea" and reused is not None:
            log.info("ablate: 'coea' = the run's own PCO rounds (%s): the same PCO config from the same SFT pair "
                     "(their per-round rows are as that run evaluated them)", layout.pco)
            variants[name] = reused
        else:
            llm_dir = _variant_llm_dir(name, vcfg, cfg, layout, out_dir)
            variants[name] = run_pco_stage(vcfg, layout.data, layout.dsie, [llm_dir], pco_dir).rounds
        finals[name] = _final_lists(vcfg, layout, pco_dir, split, cfg.pco.k)
    return variants, finals, coea_dir


def finished_rounds(cfg: RunConfig, layout: RunLayout) -> list[dict[str, Any]] | None:
    """The per-round rows of the run's own PCO (``layout.pco``) when it finished all of ``cfg.pco``'s rounds with
    that PCO config from the run's DSIE and SFT pair, as they are now: the ``coea`` row then reuses it (the same
    seeds would train the same models again); None otherwise (why: in the log)."""
    pco = cfg.pco.resolve_refresh_novelty(cfg.llm.data.holdout_share > 0)  # as run_pco_stage resolves it
    made_from = {"dsie": layout.dsie, **{name: layout.llm / name for name in ("novelty", "relevance")}}
    try:
        lineage.check(layout.pco, "pco", lineage.histories(layout.data, cfg.split), made_from)
        state = read_state(layout.pco, pco)
        why = None if state and state.completed_rounds == pco.rounds else f"not all {pco.rounds} rounds finished"
    except CoeaInputError as err:
        state, why = None, err
    if why:
        log.info("ablate: the run's own PCO rounds are not reused for 'coea': %s", why)
    return None if why else state.rounds


def _paired_ci(split: Split, eval_cfg, finals: dict[str, tuple[Recommendations, Recommendations]],
               recs: dict[str, dict[str, Recommendations]], baselines: dict[str, dict[str, float]], k: int,
               reference: str | None) -> dict[str, Any]:
    """ablate.json's ``paired_ci``: every row against the reference (module doc)."""
    final_vectors = {}
    for name, (plain, novel) in finals.items():
        views = warm_per_user(split, {"plain": plain, "+x": novel}, eval_cfg, [k])
        final_vectors[name] = (views["plain"], views["+x"])
    rows = row_vectors(final_vectors, warm_per_user(split, {n: r["warm"] for n, r in recs.items()}, eval_cfg, [k]), k)
    pool = {m: v for m, v in baselines.items() if m in REFERENCE_POOL}
    return ablate_paired_ci(rows, ablate_reference(pool, k, reference), k, n_boot=eval_cfg.bootstrap,
                            level=eval_cfg.ci_level, seed=eval_cfg.seed)


def _write(cfg: RunConfig, result: AblateResult, out_dir: Path, source: str, k: int) -> AblateResult:
    result.paths = {"json": out_dir / "ablate.json", "md": out_dir / "ablate.md", "plot": out_dir / "ablate.png",
                    "config": out_dir / "config.json"}
    write_json_atomic(result.paths["json"], {"k": k, "variants": result.variants, "baselines": result.baselines,
                                             "rankings": result.rankings, "finals": result.finals,
                                             "simulated_acceptance": result.acceptance,
                                             "paired_ci": result.paired_ci,
                                             "variant_users": cfg.eval.round_users or "all"})
    md = ablate_table(result.variants, result.baselines, k, result.acceptance, result.rankings, result.finals)
    if cfg.eval.round_users:  # PCO's per-round metrics are on that sample
        md += (f"\nThe per-round table and ablate.png are over a sample of {cfg.eval.round_users} evaluated users "
               "(`eval.round_users`, the same every round); the rows above and the paired table below over every "
               "evaluated user.\n")
    if cfg.llm.novelty_bonus:  # the variants' final lists are coea's (Coea.score); the rounds' metrics are not
        md += (f"\nThe variants' plain columns carry llm.novelty_bonus {cfg.llm.novelty_bonus:g} on the categories "
               "outside the history (`coea`'s operating point; their `+x` S-H and the per-round table do not).\n")
    if result.paired_ci.get("methods"):
        md += "\n" + ablate_paired_table(result.paired_ci)
    write_text_atomic(result.paths["md"], f"# Ablation on {source} (K={k})\n\n" + md)
    plot_ablation(result.variants, result.paths["plot"], k)
    save_config(cfg, result.paths["config"])
    return result
