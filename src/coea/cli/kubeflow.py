"""The commands that run or ship the Kubeflow pipelines (top-level ``pipelines``/``components``, imported lazily
inside each command: the library never imports them)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from coea.cli.common import (
    METHOD_NAMES,
    ConfigOpt,
    DataOpt,
    DeviceOpt,
    app,
    config_with_data,
    csv,
    load_config,
    overrides,
)
from coea.errors import CoeaInputError

VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="also show every pipeline step's log (always "
                                                                    "written to RUN/kfp/steps.log)")]


@app.command("run")
def run_cmd(
    data: DataOpt = None, config: ConfigOpt = None,
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="parent of runs/<timestamp>/")] = Path("runs"),
    device: DeviceOpt = None, verbose: VerboseOpt = False,
    pipeline_root: Annotated[str | None, typer.Option("--pipeline-root", help="local directory for kfp.local's "
                                                                             "artifacts (default RUN/kfp)")] = None,
) -> None:
    """The main job, as the coea_training pipeline run by kfp.local: data -> DSIE groups -> SFT of both LLMs
    -> PCO rounds -> evaluation -> top-K categories (coea+x) to the KV store, under runs/<timestamp>/. Prints
    one line per pipeline step, the metrics table and where the outputs are."""
    from pipelines.console import STEPS_LOG
    from pipelines.local import run_training_locally

    if pipeline_root is not None and "://" in str(pipeline_root):
        raise CoeaInputError(f"kfp.local writes artifacts to a local directory, not {pipeline_root}",
                             option="--pipeline-root", fix="pass a directory; gs:// roots are for compile/schedule")
    cfg = overrides(config_with_data(config, data), device=device)
    out = runs_dir / datetime.now().strftime("%Y%m%d-%H%M%S")
    kfp_root = Path(pipeline_root) if pipeline_root else out / "kfp"
    typer.echo(f"coea_training (kfp.local) in {out}; step logs: {out / 'kfp' / STEPS_LOG}"
               + ("" if verbose else " (-v shows them here)"))
    paths = run_training_locally(cfg, out, pipeline_root=kfp_root, verbose=verbose)
    typer.echo(run_summary(cfg, out, paths))


def run_summary(cfg, run_dir: Path, paths: dict[str, Path], served: str = "coea+x", rec_k: int = 10) -> str:
    """What `coea run` prints after its steps: the metrics table and where the outputs are (``paths`` as returned
    by ``run_training_locally``, which served ``served``'s top ``rec_k`` per user)."""
    from coea.evaluation.report import metrics_table

    metrics = json.loads(paths["metrics.json"].read_text(encoding="utf-8"))
    k = max(cfg.eval.ks)
    return "\n".join([
        "", metrics_table(metrics["methods"], cfg.eval.ks),
        f"run directory: {run_dir}  (data/, dsie/, llm/, pco/, state/; pipeline artifacts under kfp/)",
        f"metrics:       {paths['metrics.md']} (with paired CIs and cold-start users), metrics.json, "
        f"metrics_at_{k}.png",
        f"served:        {served}, top-{rec_k} per user -> {paths['kv_store']} "
        f"(coea recommend --store {paths['kv_store']} --user ID)",
        f"step logs:     {paths['steps_log']}",
        f"report:        {paths['report']}",
    ])


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
    methods: Annotated[str | None, typer.Option(help=f"evaluated methods, comma-separated: {METHOD_NAMES}, each "
                                                     "optionally +x (default: the config's when it names them, else "
                                                     "pop,markov+x,group_pop_novel)")] = None,
    k: Annotated[int, typer.Option("--k", help="categories served per user")] = 10,
    device: DeviceOpt = None,
) -> None:
    """Run the coea_recurring pipeline (kfp.local) period after period over the data's time periods; print per
    period the drift share, whether regrouping fired, and the served method's metrics."""
    from coea.config import EvalConfig
    from coea.data.loaders import parse_spec
    from pipelines.simulate import DEFAULT_METHODS, check_periods, run_simulate

    check_periods(periods)
    cfg = overrides(config_with_data(config, data), device=device)
    if shift_period is not None:
        if parse_spec(cfg.data.spec)[0] != "synthetic":
            raise CoeaInputError("--shift-period works on synthetic data only", option="--shift-period",
                                 fix="drop it, or use --data synthetic")
        cfg = replace(cfg, synthetic=overrides(cfg.synthetic, shift_period=shift_period, shift_periods=periods))
    default_methods = cfg.eval.methods == EvalConfig().methods  # the LLM methods would train every period
    cfg = replace(cfg, eval=overrides(cfg.eval, methods=csv(methods) or
                                       (list(DEFAULT_METHODS) if default_methods else None)))
    out = out or Path("runs") / datetime.now().strftime("simulate-%Y%m%d-%H%M%S")
    result = run_simulate(cfg, out, periods, drift_threshold=drift_threshold, rec_k=k)
    typer.echo(result.table())
    typer.echo(f"regrouping fired in period(s): {', '.join(map(str, result.regrouped_periods)) or 'none'}")
    for name, path in result.paths.items():
        typer.echo(f"  {name:<6} {path}")


SettingsOpt = Annotated[Path | None, typer.Option("--settings", help="deployment settings: a flat pipeline.yaml "
                                                                     "such as k8s/base/pipeline.yaml")]


ImageOpt = Annotated[str | None, typer.Option("--image", help="image of every step: REGISTRY/coea:TAG or "
                                                             "REGISTRY/coea@sha256:DIGEST (default: the settings')")]
GpuImageOpt = Annotated[str | None, typer.Option("--gpu-image", help="image of the GPU steps (dsie_group, sft_*, "
                                                                    "pco_loop); default: --image")]
PipelineRootOpt = Annotated[str | None, typer.Option("--pipeline-root", help="where KFP stores the runs' "
                                                                            "artifacts: gs://BUCKET/PREFIX")]


def deployment_settings(path: Path | None, *, image: str | None = None, gpu_image: str | None = None,
                        pipeline_root: str | None = None):
    """The settings file's (or the default) deployment settings with the command line's image(s) and pipeline
    root; a bad reference or root is a ``CoeaInputError`` naming the option."""
    from components.settings import DeploymentSettings, check_image, check_pipeline_root

    dep = DeploymentSettings() if path is None else DeploymentSettings.from_yaml(path)
    changes = {}
    if image is not None:
        changes["base_image"] = check_image(image, "--image")
        changes["gpu_image"] = ""  # the GPU steps follow --image unless --gpu-image is given
    if gpu_image is not None:
        changes["gpu_image"] = check_image(gpu_image, "--gpu-image")
    if pipeline_root is not None:
        changes["pipeline_root"] = check_pipeline_root(pipeline_root)
    return replace(dep, **changes)


@app.command("compile")
def compile_cmd(
    out: Annotated[Path, typer.Option("--out", help="directory for the compiled pipeline YAML")] = Path("build"),
    settings: SettingsOpt = None, image: ImageOpt = None, gpu_image: GpuImageOpt = None,
    pipeline_root: PipelineRootOpt = None,
) -> None:
    """Compile the KFP v2 pipelines coea_training and coea_recurring to OUT/<name>.yaml; --image/--gpu-image set
    every executor's image (tags or @sha256 digests), --pipeline-root their defaultPipelineRoot."""
    from pipelines.compile import compile_pipelines

    dep = deployment_settings(settings, image=image, gpu_image=gpu_image, pipeline_root=pipeline_root)
    for name, path in compile_pipelines(out, dep).items():
        typer.echo(f"{name}: {path}")


@app.command("schedule")
def schedule_cmd(
    host: Annotated[str | None, typer.Option(help="KFP API endpoint, e.g. https://kfp.example.com")] = None,
    cron: Annotated[str | None, typer.Option(help='6 fields, seconds first (default: the settings\' cron, '
                                                  '"0 0 3 * * *" = 03:00 daily)')] = None,
    state_uri: Annotated[str | None, typer.Option("--state-uri", help="gs://BUCKET/PREFIX or a directory on "
                                                                     "the cache volume")] = None,
    settings: SettingsOpt = None, config: ConfigOpt = None, image: ImageOpt = None, gpu_image: GpuImageOpt = None,
    pipeline_root: PipelineRootOpt = None,
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

    dep = deployment_settings(settings, image=image, gpu_image=gpu_image, pipeline_root=pipeline_root)
    cron_expression = validate_cron(cron or dep.cron)
    state = validate_state_uri(state_uri or dep.state_uri)
    if not 0.0 < drift_threshold <= 1.0:
        raise CoeaInputError(f"drift threshold must be in (0, 1], got {drift_threshold}", option="--drift-threshold",
                             fix="e.g. 0.5: regroup when half of the behaviour features drift")
    if not dry_run and not host:
        raise CoeaInputError("--host is required", option="--host", fix="pass the KFP API URL, or use --dry-run")
    params = {**pipeline_arguments(load_config(config)), "state_uri": state, "drift_threshold": drift_threshold,
              "gcs_export_uri": gcs_export_uri}
    package = compile_pipelines(out, dep)[RECURRING]
    request = RecurringRunRequest(host, experiment or dep.experiment, namespace or dep.namespace or None, job_name,
                                  cron_expression, str(package), params, service_account or dep.service_account,
                                  pipeline_root=dep.pipeline_root or None)
    if dry_run:
        typer.echo(json.dumps({"dry_run": True, **request.to_dict()}, indent=2))
        return
    run_id = create_recurring_run(request)
    typer.echo(f"recurring run {run_id} created on {host}: {job_name}, cron {cron_expression!r}")
