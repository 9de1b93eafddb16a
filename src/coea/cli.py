"""The ``coea`` command line. Bad input ends with one line on stderr and exit code 2."""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from coea.config import CategoryLevel, DataConfig, RunConfig, SplitConfig, load_run_config
from coea.errors import CoeaInputError
from coea.utils import setup_logging

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
                  help="CoEA: serendipitous category recommendation with dual collaborative LLMs.")
data_app = typer.Typer(no_args_is_help=True, help="Inspect and generate interaction data.")
app.add_typer(data_app, name="data")

log = logging.getLogger("coea.cli")

# Options shared by the commands that read data. None means "keep the config file's value".
DataOpt = Annotated[str | None, typer.Option("--data", help="synthetic | movielens:DIR | csv:PATH | parquet:PATH")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML run config (sections: data, synthetic, "
                                                                 "split, eval)")]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="auto | cpu | cuda[:N] for every model of the "
                                                                 "command (default: the config's device, auto = "
                                                                 "cuda when available)")]
LevelOpt = Annotated[CategoryLevel | None, typer.Option("--category-level", help="MovieLens: full genre string or "
                                                                                  "first genre")]
ColOpt = Annotated[str | None, typer.Option(help="csv/parquet: the file's column holding this field")]


def _overrides(obj, **values):
    """``dataclasses.replace`` with only the values that were given (not None)."""
    given = {k: v for k, v in values.items() if v is not None}
    try:
        return replace(obj, **given) if given else obj
    except ValueError as err:
        raise CoeaInputError(f"invalid option value: {err}", fix="see --help for valid values") from err


def _load_config(path: Path | None) -> RunConfig:
    if path is not None and not path.is_file():
        raise CoeaInputError("config file not found", source=path, fix="check the --config path")
    try:
        return load_run_config(path)
    except (ValueError, TypeError) as err:
        raise CoeaInputError(str(err), source=path, fix="fix the YAML; see README 'Configuration'") from err


def _config_with_data(config: Path | None, data: str | None) -> RunConfig:
    """The run config from ``--config``, with ``--data`` overriding its data spec when given."""
    cfg = _load_config(config)
    return replace(cfg, data=_overrides(cfg.data, spec=data))


def _data_config(base: DataConfig, data, level, user_col, item_col, category_col, timestamp_col) -> DataConfig:
    return _overrides(base, spec=data, category_level=level, user_col=user_col, item_col=item_col,
                      category_col=category_col, timestamp_col=timestamp_col)


@data_app.command("stats")
def data_stats_cmd(
    data: DataOpt = None, config: ConfigOpt = None, category_level: LevelOpt = None,
    user_col: ColOpt = None, item_col: ColOpt = None, category_col: ColOpt = None, timestamp_col: ColOpt = None,
) -> None:
    """Print JSON statistics of a data set: users, items, interactions, categories, time span, activity."""
    from coea.data import data_stats, load_data

    cfg = _load_config(config)
    dcfg = _data_config(cfg.data, data, category_level, user_col, item_col, category_col, timestamp_col)
    loaded = load_data(dcfg, cfg.synthetic)
    typer.echo(json.dumps({"source": loaded.source, **data_stats(loaded.interactions)}, indent=2))


@data_app.command("synth")
def data_synth_cmd(
    out: Annotated[Path, typer.Option("--out", help="directory for interactions.parquet and the ground truth")],
    config: ConfigOpt = None,
    seed: Annotated[int | None, typer.Option(help="generator seed")] = None,
    users: Annotated[int | None, typer.Option(help="number of users")] = None,
    categories: Annotated[int | None, typer.Option(help="number of categories")] = None,
) -> None:
    """Write the synthetic log (interactions.parquet) and its ground truth (planted groups, affinities)."""
    from coea.data.synthetic import generate_synthetic
    from coea.utils import atomic_path

    cfg = _load_config(config)
    scfg = _overrides(cfg.synthetic, seed=seed, n_users=users, n_categories=categories)
    data = generate_synthetic(scfg)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "interactions.parquet") as tmp:
        data.interactions.to_parquet(tmp, index=False)
    written = [out / "interactions.parquet", *data.write_ground_truth(out)]
    typer.echo("\n".join(str(p) for p in written))


def _split_config(base: SplitConfig, n_future, n_short, min_history, min_gap) -> SplitConfig:
    return _overrides(base, n_future=n_future, n_short=n_short, min_history=min_history, min_gap=min_gap)


NFutureOpt = Annotated[int | None, typer.Option(help="held-out last events per user (default 10)")]
NShortOpt = Annotated[int | None, typer.Option(help="history events forming the short-term set (default 10)")]
MinHistOpt = Annotated[int | None, typer.Option(help="fewer history events = cold-start (default 5)")]
MinGapOpt = Annotated[int | None, typer.Option(help="seconds between history and future (default 0)")]


RunOpt = Annotated[Path, typer.Option("--run", help="a run folder (data/, dsie/, llm/, pco/): the --out of "
                                                   "`coea group` or `coea evaluate`, or a `coea run` directory")]


def _layout(run: Path, *parts: str):
    from coea.layout import RunLayout

    layout = RunLayout(run)
    for part in parts:
        if not getattr(layout, part).is_dir():
            raise CoeaInputError(f"no {part}/ directory", source=run, option="--run",
                                 fix="pass a run folder written by `coea group`/`coea evaluate`/`coea run`, or run "
                                     "the stage that writes it first")
    return layout


def _from_run_config(config: Path | None, from_run: Path | None) -> RunConfig:
    """``--config``; without it, the config a ``--from-run`` folder was made with (its config.json)."""
    if config is None and from_run is not None and (from_run / "config.json").is_file():
        return _load_config(from_run / "config.json")
    return _load_config(config)


@app.command("evaluate")
def evaluate_cmd(
    out: Annotated[Path, typer.Option("--out", help="output directory")],
    data: DataOpt = None, config: ConfigOpt = None,
    methods: Annotated[str | None, typer.Option(help="comma-separated, e.g. pop,pop+x,markov")] = None,
    k: Annotated[str | None, typer.Option("--k", help="comma-separated cut-offs, e.g. 5,10")] = None,
    n_future: NFutureOpt = None, n_short: NShortOpt = None, min_history: MinHistOpt = None,
    min_gap: MinGapOpt = None, category_level: LevelOpt = None, seed: Annotated[int | None, typer.Option()] = None,
    user_col: ColOpt = None, item_col: ColOpt = None, category_col: ColOpt = None, timestamp_col: ColOpt = None,
    from_run: Annotated[Path | None, typer.Option("--from-run", help="reuse the prepared data (data/), DSIE "
                                                                     "(dsie/), SFT models (llm/) and PCO rounds "
                                                                     "(pco/) of an earlier run, and its config.json "
                                                                     "unless --config is given")] = None,
    device: DeviceOpt = None,
) -> None:
    """Score methods on each user's held-out future. Without --from-run, first trains what the methods need
    (DSIE, SFT, PCO: the training flow) into OUT; writes metrics.json/.md and a plot."""
    from coea.flow import Step, run_flow
    from coea.layout import RunLayout
    from coea.stages import run_evaluate_stage, run_prepare_data

    cfg = _from_run_config(config, from_run)
    cfg = replace(
        cfg,
        data=_data_config(cfg.data, data, category_level, user_col, item_col, category_col, timestamp_col),
        split=_split_config(cfg.split, n_future, n_short, min_history, min_gap),
        eval=_overrides(cfg.eval, methods=_csv(methods), ks=_ints(k, "--k"), seed=seed),
    )
    cfg = _overrides(cfg, device=device)
    if from_run is None:
        evaluation = run_flow(cfg, RunLayout(out)).results[Step.EVALUATE]
    else:
        run = _layout(from_run)
        data_dir = run.data
        if data is not None or not data_dir.is_dir():
            data_dir = run_prepare_data(cfg, RunLayout(out).data).data_dir
        evaluation = run_evaluate_stage(cfg, data_dir, out, run.artifacts())
    typer.echo(evaluation.table)
    typer.echo(f"wrote {', '.join(str(p) for p in evaluation.paths.values())}")


@app.command("group")
def group_cmd(
    out: Annotated[Path, typer.Option("--out", help="run folder: writes data/ and dsie/ in it")],
    data: DataOpt = None, config: ConfigOpt = None, category_level: LevelOpt = None,
    min_history: MinHistOpt = None, n_short: NShortOpt = None, device: DeviceOpt = None,
) -> None:
    """DSIE: encoder -> RQ-VAE CSIDs -> groups, profiles and group_report.json, fitted on histories."""
    from coea.evaluation.registry import Need
    from coea.flow import Step, run_flow
    from coea.layout import RunLayout

    cfg = _load_config(config)
    cfg = replace(cfg, data=_overrides(cfg.data, spec=data, category_level=category_level),
                  split=_overrides(cfg.split, min_history=min_history, n_short=n_short))
    cfg = _overrides(cfg, device=device)
    result = run_flow(cfg, RunLayout(out), needs=frozenset({Need.DSIE}), evaluate=False).results[Step.DSIE]
    typer.echo(json.dumps(result.summary.as_dict(), indent=2))
    for name, path in result.paths.items():
        typer.echo(f"  {name:<16} {path}")


@app.command("train-llms")
def train_llms_cmd(run: RunOpt, config: ConfigOpt = None, device: DeviceOpt = None) -> None:
    """SFT of the Novelty and Relevance LLMs on history-only examples of RUN's data with RUN's groups; writes
    RUN/llm/ (both models with their configs, sft_metrics_<model>.json)."""
    from coea.stages import run_sft_stage

    layout = _layout(run, "data", "dsie")
    cfg = _overrides(_load_config(config), device=device)
    result = run_sft_stage(cfg, layout.data, layout.dsie, layout.llm)
    typer.echo(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "losses"} for k, v in result.sft.items()},
                          indent=2))
    for name, path in result.paths.items():
        typer.echo(f"  {name:<12} {path}")


@app.command("pco")
def pco_cmd(
    run: RunOpt, config: ConfigOpt = None, device: DeviceOpt = None,
    rounds: Annotated[int | None, typer.Option(help="PCO rounds (default: the config's pco.rounds)")] = None,
    alpha: Annotated[float | None, typer.Option(help="KL weight (default: the config's pco.dpo.alpha)")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue RUN/pco/ after its last complete round")] = False,
) -> None:
    """PCO: rounds of N-LLM sampling, R-LLM scoring, DPO+KL and R-LLM refresh from RUN's SFT models; per-round
    metrics on the split; checkpoints and pco_metrics.json/.png in RUN/pco/."""
    from coea.stages import run_pco_stage

    layout = _layout(run, "data", "dsie", "llm")
    cfg = _overrides(_load_config(config), device=device)
    cfg = replace(cfg, pco=_overrides(cfg.pco, rounds=rounds))
    if alpha is not None:
        cfg.pco.dpo = _overrides(cfg.pco.dpo, alpha=alpha)
    result = run_pco_stage(cfg, layout.data, layout.dsie, [layout.llm], layout.pco, resume=resume)
    keys = ("round", "C-H", "NCP", "S-H", "x_S-H", "rscore", "kl_sft", "pairs", "dpo_margin", "round_s")
    for row in result.rounds:
        typer.echo("  ".join(f"{key} {row[key]:.4g}" if isinstance(row.get(key), float) else f"{key} {row.get(key)}"
                             for key in keys if key in row))
    typer.echo(f"wrote {layout.pco / 'pco_metrics.json'}, {layout.pco / 'pco_metrics.png'}")


@app.command("ablate")
def ablate_cmd(
    out: Annotated[Path, typer.Option("--out", help="output directory")],
    data: DataOpt = None, config: ConfigOpt = None,
    rounds: Annotated[int | None, typer.Option(help="PCO rounds per variant (default: the config's)")] = None,
    device: DeviceOpt = None,
) -> None:
    """coea, w/o R-LLM, w/o KL, w/o CSID and alpha in {0.1, 0.4, 0.6} over the same rounds: table and plot."""
    from coea.ablate import run_ablate

    cfg = _config_with_data(config, data)
    cfg = replace(_overrides(cfg, device=device), pco=_overrides(cfg.pco, rounds=rounds))
    result = run_ablate(cfg, out)
    typer.echo(result.paths["md"].read_text(encoding="utf-8"))
    typer.echo(f"wrote {', '.join(str(p) for p in result.paths.values())}")


@app.command("serve")
def serve_cmd(
    run: RunOpt,
    out: Annotated[Path, typer.Option("--out", help="Parquet file: user_id, rank, category, score")],
    config: ConfigOpt = None, device: DeviceOpt = None,
    method: Annotated[str, typer.Option(help="any evaluation method, optionally +x (default: the pipelines' "
                                             "served coea+x)")] = "coea+x",
    k: Annotated[int, typer.Option("--k", help="categories per user")] = 10,
) -> None:
    """Top-K categories for every user of RUN's data (every event is history) by METHOD, with RUN's models."""
    from coea.stages import run_recommend

    layout = _layout(run, "data")
    cfg = _overrides(_load_config(config), device=device)
    result = run_recommend(cfg, layout.data, layout.artifacts(), method, k, out)
    typer.echo(f"wrote {result.n_rows} rows for {result.n_users} users to {out}")


@app.command("recommend")
def recommend_cmd(
    store: Annotated[Path, typer.Option("--store", help="SQLite KV store (e.g. runs/<ts>/recs.sqlite)")],
    user: Annotated[str | None, typer.Option("--user", help="user id to look up")] = None,
    group: Annotated[str | None, typer.Option("--group", help="group id to look up instead")] = None,
) -> None:
    """Print a user's (or a group's) served top-K categories from the active version of a KV store."""
    from coea.store import KVStore

    if not store.is_file():
        raise CoeaInputError("store not found", source=store, fix="pass the recs.sqlite written by `coea run`")
    if (user is None) == (group is None):
        raise CoeaInputError("give exactly one of --user and --group", option="--user/--group")
    with KVStore(store) as kv:
        recs = kv.get_user(user) if user is not None else kv.get_group(group)
        version = kv.active_version()
    if not recs:
        key = f"user {user!r}" if user is not None else f"group {group!r}"
        raise CoeaInputError(f"{key} has no recommendations in version {version}", source=store,
                             fix="check the id (ids are strings, e.g. '42' for MovieLens)")
    typer.echo(json.dumps({"version": version, "recommendations": [
        {"rank": r.rank, "category": r.category, "score": r.score} for r in recs]}, indent=2))


@app.command("run")
def run_cmd(
    data: DataOpt = None, config: ConfigOpt = None,
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="parent of runs/<timestamp>/")] = Path("runs"),
) -> None:
    """The main job, as the coea_training pipeline run by kfp.local: data -> DSIE groups -> SFT of both LLMs
    -> evaluation -> top-K categories to the KV store, under runs/<timestamp>/."""
    from pipelines.local import run_training_locally

    cfg = _config_with_data(config, data)
    out = runs_dir / datetime.now().strftime("%Y%m%d-%H%M%S")
    paths = run_training_locally(cfg, out)
    typer.echo(paths["metrics.md"].read_text())
    typer.echo(f"run directory: {out}  (pipeline artifacts under {out / 'kfp'}, state under {out / 'state'})")
    for name, path in paths.items():
        typer.echo(f"  {name:<24} {path}")
    typer.echo(f"report: {paths['report']}")


@app.command("report")
def report_cmd(
    run_dir: Annotated[Path, typer.Option("--run-dir", help="a run directory, runs/<timestamp>/")],
    out: Annotated[Path | None, typer.Option("--out", help="output file (default RUN_DIR/report.html)")] = None,
) -> None:
    """(Re)render a run's self-contained HTML report: metrics, plots, DSIE groups, drift, PCO rounds."""
    from coea.report_html import render_report

    if not run_dir.is_dir():
        raise CoeaInputError("run directory not found", source=run_dir, fix="pass a runs/<timestamp>/ directory")
    typer.echo(f"report: {render_report(run_dir, out)}")


@app.command("simulate")
def simulate_cmd(
    data: DataOpt = None, config: ConfigOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="output directory, without a state yet (default "
                                                           "runs/simulate-<timestamp>/)")] = None,
    periods: Annotated[int, typer.Option("--periods", help="time periods (equal event counts); period 0 seeds "
                                                           "the state, each later one is a recurring run")] = 4,
    shift_period: Annotated[int | None, typer.Option("--shift-period", help="synthetic only: inject a lasting "
                                                                          "interest shift from this period on")] = None,
    drift_threshold: Annotated[float, typer.Option("--drift-threshold", help="regroup when drift share >= this")]
    = 0.5,
    methods: Annotated[str | None, typer.Option(help="evaluated methods, comma-separated (default: the config's "
                                                     "when it names them, else pop,markov+x,group_pop_novel)")] = None,
    k: Annotated[int, typer.Option("--k", help="categories served per user")] = 10,
) -> None:
    """Run the coea_recurring pipeline (kfp.local) period after period over the data's time periods; print per
    period the drift share, whether regrouping fired, and the served method's metrics."""
    from coea.config import EvalConfig
    from coea.data.loaders import parse_spec
    from pipelines.simulate import DEFAULT_METHODS, check_periods, run_simulate

    check_periods(periods)
    cfg = _config_with_data(config, data)
    if shift_period is not None:
        if parse_spec(cfg.data.spec)[0] != "synthetic":
            raise CoeaInputError("--shift-period works on synthetic data only", option="--shift-period",
                                 fix="drop it, or use --data synthetic")
        cfg = replace(cfg, synthetic=_overrides(cfg.synthetic, shift_period=shift_period, shift_periods=periods))
    default_methods = cfg.eval.methods == EvalConfig().methods  # the LLM methods would train every period
    cfg = replace(cfg, eval=_overrides(cfg.eval, methods=_csv(methods) or
                                       (list(DEFAULT_METHODS) if default_methods else None)))
    out = out or Path("runs") / datetime.now().strftime("simulate-%Y%m%d-%H%M%S")
    result = run_simulate(cfg, out, periods, drift_threshold=drift_threshold, rec_k=k)
    typer.echo(result.table())
    typer.echo(f"regrouping fired in period(s): {', '.join(map(str, result.regrouped_periods)) or 'none'}")
    for name, path in result.paths.items():
        typer.echo(f"  {name:<6} {path}")


SettingsOpt = Annotated[Path | None, typer.Option("--settings", help="deployment settings: a flat pipeline.yaml "
                                                                     "such as k8s/base/pipeline.yaml")]


def _deployment_settings(path: Path | None):
    from components.settings import DeploymentSettings

    return DeploymentSettings() if path is None else DeploymentSettings.from_yaml(path)


@app.command("compile")
def compile_cmd(
    out: Annotated[Path, typer.Option("--out", help="directory for the compiled pipeline YAML")] = Path("build"),
    settings: SettingsOpt = None,
) -> None:
    """Compile the KFP v2 pipelines coea_training and coea_recurring to OUT/<name>.yaml."""
    from pipelines.compile import compile_pipelines

    for name, path in compile_pipelines(out, _deployment_settings(settings)).items():
        typer.echo(f"{name}: {path}")


@app.command("schedule")
def schedule_cmd(
    host: Annotated[str | None, typer.Option(help="KFP API endpoint, e.g. https://kfp.example.com")] = None,
    cron: Annotated[str | None, typer.Option(help='6 fields, seconds first (default: the settings\' cron, '
                                                  '"0 0 3 * * *" = 03:00 daily)')] = None,
    state_uri: Annotated[str | None, typer.Option("--state-uri", help="gs://BUCKET/PREFIX or a directory on "
                                                                     "the cache volume")] = None,
    settings: SettingsOpt = None, config: ConfigOpt = None,
    out: Annotated[Path, typer.Option("--out", help="where the pipeline is compiled")] = Path("build"),
    experiment: Annotated[str | None, typer.Option(help="KFP experiment (default: the settings')")] = None,
    job_name: Annotated[str, typer.Option("--job-name")] = "coea-recurring",
    service_account: Annotated[str | None, typer.Option("--service-account")] = None,
    namespace: Annotated[str | None, typer.Option(help="KFP namespace (multi-user Kubeflow)")] = None,
    drift_threshold: Annotated[float, typer.Option("--drift-threshold", help="regroup when drift share >= this")]
    = 0.5,
    gcs_export_uri: Annotated[str, typer.Option("--gcs-export-uri", help="also export recommendations here")] = "",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the request as JSON; contact no host")] = False,
) -> None:
    """Compile coea_recurring and create a KFP recurring run of it (kfp.Client.create_recurring_run)."""
    from coea.stages import pipeline_arguments
    from pipelines.compile import compile_pipelines
    from pipelines.definitions import RECURRING
    from pipelines.schedule import RecurringRunRequest, create_recurring_run, validate_cron, validate_state_uri

    dep = _deployment_settings(settings)
    cron_expression = validate_cron(cron or dep.cron)
    state = validate_state_uri(state_uri or dep.state_uri)
    if not 0.0 < drift_threshold <= 1.0:
        raise CoeaInputError(f"drift threshold must be in (0, 1], got {drift_threshold}", option="--drift-threshold",
                             fix="e.g. 0.5: regroup when half of the behaviour features drift")
    if not dry_run and not host:
        raise CoeaInputError("--host is required", option="--host", fix="pass the KFP API URL, or use --dry-run")
    params = {**pipeline_arguments(_load_config(config)), "state_uri": state, "drift_threshold": drift_threshold,
              "gcs_export_uri": gcs_export_uri}
    package = compile_pipelines(out, dep)[RECURRING]
    request = RecurringRunRequest(host, experiment or dep.experiment, namespace or dep.namespace or None, job_name,
                                  cron_expression, str(package), params, service_account or dep.service_account)
    if dry_run:
        typer.echo(json.dumps({"dry_run": True, **request.to_dict()}, indent=2))
        return
    run_id = create_recurring_run(request)
    typer.echo(f"recurring run {run_id} created on {host}: {job_name}, cron {cron_expression!r}")


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _ints(value: str | None, option: str) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError as err:
        raise CoeaInputError(f"expected comma-separated integers, got {value!r}", column=option,
                             fix="e.g. --k 5,10") from err


def _torch_threads(value: str | None) -> None:
    """``COEA_TORCH_THREADS=N`` pins torch's intra-op threads (oversubscribed CPUs are many times slower)."""
    if not value:
        return
    if not value.isdigit() or int(value) < 1:
        raise SystemExit(f"error: COEA_TORCH_THREADS must be a positive integer, got {value!r}")
    import torch

    os.environ["OMP_NUM_THREADS"] = value  # pipeline steps run by kfp.local are subprocesses: they inherit it
    torch.set_num_threads(int(value))


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; turn input errors into one line on stderr and exit code 2."""
    setup_logging()
    _torch_threads(os.environ.get("COEA_TORCH_THREADS"))
    try:
        app(args=argv, prog_name="coea")
    except CoeaInputError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
