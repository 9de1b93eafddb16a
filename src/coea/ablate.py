"""``coea ablate``: the full method and its ablations in one run, over the same rounds and the same split.

Variants (each PCO run starts from the same SFT models, except ``w/o CSID`` which needs its own SFT):

- ``coea``: SFT + ``pco.rounds`` rounds with the configured alpha;
- ``coea w/o R-LLM``: the SFT N-LLM alone (one-time alignment, = ``nllm_sft``): round 0 of every curve;
- ``coea w/o KL``: alpha = 0 (plain sigmoid DPO);
- ``coea w/o CSID``: prompts without group tokens and profile (both LLMs re-trained so);
- ``coea alpha=A`` for A in ``alphas``: the KL sensitivity sweep;
- with ``extras`` (``coea ablate --prompt-variants``), the richer prompts (:class:`coea.llm.sft_config.SftDataConfig`),
  each with its own SFT pair: ``coea + full CSID`` (the user's full CSID code) and ``coea + long-term summary``
  (the user's ``LONG_TERM`` most frequent history categories).

Baselines scored on the same split by ``coea evaluate``'s code: the novelty-excluding methods
(``pop_novel``, ``cooc_novel``, ``markov+x``, ``group_pop_novel``, ``nllm_sft+x``), ``nllm_sft`` and
``dual_best_of_n``. On synthetic data the table adds *simulated acceptance*: the share of recommended novel
categories (not in the user's history) whose planted affinity for the user is above uniform (1 / #categories):
the synthetic stand-in for an online A/B test of what users would take up.

Outputs: ``ablate.json``, ``ablate.md`` (final-round table + per-round NCP@K / C-H@K), ``ablate.png``.
"""

from __future__ import annotations

import copy
import logging
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from coea.config import RunConfig, save_config
from coea.data.prepared import read_prepared
from coea.data.split import chronological_split
from coea.evaluation.evaluate import recommend_all, score_split
from coea.evaluation.registry import MethodArtifacts, Need, build_method, method_context, parse_method
from coea.flow import run_flow
from coea.layout import RunLayout
from coea.stages import load_artifacts, load_dsie, load_pco, run_pco_stage, run_sft_stage
from coea.utils import atomic_path, seed_everything, write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

ALPHAS = (0.1, 0.4, 0.6)
LONG_TERM = 5  # categories in the long-term summary of the ``coea + long-term summary`` variant
BASELINES = ["pop_novel", "cooc_novel", "markov+x", "group_pop_novel", "nllm_sft", "nllm_sft+x", "dual_best_of_n"]
TABLE_KEYS = ("C-H", "C-N", "NCP", "CLTP", "S-H", "x_S-H", "rscore", "kl_sft")


@dataclass
class AblateResult:
    """Per variant its per-round rows; the baselines' metrics at K; where things were written."""

    variants: dict[str, list[dict[str, Any]]]
    baselines: dict[str, dict[str, float]]
    acceptance: dict[str, float] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "_", name.lower()).strip("_")


def variant_configs(cfg: RunConfig, alphas=ALPHAS, extras: bool = False) -> dict[str, RunConfig]:
    """Variant name -> its RunConfig (only ``pco`` and the prompt options of ``llm.data`` differ); ``extras`` adds
    the richer-prompt variants."""
    def with_alpha(a: float) -> RunConfig:
        c = copy.deepcopy(cfg)
        c.pco.dpo = replace(c.pco.dpo, alpha=a)
        return c

    out = {"coea": copy.deepcopy(cfg), "coea w/o KL": with_alpha(0.0)}
    no_csid = copy.deepcopy(cfg)
    no_csid.llm.data = replace(no_csid.llm.data, with_group=False)
    out["coea w/o CSID"] = no_csid
    for a in alphas:
        if a != cfg.pco.dpo.alpha:
            out[f"coea alpha={a:g}"] = with_alpha(a)
    if extras:
        for name, change in (("coea + full CSID", {"full_csid": True}),
                             ("coea + long-term summary", {"long_term": LONG_TERM})):
            out[name] = copy.deepcopy(cfg)
            out[name].llm.data = replace(cfg.llm.data, **change)
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


def _final_topk(cfg: RunConfig, layout: RunLayout, pco_dir: Path, split, k: int) -> dict[str, list[str]]:
    """The plain top-``k`` of the N-LLM after the last round in ``pco_dir`` (the ``coea`` method) for the split's
    evaluated users."""
    arts = MethodArtifacts(dsie=load_dsie(layout.dsie), pco=load_pco(pco_dir, layout.dsie))
    method = build_method(parse_method("coea"), method_context(cfg, arts)).fit(split.histories)
    return method.recommend(split.warm_users, k)


def _table(variants: dict[str, list[dict]], baselines: dict[str, dict[str, float]], k: int,
           acceptance: dict[str, float]) -> str:
    cols = [f"{m}@{k}" for m in ("C-H", "C-N", "NCP", "CLTP", "S-H")]
    head = "| method | " + " | ".join(cols) + f" | +x S-H@{k} | R-LLM score | KL to SFT |"
    if acceptance:
        head += " sim. acceptance |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]

    def row(name: str, m: dict[str, Any], x_sh: Any, r: Any, kl: Any) -> str:
        cells = [m.get(c) for c in cols] + [x_sh, r, kl]
        if acceptance:
            cells.append(acceptance.get(name))
        return f"| {name} | " + " | ".join("" if v is None else f"{v:.4f}" for v in cells) + " |"

    for name, rows in variants.items():
        last = rows[-1]
        lines.append(row(name, {f"{key}@{k}": last.get(key) for key in ("C-H", "C-N", "NCP", "CLTP", "S-H")},
                         last.get("x_S-H"), last.get("rscore"), last.get("kl_sft")))
    first = next(iter(variants.values()))
    lines.append(row("coea w/o R-LLM (= nllm_sft, round 0)",
                     {f"{key}@{k}": first[0].get(key) for key in ("C-H", "C-N", "NCP", "CLTP", "S-H")},
                     first[0].get("x_S-H"), first[0].get("rscore"), 0.0))
    for name, m in baselines.items():
        lines.append(row(name, m, m.get(f"S-H@{k}") if name.endswith(("+x", "_novel")) else None, None, None))
    rounds = ["| variant | " + " | ".join(f"r{r['round']} NCP / C-H" for r in first) + " |"]
    rounds.append("|" + "---|" * (len(first) + 1))
    for name, rows in variants.items():
        rounds.append(f"| {name} | " + " | ".join(f"{r.get('NCP', 0):.4f} / {r.get('C-H', 0):.4f}" for r in rows)
                      + " |")
    return "\n".join(lines) + f"\n\n## Per round (K={k})\n\n" + "\n".join(rounds) + "\n"


def plot_ablation(variants: dict[str, list[dict]], out_path: Path, k: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key in zip(axes, ("NCP", "C-H"), strict=True):
        for name, rows in variants.items():
            ax.plot([r["round"] for r in rows], [r.get(key, np.nan) for r in rows], marker="o", label=name)
        ax.set_title(f"{key}@{k} per PCO round")
        ax.set_xlabel("round (0 = SFT)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out_path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return out_path


def _variant_llm_dir(name: str, vcfg: RunConfig, cfg: RunConfig, layout: RunLayout, out_dir: Path) -> Path:
    """The SFT models a variant starts from: the run's, or (other prompt options) its own SFT pair."""
    if vcfg.llm.data == cfg.llm.data:
        return layout.llm
    llm_dir = out_dir / "variants" / ("no_csid_llm" if not vcfg.llm.data.with_group else f"{_slug(name)}_llm")
    if not (llm_dir / "relevance").is_dir():
        run_sft_stage(vcfg, layout.data, layout.dsie, llm_dir)
    return llm_dir


def run_ablate(cfg: RunConfig, out_dir: Path, alphas=ALPHAS, extras: bool = False) -> AblateResult:
    """Every variant (``extras``: with the richer-prompt ones) over the same split and rounds (see module doc);
    written under ``out_dir``, which also
    becomes a run folder (``data/``, ``dsie/``, ``llm/``, ``pco/`` = the ``coea`` variant) that
    ``coea evaluate --from-run`` reads."""
    seed_everything(cfg.eval.seed)
    out_dir = Path(out_dir)
    layout = RunLayout(out_dir)
    run_flow(cfg, layout, needs=frozenset({Need.DSIE, Need.LLMS}), evaluate=False)
    loaded = read_prepared(layout.data)
    split = chronological_split(loaded.interactions, cfg.split)
    k = cfg.pco.k
    variants: dict[str, list[dict[str, Any]]] = {}
    acceptance: dict[str, float] = {}
    history = split.histories.user_categories()
    for name, vcfg in variant_configs(cfg, alphas, extras).items():
        log.info("ablate: variant %r", name)
        pco_dir = layout.pco if name == "coea" else out_dir / "variants" / _slug(name)
        llm_dir = _variant_llm_dir(name, vcfg, cfg, layout, out_dir)
        variants[name] = run_pco_stage(vcfg, layout.data, layout.dsie, [llm_dir], pco_dir).rounds
        if loaded.truth is not None:
            acceptance[name] = simulated_acceptance(_final_topk(vcfg, layout, pco_dir, split, k), history,
                                                    loaded.truth.affinity)
    eval_cfg = replace(cfg.eval, methods=BASELINES, ks=[k])
    recs = recommend_all(split, eval_cfg, method_context(cfg, load_artifacts(BASELINES, layout.artifacts())))
    baselines = score_split(split, recs, eval_cfg)["methods"]
    if loaded.truth is not None:
        for name in ("nllm_sft", "nllm_sft+x", "dual_best_of_n", "markov+x", "cooc_novel"):
            acceptance[name] = simulated_acceptance(recs[name]["warm"], history, loaded.truth.affinity)
    return _write(cfg, AblateResult(variants, baselines, acceptance), out_dir, loaded.source, k)


def _write(cfg: RunConfig, result: AblateResult, out_dir: Path, source: str, k: int) -> AblateResult:
    result.paths = {"json": out_dir / "ablate.json", "md": out_dir / "ablate.md", "plot": out_dir / "ablate.png",
                    "config": out_dir / "config.json"}
    write_json_atomic(result.paths["json"], {"k": k, "variants": result.variants, "baselines": result.baselines,
                                             "simulated_acceptance": result.acceptance})
    write_text_atomic(result.paths["md"], f"# Ablation on {source} (K={k})\n\n"
                      + _table(result.variants, result.baselines, k, result.acceptance))
    plot_ablation(result.variants, result.paths["plot"], k)
    save_config(cfg, result.paths["config"])
    return result
