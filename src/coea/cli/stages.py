"""The commands that run one stage or the in-process flow on a run folder (:mod:`coea.stages`, :mod:`coea.flow`)."""

from __future__ import annotations

import functools
import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from coea import lineage
from coea.cli.common import (
    METHOD_NAMES,
    ColOpt,
    ConfigOpt,
    DataOpt,
    DeviceOpt,
    LevelOpt,
    MethodsOpt,
    MinGapOpt,
    MinHistOpt,
    NFutureOpt,
    NShortOpt,
    RunConfigOpt,
    RunOpt,
    app,
    check_complete,
    check_lineage,
    check_writable_file,
    config_with_data,
    csv,
    data_config,
    eval_overrides,
    from_run_config,
    ints,
    load_config,
    output_folder,
    overrides,
    pco_overrides,
    require_parts,
    run_layout,
    split_config,
    with_device,
)
from coea.cli.rerun import pco_rerun, rerun_note, sft_rerun
from coea.config import SERVED_METHOD, EvalConfig, save_config
from coea.config_record import replacing_config
from coea.errors import CoeaInputError


@app.command("evaluate")
def evaluate_cmd(
    out: Annotated[Path, typer.Option("--out", help="output directory")],
    data: DataOpt = None, config: ConfigOpt = None,
    methods: MethodsOpt = None,
    k: Annotated[str | None, typer.Option("--k", metavar="K1,K2,...", help="comma-separated cut-offs, each >= 1 "
                                           "(default: the config's eval.ks, by default "
                                           f"{','.join(map(str, EvalConfig().ks))})")] = None,
    n_future: NFutureOpt = None, n_short: NShortOpt = None, min_history: MinHistOpt = None,
    min_gap: MinGapOpt = None, category_level: LevelOpt = None,
    seed: Annotated[int | None, typer.Option(help="seeds the random baseline, the bootstrap CIs and any sampling "
                                                  f"(default: the config's eval.seed, by default {EvalConfig().seed})")]
    = None,
    user_col: ColOpt = None, item_col: ColOpt = None, category_col: ColOpt = None, timestamp_col: ColOpt = None,
    from_run: Annotated[Path | None, typer.Option("--from-run", help="reuse the prepared data (data/), DSIE "
                                                                     "(dsie/), SFT models (llm/) and PCO rounds "
                                                                     "(pco/) of an earlier run, and its config.json "
                                                                     "unless --config is given")] = None,
    device: DeviceOpt = None,
    reference: Annotated[str | None, typer.Option("--reference", metavar="METHOD",
                                                  help="paired bootstrap CIs compare every method with this one "
                                                       "(one of --methods; default: the best baseline by S-H at "
                                                       "the largest K)")] = None,
) -> None:
    """Score methods on each user's held-out future. Without --from-run, first trains what the methods need
    (DSIE, SFT, PCO: the training flow) into OUT; writes metrics.json/.md (with each method's paired bootstrap
    CI of its S-H and C-H difference against the reference) and a plot."""
    from coea.flow import Step, run_flow
    from coea.layout import RunLayout

    cfg = _scored_data_config(from_run_config(config, from_run), from_run, data, {
        "--category-level": category_level, "--user-col": user_col, "--item-col": item_col,
        "--category-col": category_col, "--timestamp-col": timestamp_col})
    cfg = with_device(replace(
        cfg, data=data_config(cfg.data, data, category_level, user_col, item_col, category_col, timestamp_col),
        split=split_config(cfg.split, n_future, n_short, min_history, min_gap),
        eval=eval_overrides(cfg.eval, methods=csv(methods), ks=ints(k, "--k"), seed=seed, reference=reference)), device)
    with output_folder(out):
        if from_run is None:  # the flow replaces OUT's models: an earlier config.json of other settings goes first
            with replacing_config(cfg, RunLayout(out).config):
                evaluation = run_flow(cfg, RunLayout(out)).results[Step.EVALUATE]
        else:  # only the metrics and config.json are written, together (OUT may be the run itself)
            evaluation = _evaluate_run(cfg, from_run, out, data_given=data is not None)
    typer.echo(evaluation.table)
    typer.echo(f"wrote {', '.join(str(p) for p in evaluation.paths.values())}")


def _scored_data_config(cfg, from_run: Path | None, data: str | None, options: dict[str, str | None]):
    """``evaluate --from-run`` without ``--data`` scores the run's own prepared data/: the data options that only
    shape a log being read are refused there (they were ignored, yet written into OUT/config.json, which the next
    ``--from-run OUT`` read), and OUT/config.json records the run's data section, not another config's."""
    if from_run is None or data is not None or not (from_run / "data").is_dir():
        return cfg
    given = [name for name, value in options.items() if value is not None]
    if given:
        raise CoeaInputError(f"{given[0]} has no effect with --from-run alone: the run's prepared data/ is scored as "
                             "it was read", option=given[0],
                             fix=f"drop {given[0]}, or pass --data too to score another reading of the log")
    if (from_run / "config.json").is_file():
        return replace(cfg, data=load_config(from_run / "config.json", saved=True).data)
    return cfg


def _evaluate_run(cfg, from_run: Path, out: Path, *, data_given: bool):
    """``evaluate --from-run``: score the run's artifacts on its own log, or on ``--data``'s (or where the run has
    no data/) prepared into OUT/data/, which is replaced only once the log passed the checks that can refuse it
    (the cut-offs, the split, the run's lineage): a refused log leaves an existing OUT as it was."""
    from coea.flow import staged_data
    from coea.layout import RunLayout
    from coea.stages import run_evaluate_stage

    run = run_layout(from_run)
    require_parts(from_run, cfg.eval.methods, "--methods")
    data_dir = run.data
    if data_given or not data_dir.is_dir():
        check = functools.partial(_check_scored_log, from_run, cfg, given=data_given)
        with staged_data(cfg, RunLayout(out).data, ks=True, split=True, check=check) as prepared:
            pass
        data_dir = prepared.data_dir
    else:
        _check_scored_log(from_run, cfg, data_dir, given=False)
    return run_evaluate_stage(cfg, data_dir, out, run.artifacts())


def _check_scored_log(run: Path, cfg, data_dir: Path, *, given: bool) -> None:
    """``evaluate --from-run``: the run's artifacts must have learned from this split's histories of the log that
    is scored (the run's own, or ``--data``'s): fitted on another log, their scores could count events they
    learned from as held-out future (the leakage guard held only without ``--data``)."""
    try:
        check_lineage(run, cfg.eval.methods, cfg, data_dir)
    except CoeaInputError as err:
        if not given or "another log" not in err.problem:
            raise
        raise err.replace(problem="it was fitted on another log than --data's: its held-out futures could be "
                                  "events the run learned from", option="--data",
                          fix="leave --data out to score the run on its own log, or leave --from-run out to "
                              "train on this log") from err


@app.command("group")
def group_cmd(
    out: Annotated[Path, typer.Option("--out", help="run folder: writes data/ and dsie/ in it")],
    data: DataOpt = None, config: ConfigOpt = None, category_level: LevelOpt = None,
    user_col: ColOpt = None, item_col: ColOpt = None, category_col: ColOpt = None, timestamp_col: ColOpt = None,
    min_history: MinHistOpt = None, n_short: NShortOpt = None, device: DeviceOpt = None,
) -> None:
    """DSIE: encoder -> RQ-VAE CSIDs -> groups, profiles and group_report.json, fitted on histories."""
    from coea.evaluation.registry import Need
    from coea.flow import Step, run_flow
    from coea.layout import RunLayout

    cfg = config_with_data(config, data, category_level, user_col, item_col, category_col, timestamp_col)
    cfg = replace(cfg, split=overrides(cfg.split, min_history=min_history, n_short=n_short))
    cfg = with_device(cfg, device)
    with output_folder(out), replacing_config(cfg, RunLayout(out).config):
        result = run_flow(cfg, RunLayout(out), needs=frozenset({Need.DSIE}), evaluate=False).results[Step.DSIE]
        save_config(cfg, RunLayout(out).config)  # what train-llms, pco and serve on this run read by default
    typer.echo(json.dumps(result.summary.as_dict(), indent=2))
    for name, path in result.paths.items():
        typer.echo(f"  {name:<16} {path}")


@app.command("train-llms")
def train_llms_cmd(
    run: RunOpt, config: RunConfigOpt = None, device: DeviceOpt = None,
    only: Annotated[str | None, typer.Option(
        help="train one model and keep the other in RUN/llm/: novelty or relevance (e.g. re-train the R-LLM "
             "with llm.relevance_init: novelty from RUN's N-LLM)")] = None,
    retrain: Annotated[bool, typer.Option(
        "--retrain", help="train again a model RUN/llm/ already holds finished with these settings on this data "
                          "(kept by default: e.g. the N-LLM when a re-run follows an R-LLM failure)")] = False,
) -> None:
    """SFT of the Novelty and Relevance LLMs on history-only examples of RUN's data with RUN's groups; writes
    RUN/llm/ (both models with their configs, sft_metrics_<model>.json). A model already there, finished with the
    same LLM settings on the same data, split and groups, is kept (a re-run trains only what is missing)."""
    from coea.llm.sft_config import MODELS
    from coea.stages import run_sft_stage
    from coea.stages.sft import trained_with

    if only is not None and only not in MODELS:
        raise CoeaInputError(f"unknown model {only!r}", option="--only", fix=f"use one of {', '.join(MODELS)}")
    layout = run_layout(run, "data", "dsie")
    cfg = with_device(from_run_config(config, run), device)
    lineage.check(layout.dsie, "dsie", lineage.histories(layout.data, cfg.split))
    which = (only,) if only else MODELS
    kept = [] if retrain else [n for n in which if trained_with(layout.llm, n, cfg, layout.data, layout.dsie)]
    for name in kept:
        typer.echo(f"{name}: kept {layout.llm / name} (finished with these settings on this data and groups; "
                   "--retrain trains it again)", err=True)
    if len(kept) == len(which):
        return
    names = tuple(n for n in which if n not in kept)
    with rerun_note(lambda: sft_rerun(layout, cfg, names)):  # the interrupt line says what a re-run does
        result = run_sft_stage(cfg, layout.data, layout.dsie, layout.llm, which=names)
    typer.echo(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "losses"} for k, v in result.sft.items()},
                          indent=2))
    for name, path in result.paths.items():
        typer.echo(f"  {name:<12} {path}")


@app.command("pco")
def pco_cmd(
    run: RunOpt, config: RunConfigOpt = None, device: DeviceOpt = None,
    rounds: Annotated[int | None, typer.Option(help="PCO rounds, >= 1 (default: the config's pco.rounds)")] = None,
    alpha: Annotated[float | None, typer.Option(help="KL weight, >= 0 (default: the config's pco.dpo.alpha)")]
    = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue RUN/pco/ after its last complete round")] = False,
    served: Annotated[Path | None, typer.Option(
        metavar="PATH", help="what the serving store showed each user before RUN's period: a recommendations "
                             "parquet (user_id, rank, category, score), e.g. a run's recommendations.parquet; with "
                             "a feedback reward the served categories join the candidates and shown-and-ignored "
                             "ones are the first rejected (pco.exposure_inject)")] = None,
) -> None:
    """PCO: rounds of N-LLM sampling, R-LLM scoring, DPO+KL and R-LLM refresh from RUN's SFT models; per-round
    metrics on the split; checkpoints and pco_metrics.json/.png in RUN/pco/."""
    from coea.stages import run_pco_stage

    layout = run_layout(run, "data", "dsie", "llm")
    cfg = with_device(from_run_config(config, run), device)
    cfg = replace(cfg, pco=pco_overrides(cfg.pco, rounds, alpha))
    if served is not None:
        _check_served(served, cfg.pco)
    with rerun_note(lambda: pco_rerun(layout.pco, cfg)):  # the interrupt line says what a re-run does
        result = run_pco_stage(cfg, layout.data, layout.dsie, [layout.llm], layout.pco, resume=resume,
                               served=served, check_run=run)
    keys = ("round", "C-H", "NCP", "S-H", "x_S-H", "rscore", "kl_sft", "pairs", "dpo_margin", "distill_kl", "round_s")
    for row in result.rounds:
        typer.echo("  ".join(f"{key} {row[key]:.4g}" if isinstance(row.get(key), float) else f"{key} {row.get(key)}"
                             for key in keys if row.get(key) is not None))
    typer.echo(f"wrote {layout.pco / 'pco_metrics.json'}, {layout.pco / 'pco_metrics.png'}")


def _check_served(served: Path, pco) -> None:
    """``pco --served``: the file is read (a bad one is a one-line error) whatever the config, and a config or file
    that makes it change nothing says so (session 55: it was not even opened with ``exposure_inject: false``)."""
    from coea.pco.config import FEEDBACK_REWARDS
    from coea.stages.pco import read_exposure

    lists = read_exposure(served)
    if not pco.exposure_inject:
        typer.echo(f"warning: --served {served} is not used: pco.exposure_inject is false", err=True)
    elif pco.reward not in FEEDBACK_REWARDS:
        typer.echo(f"warning: --served {served} is not used: pco.reward {pco.reward} reads no logged feedback (only "
                   "feedback and hybrid add the served categories to the candidates)", err=True)
    elif not lists:
        typer.echo(f"warning: --served {served} holds no lists: this run has no exposure", err=True)


@app.command("ablate")
def ablate_cmd(
    out: Annotated[Path, typer.Option("--out", help="output directory")],
    data: DataOpt = None, config: ConfigOpt = None, category_level: LevelOpt = None,
    user_col: ColOpt = None, item_col: ColOpt = None, category_col: ColOpt = None, timestamp_col: ColOpt = None,
    rounds: Annotated[int | None, typer.Option(help="PCO rounds per variant, >= 1 (default: the config's)")] = None,
    device: DeviceOpt = None,
    prompt_variants: Annotated[bool, typer.Option("--prompt-variants", help="also a variant per prompt section, "
                                                  "each with its own SFT: the section taken away where the config "
                                                  "sets it, added where it does not (defaults: w/o full CSID, + "
                                                  "long-term summary, w/o event sequence, w/o item sequence)")]
    = False,
    from_run: Annotated[Path | None, typer.Option("--from-run", help="reuse the prepared data, DSIE and SFT pair "
                                                                     "of an earlier run (nothing is written there) "
                                                                     "and its config.json unless --config is "
                                                                     "given")] = None,
    variants: Annotated[str | None, typer.Option("--variants", help="comma-separated: coea and only these "
                                                 "variants (names as in the table, e.g. 'coea + long-term "
                                                 "summary,coea w/o KL'); default: all")] = None,
) -> None:
    """coea, w/o R-LLM, w/o KL (w/o reference where alpha is 0), w/o CSID (+ CSID), alpha in {0.1, 0.4, 0.6} but the
    config's, + encoder, and w/o feedback (feedback or hybrid reward) or w/o teacher (teacher reward) over the same
    rounds: table and plot."""
    from coea.ablate import run_ablate

    data_options = {"--data": data, "--category-level": category_level, "--user-col": user_col,
                    "--item-col": item_col, "--category-col": category_col, "--timestamp-col": timestamp_col}
    given = [name for name, value in data_options.items() if value is not None]
    if from_run is None:
        cfg = config_with_data(config, data, category_level, user_col, item_col, category_col, timestamp_col)
    elif given:
        raise CoeaInputError(f"{given[0]} and --from-run both given", option=given[0],
                             fix=f"drop {given[0]}: the ablation reads the run's prepared data/")
    else:
        run_layout(from_run, "data", "dsie", "llm")
        cfg = from_run_config(config, from_run)
        check_lineage(from_run, ["nllm_sft"], cfg)  # the ablation builds on the run's DSIE dir and SFT pair
    cfg = replace(with_device(cfg, device), pco=overrides(cfg.pco, rounds=rounds))
    with output_folder(out):
        result = run_ablate(cfg, out, extras=prompt_variants, from_run=from_run, only=csv(variants, "--variants"))
    typer.echo(result.paths["md"].read_text(encoding="utf-8"))
    typer.echo(f"wrote {', '.join(str(p) for p in result.paths.values())}")


@app.command("serve")
def serve_cmd(
    run: RunOpt,
    out: Annotated[str, typer.Option("--out", metavar="PATH", help="Parquet file: user_id, rank, category, "
                                                                    "score")],
    config: RunConfigOpt = None, device: DeviceOpt = None,
    method: Annotated[str, typer.Option(help=f"one method: {METHOD_NAMES}; optionally with +x (history categories "
                                             f"excluded). Default: {SERVED_METHOD}, the method the pipelines serve")]
    = SERVED_METHOD,
    k: Annotated[int, typer.Option("--k", help="categories per user")] = 10,
) -> None:
    """Top-K categories for every user of RUN's data (every event is history) by METHOD, with RUN's models."""
    from coea.stages import run_recommend

    out = check_writable_file(out)  # before any model is read or any user scored
    if out.suffix and out.suffix.lower() != ".parquet":  # e.g. recs.csv: a Parquet file under a CSV name
        raise CoeaInputError(f"names a {out.suffix} file, but serve writes Parquet", source=out, option="--out",
                             fix=f"pass {out.with_suffix('.parquet')} (pandas.read_parquet reads it)")
    layout = run_layout(run, "data")
    cfg = with_device(from_run_config(config, run), device)
    try:
        if k >= 1:  # (a bad --k is run_recommend's error, named first)
            require_parts(run, [method], "--methods")
        check_lineage(run, [method], None)
        result = run_recommend(cfg, layout.data, layout.artifacts(), method, k, out)
    except CoeaInputError as err:  # the library names its arguments; here they are this command's options
        raise err.replace(option={"--methods": "--method", "k": "--k"}.get(err.option, err.option)) from err
    typer.echo(f"wrote {result.n_rows} rows for {result.n_users} users to {out}")


@app.command("recommend")
def recommend_cmd(
    store: Annotated[Path, typer.Option("--store", help="SQLite KV store (e.g. runs/<ts>/recs.sqlite)")],
    user: Annotated[str | None, typer.Option("--user", help="user id to look up")] = None,
    group: Annotated[str | None, typer.Option("--group", help="group id to look up instead: only in a store "
                                                              "published with group entries (the pipelines "
                                                              "publish users only)")] = None,
) -> None:
    """Print a user's (or a group's) served top-K categories from the active version of a KV store."""
    from coea.store import KeyKind, KVStore

    if store.is_dir():
        inside = next(iter(sorted(store.rglob("recs.sqlite"))), None)
        raise CoeaInputError("is a folder, expected the store's file", source=store, option="--store",
                             fix=f"pass --store {inside}" if inside else "pass the recs.sqlite written by `coea run` "
                                                                          "(RUN/recs.sqlite)")
    if not store.is_file():
        raise CoeaInputError("store not found", source=store, option="--store",
                             fix="pass the recs.sqlite written by `coea run` (RUN/recs.sqlite)")
    if (user is None) == (group is None):
        raise CoeaInputError("give exactly one of --user and --group", option="--user/--group")
    with KVStore(store, create=False) as kv:  # a lookup: opens an existing store only, writes nothing
        # one read transaction: a publish meanwhile cannot pair one version's id with another's list
        found = kv.lookup(KeyKind.USER, user) if user is not None else kv.lookup(KeyKind.GROUP, group)
    version, recs, examples = found.version, found.recs, found.examples if user is not None else []
    if version is None:
        raise CoeaInputError("the store has no published version yet", source=store,
                             fix="publish first (`coea run` or the pipelines' publish step)")
    if group is not None and not found.n_groups:
        raise CoeaInputError(f"version {version} holds no group entries (`coea run` and the pipelines publish "
                             "per-user recommendations only)", source=store, option="--group",
                             fix="look up a user with --user")
    if not recs:
        key = f"user {user!r}" if user is not None else f"group {group!r}"
        like = f"; ids in this store look like {', '.join(examples)}" if examples else ""
        known = "; a user who has had every category gets no list" if user is not None else ""
        raise CoeaInputError(f"{key} has no recommendations in version {version}{like}", source=store,
                             fix=f"check the id (ids are strings, e.g. '42' for MovieLens){known}")
    typer.echo(json.dumps({"version": version, "recommendations": [
        {"rank": r.rank, "category": r.category, "score": r.score} for r in recs]}, indent=2))


@app.command("report")
def report_cmd(
    run_dir: Annotated[Path, typer.Option("--run-dir", help="a run directory, runs/<timestamp>/")],
    out: Annotated[str | None, typer.Option("--out", metavar="PATH", help="output file (default "
                                                                          "RUN_DIR/report.html)")] = None,
) -> None:
    """(Re)render a run's self-contained HTML report: metrics, plots, DSIE groups, drift, PCO rounds."""
    from coea.report_html import render_report, report_inputs

    if run_dir.exists() and not run_dir.is_dir():
        raise CoeaInputError("is a file, expected a folder (a run's, holding metrics.json, dsie/, pco/ ...)",
                             source=run_dir, option="--run-dir", fix=f"pass the folder: --run-dir {run_dir.parent}")
    if not run_dir.is_dir():
        raise CoeaInputError("run directory not found", source=run_dir, option="--run-dir",
                             fix="pass a runs/<timestamp>/ directory")
    out_file = None if out is None else check_writable_file(out, example="report.html")  # before anything is read
    if not report_inputs(run_dir):
        check_complete(run_dir, "--run-dir")  # a `coea run` that stopped before any output: say where it stopped
        raise CoeaInputError("nothing to report: no metrics.json, served lists, dsie/group_report.json, PCO metrics, "
                             "drift.json or plot in it", source=run_dir, option="--run-dir",
                             fix="pass a runs/<timestamp>/ of `coea run`, or the --out of `coea evaluate`/`group`")
    typer.echo(f"report: {render_report(run_dir, out_file)}")
