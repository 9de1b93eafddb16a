"""Stage functions behind the Kubeflow components: paths and a config in, a small result out.

Each KFP component in ``coea.kfp.components`` calls exactly one ``run_*`` function of this module or of
:mod:`coea.state`. Nothing here imports kfp: every stage runs, and is tested, without it.

Stages hand each other directories:

- *prepared data* (:func:`run_prepare_data`): ``interactions.parquet`` (canonical columns), ``stats.json``,
  ``data_config.json`` and, for synthetic data, ``ground_truth/`` (planted groups and affinities);
- *DSIE* (:func:`run_dsie_group`): what :func:`coea.dsie.run.save_dsie` writes (``groups.parquet``,
  ``profiles.json``, ``group_report.json``, embeddings, encoder and RQ-VAE weights with their configs);
- *LLMs* (:func:`run_sft_stage`): what :func:`coea.llm.run.run_train_llms` writes (``novelty/``,
  ``relevance/`` or one of them, ``sft_metrics.json``, ``llm_config.json``);
- *evaluation* (:func:`run_evaluate_stage`): ``metrics.json``, ``metrics.md``, ``metrics_at_K.png`` and the
  same chart as a self-contained ``metrics_at_K.html``, ``config.json``.

Pipeline parameters carry the run config as JSON objects of :class:`~coea.config.RunConfig` sections, the same
shape as the YAML file: :func:`pipeline_arguments` splits a config into them, :func:`config_from_json` merges
them back (sections not given keep their defaults; unknown or repeated sections are errors).
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from coea.config import RunConfig, config_to_dict, from_dict
from coea.data.loaders import LoadedData, load_data
from coea.data.schema import CATEGORY, USER, sort_events
from coea.data.split import Histories, chronological_split
from coea.data.stats import data_stats
from coea.drift import DriftConfig, DriftResult, detect_drift
from coea.errors import CoeaInputError
from coea.evaluation.registry import MethodContext, build_method, method_context, parse_method
from coea.utils import atomic_path, seed_everything, write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

# Pipeline parameter -> the RunConfig sections it carries.
CONFIG_PARAMS: dict[str, tuple[str, ...]] = {
    "data_config": ("data", "synthetic"),
    "split_config": ("split",),
    "dsie_config": ("dsie",),
    "eval_config": ("eval",),
    "llm_config": ("llm",),
    "pco_config": ("pco",),
}
# RunConfig sections no pipeline step reads (every section has its parameter now).
PENDING_SECTIONS: tuple[str, ...] = ()
DSIE_METHODS = ("sasrec", "group_pop_novel")  # methods that read a fitted DSIE
LLM_METHODS = ("nllm_sft", "dual_best_of_n", "rllm_rank", "coea")  # methods that read the trained LLMs
INTERACTIONS = "interactions.parquet"
REC_COLUMNS = ["user_id", "rank", "category", "score"]
MAIN_METRICS = ("C-H", "C-N", "NCP", "CLTP", "S-H")


# -- configs as pipeline parameters ------------------------------------------------------------------------------
def pipeline_arguments(cfg: RunConfig) -> dict[str, str]:
    """The config as the pipelines' JSON parameters (``data_config``, ``split_config``, ...)."""
    full = config_to_dict(cfg)
    return {name: json.dumps({s: full[s] for s in sections}, sort_keys=True)
            for name, sections in CONFIG_PARAMS.items()}


def config_from_json(*texts: str) -> RunConfig:
    """A RunConfig from JSON objects of RunConfig sections; sections not given keep their defaults."""
    merged: dict[str, Any] = {}
    for text in texts:
        try:
            raw = json.loads(text or "{}")
        except json.JSONDecodeError as err:
            raise CoeaInputError(f"config parameter is not JSON: {err}", source="pipeline parameter",
                                 fix='pass a JSON object of config sections, e.g. {"split": {"n_future": 5}}') from err
        if not isinstance(raw, dict):
            raise CoeaInputError(f"config parameter must be a JSON object, got {type(raw).__name__}",
                                 source="pipeline parameter", fix="pass a JSON object of config sections")
        repeated = sorted(set(raw) & set(merged))
        if repeated:
            raise CoeaInputError(f"section(s) {repeated} given in two config parameters",
                                 source="pipeline parameter", fix="give each section once")
        merged.update(raw)
    known = {f.name: f for f in dataclasses.fields(RunConfig)}
    unknown = sorted(set(merged) - set(known))
    if unknown:
        raise CoeaInputError(f"unknown config section(s) {unknown}; known: {sorted(known)}",
                             source="pipeline parameter", fix="use the section names of the YAML run config")
    try:
        return RunConfig(**{name: from_dict(fld.default_factory().__class__, merged.get(name) or {},  # type: ignore[misc]
                                            where=f"[{name}]") for name, fld in known.items()})
    except (ValueError, TypeError) as err:
        raise CoeaInputError(str(err), source="pipeline parameter", fix="see README 'Configuration'") from err


def drift_config_from_json(text: str, *, threshold: float | None = None) -> DriftConfig:
    """A DriftConfig from a JSON object of its fields; ``threshold`` (the pipeline's) overrides the JSON's."""
    try:
        raw = json.loads(text or "{}")
        if threshold is not None:
            raw["threshold"] = float(threshold)
        return from_dict(DriftConfig, raw, where="drift_config")
    except (ValueError, TypeError, AttributeError) as err:
        raise CoeaInputError(str(err), source="drift_config", fix="pass a JSON object of DriftConfig fields") from err


# -- data ----------------------------------------------------------------------------------------------------------
@dataclass
class PrepareResult:
    """A prepared data directory and the statistics of its log."""

    data_dir: Path
    source: str
    stats: dict[str, Any]  # coea.data.stats.data_stats
    paths: dict[str, Path] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """The numeric statistics, flat (for a KFP Metrics artifact)."""
        s = self.stats
        return {"users": s["users"], "items": s["items"], "interactions": s["interactions"],
                "categories": s["categories"], "days": s["time_span"]["days"],
                "median_interactions_per_user": s["interactions_per_user"]["median"],
                "top20pct_category_share": s["top20pct_category_share"]}


def run_prepare_data(cfg: RunConfig, out_dir: Path) -> PrepareResult:
    """Load and validate the log named by ``cfg.data`` (synthetic: generate it); write a prepared data dir."""
    seed_everything(cfg.synthetic.seed)
    loaded = load_data(cfg.data, cfg.synthetic)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"interactions": out_dir / INTERACTIONS, "stats": out_dir / "stats.json",
             "data_config": out_dir / "data_config.json"}
    with atomic_path(paths["interactions"]) as tmp:
        loaded.interactions.to_parquet(tmp, index=False)
    stats = data_stats(loaded.interactions)
    write_json_atomic(paths["stats"], {"source": loaded.source, **stats})
    full = config_to_dict(cfg)
    write_json_atomic(paths["data_config"], {"data": full["data"], "synthetic": full["synthetic"]})
    if loaded.truth is not None:
        for p in loaded.truth.write_ground_truth(out_dir / "ground_truth"):
            paths[p.stem] = p
    log.info("prepared %s: %d events, %d users -> %s", loaded.source, stats["interactions"], stats["users"], out_dir)
    return PrepareResult(out_dir, loaded.source, stats, paths)


def read_prepared(data_dir: Path) -> LoadedData:
    """Read a prepared data directory back (with the synthetic ground truth when it holds one)."""
    from coea.data.synthetic import SyntheticData

    data_dir = Path(data_dir)
    path = data_dir / INTERACTIONS
    if not path.is_file():
        raise CoeaInputError(f"{INTERACTIONS} not found", source=data_dir,
                             fix="pass a directory written by run_prepare_data (the prepare_data step)")
    interactions = pd.read_parquet(path)
    stats_path = data_dir / "stats.json"
    source = json.loads(stats_path.read_text())["source"] if stats_path.is_file() else str(data_dir)
    truth_dir = data_dir / "ground_truth"
    truth = None
    if (truth_dir / "truth_groups.parquet").is_file():
        affinity = pd.read_parquet(truth_dir / "truth_affinity.parquet").set_index(USER)
        truth = SyntheticData(interactions, pd.read_parquet(truth_dir / "truth_groups.parquet"), affinity)
    return LoadedData(interactions, source, truth)


# -- DSIE ----------------------------------------------------------------------------------------------------------
@dataclass
class DsieStageResult:
    """DSIE outputs and the figures a person looks at first (``coea.job.group_summary``)."""

    summary: dict[str, Any]
    paths: dict[str, Path] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        s = self.summary
        out = {"M_N": s["M_N"], "category_cosine_ratio": s["category_cosine_ratio"],
               "kmeans_category_cosine_ratio": s["kmeans_category_cosine_ratio"],
               "group_size_min": s["group_size_min_median_max"][0],
               "group_size_max": s["group_size_min_median_max"][2],
               "codebook_utilisation_mean": sum(s["codebook_utilisation"]) / len(s["codebook_utilisation"]),
               "cold_start_users": s["cold_start_users"]}
        for key in ("ari_vs_planted", "kmeans_ari_vs_planted"):
            if key in s:
                out[key] = s[key]
        return out


def run_dsie_group(cfg: RunConfig, data_dir: Path, out_dir: Path) -> DsieStageResult:
    """Split the prepared log, fit DSIE on the histories, write the DSIE dir (``coea group`` on a prepared dir)."""
    from coea.job import group_summary, run_group

    grouped = run_group(cfg, Path(out_dir), read_prepared(data_dir))
    return DsieStageResult(group_summary(grouped.dsie), grouped.paths)


def load_dsie(dsie_dir: Path):
    """Rebuild a :class:`~coea.dsie.run.DsieResult` from a DSIE dir (groups, profiles, report, both models)."""
    import numpy as np

    from coea.dsie.encoder import EncoderResult, load_encoder
    from coea.dsie.rqvae import RqVaeResult, load_rqvae
    from coea.dsie.run import DsieResult

    dsie_dir = Path(dsie_dir)
    if not (dsie_dir / "groups.parquet").is_file():
        raise CoeaInputError("groups.parquet not found", source=dsie_dir,
                             fix="pass a directory written by run_dsie_group (the dsie_group step)")
    groups = pd.read_parquet(dsie_dir / "groups.parquet")
    report = json.loads((dsie_dir / "group_report.json").read_text())
    model, vocab, enc_cfg = load_encoder(dsie_dir / "encoder")
    warm = groups[~groups["cold_start"].astype(bool)]
    ids = np.array([[int(c) for c in s.split("-")] for s in warm["csid"]], dtype=np.int64)  # (W, L)
    levels = report.get("codebooks", [])
    rq = RqVaeResult(load_rqvae(dsie_dir / "rqvae"), ids, [], [lv["utilisation"] for lv in levels],
                     [lv["perplexity"] for lv in levels], float(report.get("csid_collision_rate", 0.0)))
    emb = pd.read_parquet(dsie_dir / "user_embeddings.parquet").set_index(USER)
    profiles = json.loads((dsie_dir / "profiles.json").read_text())
    return DsieResult(groups, profiles, report, EncoderResult(model, vocab, enc_cfg), rq, emb)


@dataclass
class ProfilesResult:
    """A DSIE dir whose profiles were rewritten from a (newer) log."""

    dsie_dir: Path
    refreshed: list[str]  # groups whose profile was rebuilt (members active in the log)
    kept: list[str]  # groups without active members: previous profile kept


def run_build_profiles(cfg: RunConfig, data_dir: Path, dsie_dir: Path, out_dir: Path) -> ProfilesResult:
    """Copy a DSIE dir to ``out_dir`` and rebuild its ``profiles.json`` from the histories of the prepared log.

    The groups stay as they are (no retraining): this is what the recurring pipeline does when drift stays
    below the threshold. Groups without members in the new log keep their previous profile.
    """
    from coea.dsie.profiles import build_profiles

    out_dir = Path(out_dir)
    shutil.copytree(dsie_dir, out_dir, dirs_exist_ok=True)
    split = chronological_split(read_prepared(data_dir).interactions, cfg.split)
    groups = pd.read_parquet(out_dir / "groups.parquet")
    warm = groups[~groups["cold_start"].astype(bool)]
    user_group = dict(zip(warm[USER], warm["group_id"], strict=True))
    old = json.loads((out_dir / "profiles.json").read_text())
    csid = {g: old.get(g, {}).get("csid", g) for g in set(user_group.values())}
    fresh = build_profiles(split.histories.interactions, user_group, csid, cfg.dsie.profile)
    write_json_atomic(out_dir / "profiles.json", {**old, **fresh})
    kept = sorted(set(old) - set(fresh))
    log.info("profiles rebuilt for %d groups, %d kept from before", len(fresh), len(kept))
    return ProfilesResult(out_dir, sorted(fresh), kept)


# -- LLMs ----------------------------------------------------------------------------------------------------------
LlmDirs = Path | Sequence[Path] | None  # one dir with novelty/ and relevance/, or one dir per model


@dataclass
class SftStageResult:
    """The LLM dir, how each SFT went (``coea.llm.run.LlmTrainResult.metrics``), the files written."""

    out_dir: Path
    sft: dict[str, dict[str, Any]]
    paths: dict[str, Path] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """``<model>.<figure>`` (examples, steps, seconds, first/last loss), flat (for a KFP Metrics artifact)."""
        return {f"{name}.{key}": float(m[key]) for name, m in self.sft.items()
                for key in ("examples", "steps", "seconds", "first_loss", "last_loss") if m.get(key) is not None}


def run_sft_stage(cfg: RunConfig, data_dir: Path, dsie_dir: Path, out_dir: Path,
                  which: Sequence[str] = ("novelty", "relevance")) -> SftStageResult:
    """SFT the LLMs named in ``which`` on the prepared log's histories and the DSIE dir's groups and profiles
    (``coea train-llms`` on pipeline dirs); written under ``out_dir`` (``novelty/``, ``relevance/``, ...).

    A category that appears only in a later period is admitted when the models meet it (PCO update, methods):
    :func:`coea.llm.models.admit_categories`.
    """
    from coea.llm.run import run_train_llms
    from coea.llm_job import read_groups_dir

    split = chronological_split(read_prepared(data_dir).interactions, cfg.split)
    histories = split.histories
    g = read_groups_dir(Path(dsie_dir))
    result = run_train_llms(cfg.llm, histories, g.groups, g.profiles, g.csid_levels, Path(out_dir),
                            which=tuple(which))
    return SftStageResult(Path(out_dir), result.metrics(), result.paths)


@dataclass
class PcoStageResult:
    """The PCO dir (checkpoints, pco_metrics.json/.png) and the last round's figures."""

    out_dir: Path
    last: dict[str, Any]

    def metrics(self) -> dict[str, float]:
        """The last round's numeric figures, flat (for a KFP Metrics artifact)."""
        return {k: float(v) for k, v in self.last.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def run_pco_stage(cfg: RunConfig, data_dir: Path, dsie_dir: Path, llm_dir: LlmDirs, out_dir: Path) -> PcoStageResult:
    """PCO rounds (:mod:`coea.pco`) from the SFT models in ``llm_dir`` on the prepared log's split, with
    per-round metrics; checkpoints, ``pco_metrics.json`` and ``pco_metrics.png`` under ``out_dir``."""
    from coea.evaluation.pco_metrics import SplitEvaluator
    from coea.pco.run import run_pco

    split = chronological_split(read_prepared(data_dir).interactions, cfg.split)
    llms = load_llms(llm_dir, dsie_dir)
    result = run_pco(cfg.pco, cfg.llm, split.histories, llms.groups, llms.novelty, llms.relevance, Path(out_dir),
                     n_short=split.config.n_short, device=cfg.llm.novelty.device,
                     evaluate=SplitEvaluator(split, llms.groups, cfg.llm, cfg.pco.k))
    return PcoStageResult(Path(out_dir), result.rounds[-1])


def load_llms(llm_dir: Path | Sequence[Path], dsie_dir: Path):
    """The trained LLMs (:class:`~coea.llm.run.LlmTrainResult`) from one dir holding ``novelty/`` and
    ``relevance/`` or from several dirs (the first holding each model wins), with the DSIE dir's groups."""
    from coea.llm.run import load_trained_llms
    from coea.llm_job import read_groups_dir

    dirs = [Path(llm_dir)] if isinstance(llm_dir, (str, Path)) else [Path(d) for d in llm_dir]
    found = {}
    for name in ("novelty", "relevance"):
        found[name] = next((d for d in dirs if (d / name).is_dir()), None)
        if found[name] is None:
            raise CoeaInputError(f"no {name}/ model in {[str(d) for d in dirs]}", source=dirs[0],
                                 fix="pass the dir(s) written by run_sft_stage (the sft_* steps)")
    g = read_groups_dir(Path(dsie_dir))
    return load_trained_llms(found["novelty"], g.groups, g.profiles, relevance_dir=found["relevance"])


# -- evaluation ----------------------------------------------------------------------------------------------------
@dataclass
class EvalStageResult:
    """metrics.json's content, the main metrics at the largest K, and the files written."""

    metrics: dict[str, Any]
    main: dict[str, float]  # "<method>.<metric>@K" -> value
    table: str
    paths: dict[str, Path] = field(default_factory=dict)


def last_pco_round(pco_dir: Path) -> Path:
    """The dir of the last complete PCO round in ``pco_dir`` (``rounds/round_NNN/`` with ``novelty/`` and
    ``relevance/``)."""
    from coea.pco.checkpoint import last_complete_round

    return last_complete_round(pco_dir)


def load_pco(pco_dir: Path, dsie_dir: Path):
    """The models after the last complete PCO round in ``pco_dir`` (as :class:`~coea.llm.run.LlmTrainResult`)."""
    return load_llms(last_pco_round(pco_dir), dsie_dir)


def export_pco_models(pco_dir: Path, novelty_out: Path, relevance_out: Path) -> Path:
    """Copy the last PCO round's models to ``novelty_out/novelty/`` and ``relevance_out/relevance/`` (the layout
    of the ``sft_*`` steps' outputs, what :func:`load_llms` and :func:`coea.state.run_save_models` read);
    returns the round dir copied from."""
    from coea.pco.checkpoint import export_round_models

    return export_round_models(pco_dir, novelty_out, relevance_out)


def _context(cfg: RunConfig, methods: list[str], histories: Histories, dsie_dir: Path | None,
             llm_dir: LlmDirs = None, pco_dir: Path | None = None) -> MethodContext:
    """A method context whose DSIE is the fitted one in ``dsie_dir`` (when a method needs DSIE), whose LLMs
    are the trained ones in ``llm_dir`` and whose ``coea`` models are the last PCO round in ``pco_dir`` (when a
    method needs them; without these dirs they are trained in-process)."""
    ctx = method_context(cfg)
    bases = {parse_method(m).base for m in methods}
    if dsie_dir is not None and bases & set(DSIE_METHODS):
        ctx.cache[("dsie", id(histories))] = load_dsie(dsie_dir)
    if dsie_dir is not None and llm_dir is not None and bases & set(LLM_METHODS):
        ctx.cache[("llms", id(histories))] = load_llms(llm_dir, dsie_dir)
    if dsie_dir is not None and pco_dir is not None and "coea" in bases:
        ctx.cache[("pco", id(histories))] = load_pco(pco_dir, dsie_dir)
    return ctx


def context_from_run(cfg: RunConfig, run_dir: Path, histories: Histories) -> MethodContext:
    """``coea evaluate --from-run``: reuse ``run_dir``'s ``dsie/``, ``llm/`` and ``pco/`` where present."""
    run_dir = Path(run_dir)
    if not (run_dir / "dsie").is_dir():
        raise CoeaInputError("no dsie/ directory", source=run_dir, option="--from-run",
                             fix="pass a directory written by `coea run`, `coea ablate` or a pipeline run")
    llm = run_dir / "llm" if (run_dir / "llm").is_dir() else None
    pco = run_dir / "pco" if (run_dir / "pco").is_dir() else None
    return _context(cfg, cfg.eval.methods, histories, run_dir / "dsie", llm, pco)


def png_as_html(png: Path, title: str) -> str:
    """A self-contained HTML page showing ``png`` (base64 data URI): what a KFP HTML artifact can display."""
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    t = html.escape(title)
    return (f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{t}</title></head>\n'
            f'<body><h3>{t}</h3><img alt="{t}" src="data:image/png;base64,{data}"></body></html>\n')


def run_evaluate_stage(cfg: RunConfig, data_dir: Path, dsie_dir: Path | None, out_dir: Path,
                       llm_dir: LlmDirs = None, pco_dir: Path | None = None) -> EvalStageResult:
    """``coea evaluate`` on a prepared log, with the DSIE methods using the fitted DSIE in ``dsie_dir`` and the
    LLM methods the trained LLMs in ``llm_dir`` (see :func:`load_llms`)."""
    from coea.evaluation.evaluate import run_evaluate

    loaded = read_prepared(data_dir)
    split = chronological_split(loaded.interactions, cfg.split)
    ctx = _context(cfg, cfg.eval.methods, split.histories, dsie_dir, llm_dir, pco_dir)
    result = run_evaluate(cfg, Path(out_dir), loaded, split=split, ctx=ctx)
    k = max(cfg.eval.ks)
    paths = dict(result.paths)
    paths["plot_html"] = Path(out_dir) / f"metrics_at_{k}.html"
    write_text_atomic(paths["plot_html"], png_as_html(paths["plot"], f"{loaded.source}: category metrics at K={k}"))
    main = {f"{name}.{m}@{k}": float(values[f"{m}@{k}"])
            for name, values in result.metrics["methods"].items() for m in MAIN_METRICS if f"{m}@{k}" in values}
    return EvalStageResult(result.metrics, main, result.table, paths)


# -- recommendations -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RecommendResult:
    """A recommendations parquet (user_id, rank, category, score) and what it holds."""

    path: Path
    method: str
    k: int
    n_users: int
    n_rows: int


def serving_histories(interactions: pd.DataFrame, cfg: RunConfig) -> Histories:
    """Every event counts as history when recommending for serving (nothing is held out)."""
    from coea.dsie.short_term import short_term_sets

    events = sort_events(interactions).reset_index(drop=True)
    short = short_term_sets(events, cfg.split.n_short, cfg.split.short_window)
    return Histories(events, short, sorted(events[CATEGORY].unique()))


def run_recommend(cfg: RunConfig, data_path: Path, dsie_dir: Path | None, method: str, k: int,
                  out_path: Path, llm_dir: LlmDirs = None, pco_dir: Path | None = None) -> RecommendResult:
    """Top-``k`` categories per user by ``method`` fitted on every event of the log; written as parquet.

    ``method`` is an evaluation method name (``coea+x`` by default in the training pipeline: the N-LLM after PCO
    with the user's seen categories excluded). DSIE and LLM methods use the fitted ``dsie_dir``/``llm_dir``.
    ``score`` is the method's own score of the category (higher is better).
    """
    seed_everything(cfg.eval.seed)
    if k < 1:
        raise CoeaInputError(f"k must be >= 1, got {k}", option="k", fix="e.g. k=10")
    spec = parse_method(method)
    hist = serving_histories(read_prepared(data_path).interactions, cfg)
    model = build_method(spec, _context(cfg, [method], hist, dsie_dir, llm_dir, pco_dir)).fit(hist)
    users = sorted(hist.interactions[USER].astype(str).unique())
    exclude = hist.user_categories() if spec.exclude_history else None
    recs = model.recommend(users, k, exclude=exclude)
    scores = model.score(users)  # (U, C)
    rows = [(u, rank, c, float(scores[i, model.index[c]]))
            for i, u in enumerate(users) for rank, c in enumerate(recs[u], start=1)]
    frame = pd.DataFrame(rows, columns=REC_COLUMNS)
    with atomic_path(Path(out_path)) as tmp:
        frame.to_parquet(tmp, index=False)
    log.info("recommendations: %s top-%d for %d users -> %s", method, k, len(users), out_path)
    return RecommendResult(Path(out_path), method, k, int(frame[USER].nunique()), len(frame))


# -- drift ---------------------------------------------------------------------------------------------------------
def run_monitor_drift(cfg: DriftConfig, reference_dir: Path, current_dir: Path, dsie_dir: Path | None,
                      out_dir: Path) -> DriftResult:
    """Evidently drift between two prepared logs; with ``dsie_dir`` the users' groups are a feature too."""
    user_groups = None
    if dsie_dir is not None:
        groups = pd.read_parquet(Path(dsie_dir) / "groups.parquet")
        user_groups = dict(zip(groups[USER].astype(str), groups["group_id"].astype(str), strict=True))
    reference = read_prepared(reference_dir).interactions
    current = read_prepared(current_dir).interactions
    return detect_drift(cfg, reference, current, Path(out_dir), user_groups=user_groups)
