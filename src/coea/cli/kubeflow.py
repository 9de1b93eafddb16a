"""The commands that run or ship the Kubeflow pipelines (top-level ``pipelines``/``components``, imported lazily
inside each command: the library never imports them)."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from coea.cli.common import (
    METHOD_NAMES,
    ColOpt,
    ConfigOpt,
    DataOpt,
    DeviceOpt,
    LevelOpt,
    app,
    check_writable_dir,
    config_with_data,
    csv,
    interrupt_notes,
    load_config,
    overrides,
    with_device,
)
from coea.cli.outputs import output_folder, run_summary
from coea.config import SERVED_METHOD
from coea.errors import CoeaInputError

VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="also show every pipeline step's log (always "
                                                                    "written to RUN/kfp/steps.log)")]


@app.command("run")
def run_cmd(
    data: DataOpt = None, config: ConfigOpt = None, category_level: LevelOpt = None,
    user_col: ColOpt = None, item_col: ColOpt = None, category_col: ColOpt = None, timestamp_col: ColOpt = None,
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="parent of runs/<timestamp>/")] = Path("runs"),
    device: DeviceOpt = None, verbose: VerboseOpt = False,
    pipeline_root: Annotated[str | None, typer.Option("--pipeline-root", help="local directory for kfp.local's "
                                                                             "artifacts (default RUN/kfp)")] = None,
) -> None:
    """The main job, as the coea_training pipeline run by kfp.local: data -> DSIE groups -> SFT of both LLMs
    -> PCO rounds -> evaluation -> top-K categories (coea_seq+x) to the KV store, under runs/<timestamp>/. Prints
    one line per pipeline step, the metrics table and where the outputs are."""
    from pipelines.console import STEPS_LOG
    from pipelines.local import run_training_locally

    if pipeline_root is not None and "://" in str(pipeline_root):
        raise CoeaInputError(f"kfp.local writes artifacts to a local directory, not {pipeline_root}",
                             option="--pipeline-root", fix="pass a directory; gs:// roots are for compile/schedule")
    check_writable_dir(runs_dir, "--runs-dir")
    if pipeline_root is not None:
        check_writable_dir(Path(pipeline_root), "--pipeline-root")
    cfg = with_device(config_with_data(config, data, category_level, user_col, item_col, category_col,
                                       timestamp_col), device)
    check_local_data(cfg.data.spec)
    out = runs_dir / datetime.now().strftime("%Y%m%d-%H%M%S")
    kfp_root = Path(pipeline_root) if pipeline_root else out / "kfp"
    typer.echo(f"coea_training (kfp.local) in {out}; step logs: {out / 'kfp' / STEPS_LOG}"
               + ("" if verbose else " (-v shows them here)"))
    start = time.perf_counter()
    try:
        paths = run_training_locally(cfg, out, pipeline_root=kfp_root, verbose=verbose)
    except KeyboardInterrupt as err:  # its notes say what the run left: the CLI's "interrupted" line shows them
        interrupt_notes.extend(getattr(err, "__notes__", ()))
        raise
    typer.echo(run_summary(cfg, out, paths, seconds=time.perf_counter() - start))


def schedule_cron(cron: str | None, settings_cron: str, settings: Path | None) -> str:
    """``--cron``, else the settings' cron, validated; a bad one from the settings file is named as that file's
    ``cron``, not as the option (which was not given)."""
    from pipelines.schedule import validate_cron

    try:
        return validate_cron(cron or settings_cron)
    except CoeaInputError as err:
        if cron or settings is None:
            raise
        raise err.replace(source=str(settings), option="cron") from err


def check_local_data(spec: str) -> None:
    """The local file or folder of a data spec exists before a pipeline starts (else its data step fails after the
    start-up, leaving a run folder), with the readers' errors; gs:// and synthetic data: the data step only."""
    from coea.data.loaders import movielens_folder, parse_spec
    from coea.data.movielens import find_ratings_file
    from coea.data.tabular import file_not_found

    kind, location = parse_spec(spec)
    if not isinstance(location, Path):
        return
    if kind == "movielens":
        find_ratings_file(movielens_folder(location))
    elif not location.exists():
        raise file_not_found(location, kind)


@app.command("simulate")
def simulate_cmd(
    data: DataOpt = None, config: ConfigOpt = None, category_level: LevelOpt = None,
    user_col: ColOpt = None, item_col: ColOpt = None, category_col: ColOpt = None, timestamp_col: ColOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="output directory, without a state yet (default "
                                                           "runs/simulate-<timestamp>/)")] = None,
    periods: Annotated[int, typer.Option("--periods", help="time periods (equal event counts); period 0 seeds "
                                                           "the state, each later one is a recurring run")] = 4,
    shift_period: Annotated[int | None, typer.Option("--shift-period", help="synthetic only: inject a lasting "
                                                                          "interest shift from this period on")] = None,
    drift_threshold: Annotated[float, typer.Option("--drift-threshold", help="regroup when drift share >= this")]
    = 0.5,
    methods: Annotated[str | None, typer.Option(help=f"evaluated methods, comma-separated: {METHOD_NAMES}, each "
                                                     "optionally +x (default: the config's eval.methods when it sets "
                                                     "them, else pop,markov+x,group_pop_novel and the served "
                                                     f"{SERVED_METHOD})")] = None,
    k: Annotated[int, typer.Option("--k", help="categories served per user")] = 10,
    device: DeviceOpt = None,
) -> None:
    """Run the coea_recurring pipeline (kfp.local) period after period over the data's time periods; print per
    period the drift share, whether regrouping fired, and the served method's metrics."""
    from coea.config import EvalConfig
    from pipelines.simulate import DEFAULT_METHODS, check_periods, run_simulate

    check_periods(periods)
    out = out or Path("runs") / datetime.now().strftime("simulate-%Y%m%d-%H%M%S")
    check_writable_dir(out, own=True)  # before the config and the data are read
    cfg = with_device(config_with_data(config, data, category_level, user_col, item_col, category_col,
                                       timestamp_col), device)
    if shift_period is not None:
        cfg = with_shift(cfg, shift_period, periods)
    default_methods = cfg.eval.methods == EvalConfig().methods  # the LLM methods would train every period
    cfg = replace(cfg, eval=overrides(cfg.eval, methods=csv(methods) or
                                       (list(DEFAULT_METHODS) if default_methods else None)))
    with output_folder(out, kept=out / "state"):  # refused before period 0 finished: the folder it began goes
        result = run_simulate(cfg, out, periods, drift_threshold=drift_threshold, rec_k=k)
    typer.echo(result.table())
    typer.echo(f"regrouping fired in period(s): {', '.join(map(str, result.regrouped_periods)) or 'none'}")
    for name, path in result.paths.items():
        typer.echo(f"  {name:<6} {path}")


def with_shift(cfg, shift_period: int, periods: int):
    """``cfg`` with simulate's interest shift from period ``shift_period`` of ``periods`` on (synthetic data only)."""
    from coea.data.loaders import parse_spec

    if parse_spec(cfg.data.spec)[0] != "synthetic":
        raise CoeaInputError("--shift-period works on synthetic data only", option="--shift-period",
                             fix="drop it, or use --data synthetic")
    if not 1 <= shift_period < periods:
        more = f", or --periods {shift_period + 1} or more" if shift_period >= periods else ""
        raise CoeaInputError(f"must be in 1 .. {periods - 1} (--periods {periods} minus 1), got {shift_period}",
                             option="--shift-period", fix=f"e.g. --shift-period {max(1, periods // 2)}{more}")
    return replace(cfg, synthetic=overrides(cfg.synthetic, {"shift_periods": "--periods"},
                                            shift_period=shift_period, shift_periods=periods))


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
    from pipelines.schedule import validate_state_uri

    dep = deployment_settings(settings, image=image, gpu_image=gpu_image, pipeline_root=pipeline_root)
    check_writable_dir(out)
    try:  # a placeholder default compiles (a run can pass its own state_uri); upload and schedule refuse it
        validate_state_uri(dep.state_uri, dep.cache_mount_path)
    except CoeaInputError as err:  # compile has no --state-uri: the value is the settings file's
        err = err.replace(problem=f"state_uri: {err.problem}", source=settings, option=None)
        typer.echo(f"warning: the compiled state_uri default is not usable: {err}; coea upload and coea schedule "
                   "refuse it: pass --state-uri to them, or state_uri when you start a run", err=True)
    for name, path in compile_pipelines(out, dep).items():
        typer.echo(f"{name}: {path}")
    echo_deployment(dep)


HostOpt = Annotated[str | None, typer.Option("--host", envvar="KF_PIPELINES_ENDPOINT", show_envvar=True,
                                              help="KFP API endpoint, e.g. https://kfp.example.com or "
                                                   "https://HOST/pipeline (Kubeflow)")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="KF_PIPELINES_TOKEN", show_envvar=True,
                                               help="bearer token sent to the KFP API")]
IapOpt = Annotated[str | None, typer.Option("--iap-client-id", envvar="KF_PIPELINES_IAP_OAUTH2_CLIENT_ID",
                                             show_envvar=True, help="OAuth client id of an IAP-protected endpoint "
                                                                    "(kfp gets the ID token from Google credentials)")]
InClusterOpt = Annotated[bool, typer.Option("--in-cluster", help="in a pod: authenticate with its projected "
                                                                  "service-account token (KF_PIPELINES_SA_TOKEN_PATH); "
                                                                  "default endpoint: KFP's in-cluster service")]
NamespaceOpt = Annotated[str | None, typer.Option("--namespace", help="profile namespace on multi-user Kubeflow "
                                                                      "(default: the settings')")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="print each API call (method, path, body summary); "
                                                           "send nothing (lookups are shown finding nothing)")]
VersionNameOpt = Annotated[str | None, typer.Option("--version-name", help="name of the pipeline version (default: "
                                                                           "VERSION-GITSHA-SPECHASH)")]
OutOpt = Annotated[Path, typer.Option("--out", help="where the pipelines are compiled")]
StateUriOpt = Annotated[str | None, typer.Option("--state-uri", help="the state_uri default (gs://BUCKET/PREFIX or "
                                                                     "a directory under the cache volume's mount "
                                                                     "/cache, which the state steps then mount); "
                                                                     "default: the settings'")]


NAMESPACE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # a DNS-1123 label


def kfp_api(host: str | None, token: str | None, iap_client_id: str | None, in_cluster: bool,
            namespace: str | None, dry_run: bool):
    """The KFP API of these options (``pipelines.kfp_api.KfpApi``); without ``dry_run`` a missing endpoint or a
    failed connection is a ``CoeaInputError``."""
    from pipelines.kfp_api import Connection, KfpApi

    if namespace and not NAMESPACE_RE.match(namespace):
        raise CoeaInputError(f"namespace {namespace!r} is not a Kubernetes namespace name", option="--namespace",
                             fix="lower-case letters, digits and '-', at most 63, e.g. kubeflow-user-example-com")
    conn = Connection(host or None, token or None, iap_client_id or None, in_cluster, namespace or None)
    if dry_run:
        return KfpApi(None, conn.endpoint)
    return KfpApi(conn.client(), conn.endpoint)


def echo_deployment(dep, api=None) -> None:
    """One WARNING line on stderr per setting a cluster cannot use (an image without registry, no pipeline root),
    printed once the command succeeded so that an error stays one line; with ``api`` (a dry run) then what the
    package uses and one line per API call."""
    from pipelines.compile import deployment_warnings
    from pipelines.upload import dry_run_report

    for line in deployment_warnings(dep):
        typer.echo(line, err=True)
    for line in dry_run_report(api, dep) if api is not None else []:
        typer.echo(line)


@app.command("upload")
def upload_cmd(
    host: HostOpt = None, token: TokenOpt = None, iap_client_id: IapOpt = None, in_cluster: InClusterOpt = False,
    namespace: NamespaceOpt = None, settings: SettingsOpt = None, image: ImageOpt = None,
    gpu_image: GpuImageOpt = None, pipeline_root: PipelineRootOpt = None, state_uri: StateUriOpt = None,
    out: OutOpt = Path("build"), version_name: VersionNameOpt = None, dry_run: DryRunOpt = False,
) -> None:
    """Compile coea_training and coea_recurring and upload each as a new version of its KFP pipeline (the
    pipeline is registered on first upload); uploading the same package again is a no-op."""
    from pipelines.compile import compile_pipelines
    from pipelines.definitions import PIPELINE_DESCRIPTIONS
    from pipelines.schedule import validate_state_uri
    from pipelines.upload import ensure_version

    dep = deployment_settings(settings, image=image, gpu_image=gpu_image, pipeline_root=pipeline_root)
    dep = replace(dep, state_uri=validate_state_uri(state_uri or dep.state_uri, dep.cache_mount_path))
    api = kfp_api(host, token, iap_client_id, in_cluster, namespace or dep.namespace, dry_run)
    versions = [ensure_version(api, package, name, PIPELINE_DESCRIPTIONS[name], namespace=namespace or dep.namespace
                               or None, name=version_name) for name, package in compile_pipelines(out, dep).items()]
    echo_deployment(dep, api if dry_run else None)
    if dry_run:
        return
    for version in versions:
        typer.echo(version.describe())


def recurring_parameters(config: Path | None, state: str, drift_threshold: float, gcs_export_uri: str,
                         data: str | None = None, dep=None) -> dict:
    """The recurring pipeline's arguments: the run config's sections (``data``: ``--data``, over the config's data
    spec), the state URI, threshold and export URI. A schedule whose data is the synthetic generator's (the config
    default) is refused unless ``--data synthetic`` asks for it: every run would train on generated data and
    overwrite the state; with the deployment settings ``dep``, so is a log no pod can read
    (:func:`pipelines.schedule.check_pod_readable`)."""
    from coea.stages import pipeline_arguments

    if not 0.0 < drift_threshold <= 1.0:
        raise CoeaInputError(f"drift threshold must be in (0, 1], got {drift_threshold}", option="--drift-threshold",
                             fix="e.g. 0.5: regroup when half of the behaviour features drift")
    cfg = load_config(config)
    cfg = replace(cfg, data=overrides(cfg.data, {"spec": "--data"}, spec=data))
    if cfg.data.spec.strip() in ("", "synthetic") and data != "synthetic":
        raise CoeaInputError(f"{'--config names no data.spec' if config else 'no --config or --data'}: every "
                             f"scheduled run would train on generated synthetic data and overwrite the state at "
                             f"{state}", option="--data",
                             fix="name the log: --data parquet:gs://BUCKET/events/ (or data.spec in --config); "
                                 "--data synthetic for a demo schedule")
    if dep is not None:
        from pipelines.schedule import check_pod_readable

        check_pod_readable(cfg.data.spec, dep)
    return {**pipeline_arguments(cfg), "state_uri": state, "drift_threshold": drift_threshold,
            "gcs_export_uri": gcs_export_uri}


def check_schedule_options(cron: str | None, job_name: str, gcs_export_uri: str, experiment: str | None = None) -> None:
    """``schedule``'s options that a dry run would otherwise send as they are: an empty ``--cron`` (silently the
    settings' cron), ``--experiment`` or ``--job-name``, and a ``--gcs-export-uri`` that every scheduled run would fail
    to export to."""
    if cron is not None and not cron.strip():
        raise CoeaInputError("empty cron", option="--cron", fix="leave --cron out for the settings' cron, or pass "
                                                                "6 fields such as '0 0 3 * * *'")
    if experiment is not None and not experiment.strip():
        raise CoeaInputError("empty experiment name", option="--experiment",
                             fix="leave --experiment out for the settings' experiment (coea), or name one")
    if not job_name.strip():
        raise CoeaInputError("empty job name", option="--job-name", fix="leave it out for coea-recurring")
    if gcs_export_uri:
        from coea.store.gcs import parse_gcs_uri

        try:
            parse_gcs_uri(gcs_export_uri)
        except CoeaInputError as err:
            raise err.replace(source=None, option="--gcs-export-uri") from err


@app.command("schedule")
def schedule_cmd(
    host: HostOpt = None, token: TokenOpt = None, iap_client_id: IapOpt = None, in_cluster: InClusterOpt = False,
    namespace: NamespaceOpt = None,
    cron: Annotated[str | None, typer.Option(help='6 fields, seconds first (default: the settings\' cron, '
                                                  '"0 0 3 * * *" = 03:00 daily)')] = None,
    state_uri: StateUriOpt = None, settings: SettingsOpt = None, config: ConfigOpt = None, image: ImageOpt = None,
    gpu_image: GpuImageOpt = None, pipeline_root: PipelineRootOpt = None, out: OutOpt = Path("build"),
    experiment: Annotated[str | None, typer.Option(help="KFP experiment (default: the settings')")] = None,
    job_name: Annotated[str, typer.Option("--job-name", help="the recurring run's name: scheduling the same name "
                                                             "again replaces it")] = "coea-recurring",
    service_account: Annotated[str | None, typer.Option("--service-account", help="Kubernetes service account the "
                                                                           "recurring runs' pods run as (default: "
                                                                           "the settings', coea-pipeline-runner)")]
    = None,
    data: Annotated[str | None, typer.Option("--data", help="the log every scheduled run reads (over --config's "
                                                           "data.spec), e.g. parquet:gs://BUCKET/events/; "
                                                           "required unless the config names one; synthetic only "
                                                           "for a demo schedule")] = None,
    drift_threshold: Annotated[float, typer.Option("--drift-threshold", help="regroup when drift share >= this")]
    = 0.5,
    gcs_export_uri: Annotated[str, typer.Option("--gcs-export-uri", help="also export recommendations here")] = "",
    version_name: VersionNameOpt = None, dry_run: DryRunOpt = False,
) -> None:
    """Upload coea_recurring as a pipeline version (a no-op when that version exists) and point the recurring run
    JOB_NAME at it: created, or replaced when one of that name exists (never duplicated)."""
    from pipelines.compile import compile_pipelines
    from pipelines.definitions import PIPELINE_DESCRIPTIONS, RECURRING
    from pipelines.schedule import RecurringRunRequest, schedule_version, validate_state_uri
    from pipelines.upload import ensure_version

    dep = deployment_settings(settings, image=image, gpu_image=gpu_image, pipeline_root=pipeline_root)
    check_schedule_options(cron, job_name, gcs_export_uri, experiment)
    cron_expression = schedule_cron(cron, dep.cron, settings)
    dep = replace(dep, state_uri=validate_state_uri(state_uri or dep.state_uri, dep.cache_mount_path))
    params = recurring_parameters(config, dep.state_uri, drift_threshold, gcs_export_uri, data, dep)
    namespace = namespace or dep.namespace or None
    api = kfp_api(host, token, iap_client_id, in_cluster, namespace, dry_run)
    package = compile_pipelines(out, dep)[RECURRING]  # the state steps mount the volume iff the state is on it
    version = ensure_version(api, package, RECURRING, PIPELINE_DESCRIPTIONS[RECURRING], namespace=namespace,
                             name=version_name)
    request = RecurringRunRequest(experiment or dep.experiment, namespace, job_name, cron_expression, params,
                                  service_account or dep.service_account, pipeline_root=dep.pipeline_root or None)
    result = schedule_version(api, request, version)
    echo_deployment(dep, api if dry_run else None)
    if dry_run:
        return
    typer.echo(version.describe())
    replaced = f", replacing {', '.join(result.replaced)}" if result.replaced else ""
    typer.echo(f"recurring run {result.recurring_run_id} ({job_name}, cron {cron_expression!r}) runs version "
               f"{version.version_name} on {api.endpoint}{replaced}")
