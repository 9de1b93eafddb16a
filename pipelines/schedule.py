"""Recurring runs of ``coea_recurring`` on a KFP host: cron check, state URI check, and the recurring run of a
pipeline version (:func:`schedule_version`: replaced, never duplicated, when scheduled again).

KFP's cron (robfig/cron) has six fields, seconds first: ``second minute hour day-of-month month day-of-week``;
``0 0 3 * * *`` is 03:00 every day. :func:`validate_cron` checks the shape and the ranges before anything is
sent, so a five-field Unix cron fails here with the fix instead of on the server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coea.errors import CoeaInputError

if TYPE_CHECKING:  # importing pipelines.upload would load kfp (its compiler)
    from components.settings import DeploymentSettings
    from pipelines.kfp_api import KfpApi
    from pipelines.upload import PipelineVersion

CRON_FIX = 'six fields, seconds first: "second minute hour day-of-month month day-of-week", e.g. "0 0 3 * * *"'
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
# name, lowest, highest, names (index = value - lowest)
CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("second", 0, 59, ()), ("minute", 0, 59, ()), ("hour", 0, 23, ()), ("day-of-month", 1, 31, ()),
    ("month", 1, 12, MONTHS), ("day-of-week", 0, 6, DAYS),
)
_TERM = re.compile(r"^(?P<range>\*|\?|[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)(?:/(?P<step>\d+))?$")


def _value(token: str, name: str, lo: int, hi: int, names: tuple[str, ...]) -> int:
    upper = token.upper()
    if upper in names:
        return names.index(upper) + lo
    if not token.isdigit() or not lo <= int(token) <= hi:
        allowed = f"{lo}-{hi}" + (f" or {names[0]}-{names[-1]}" if names else "")
        raise ValueError(f"{name} value {token!r} is outside {allowed}")
    return int(token)


def _check_field(text: str, name: str, lo: int, hi: int, names: tuple[str, ...]) -> None:
    for term in text.split(","):
        match = _TERM.match(term)
        if match is None:
            raise ValueError(f"{name} field {text!r}: cannot read {term!r}")
        if match["range"] == "?" and name not in ("day-of-month", "day-of-week"):
            raise ValueError(f"'?' is only allowed in day-of-month or day-of-week, not in {name}")
        if match["step"] is not None and int(match["step"]) < 1:
            raise ValueError(f"{name} field {text!r}: step must be >= 1")
        if match["range"] not in ("*", "?"):
            bounds = [_value(t, name, lo, hi, names) for t in match["range"].split("-")]
            if len(bounds) == 2 and bounds[0] > bounds[1]:
                raise ValueError(f"{name} range {match['range']!r} runs backwards")


def validate_cron(expression: str) -> str:
    """Return the normalised (single-spaced) expression, or raise ``CoeaInputError`` naming what is wrong."""
    fields = (expression or "").split()
    if len(fields) == 5:
        raise CoeaInputError(f"cron {expression!r} has 5 fields (Unix cron); KFP needs 6, seconds first",
                             option="--cron", fix=f'prepend the seconds: "0 {" ".join(fields)}"')
    if len(fields) != 6:
        raise CoeaInputError(f"cron {expression!r} has {len(fields)} fields, expected 6", option="--cron",
                             fix=CRON_FIX)
    for text, (name, lo, hi, names) in zip(fields, CRON_FIELDS, strict=True):
        try:
            _check_field(text, name, lo, hi, names)
        except ValueError as err:
            raise CoeaInputError(f"cron {expression!r}: {err}", option="--cron", fix=CRON_FIX) from err
    return " ".join(fields)


@dataclass
class RecurringRunRequest:
    """The recurring run of a pipeline version: ``kfp.Client.create_recurring_run``'s arguments."""

    experiment: str
    namespace: str | None
    job_name: str
    cron_expression: str
    params: dict[str, Any] = field(default_factory=dict)
    service_account: str | None = None
    max_concurrency: int = 1  # periods must not overlap: each run reads and replaces the state
    no_catchup: bool = True  # after a pause, run the latest period only
    enabled: bool = True
    pipeline_root: str | None = None  # the runs' artifact root (gs://...); None = the package's defaultPipelineRoot

    def create_kwargs(self, experiment_id: str, version: PipelineVersion) -> dict[str, Any]:
        """The keyword arguments of ``kfp.Client.create_recurring_run`` (kfp 2.17) for ``version``."""
        return {"experiment_id": experiment_id, "job_name": self.job_name, "cron_expression": self.cron_expression,
                "pipeline_id": version.pipeline_id, "version_id": version.version_id, "params": self.params,
                "service_account": self.service_account or None, "max_concurrency": self.max_concurrency,
                "no_catchup": self.no_catchup, "enabled": self.enabled, "pipeline_root": self.pipeline_root or None}

    def body(self, experiment_id: str, version: PipelineVersion) -> dict[str, Any]:
        """What the REST body carries (v2beta1 field names), long parameter values shortened: the dry run's line."""
        params = {k: (v if not isinstance(v, str) or len(v) <= 60 else v[:57] + "...") for k, v in self.params.items()}
        return {"display_name": self.job_name, "experiment_id": experiment_id,
                "mode": "ENABLE" if self.enabled else "DISABLE", "trigger": {"cron_schedule": {"cron":
                                                                                                self.cron_expression}},
                "max_concurrency": self.max_concurrency, "no_catchup": self.no_catchup,
                "service_account": self.service_account or "",
                "pipeline_version_reference": {"pipeline_id": version.pipeline_id,
                                               "pipeline_version_id": version.version_id},
                "runtime_config": {"pipeline_root": self.pipeline_root or "", "parameters": params}}


@dataclass(frozen=True)
class ScheduleResult:
    """The recurring run now active, the ones it replaced (same name, same experiment) and its experiment."""

    recurring_run_id: str
    replaced: tuple[str, ...]
    experiment_id: str


def schedule_version(api: KfpApi, request: RecurringRunRequest, version: PipelineVersion) -> ScheduleResult:
    """Point the recurring run ``request.job_name`` at ``version``: get or create the experiment, then replace
    every recurring run of that name in it (KFP's API has no update): disable the old ones, create the new one
    (on failure the old ones are enabled again), delete the old ones. Re-running never duplicates the schedule,
    and no two of its runs fire side by side."""
    experiment_id = api.experiment_id(request.experiment, request.namespace)
    old = api.recurring_runs(experiment_id, request.job_name)
    for run_id, enabled in old:
        if enabled:
            api.set_recurring_run_enabled(run_id, False)
    try:
        new = api.create_recurring_run(request.create_kwargs(experiment_id, version),
                                       request.body(experiment_id, version))
    except Exception:
        for run_id, enabled in old:
            if enabled:
                api.set_recurring_run_enabled(run_id, True)
        raise
    for run_id, _ in old:
        api.delete_recurring_run(run_id)
    return ScheduleResult(new, tuple(run_id for run_id, _ in old), experiment_id)


def validate_state_uri(uri: str, cache_mount_path: str = "/cache") -> str:
    """A state location a cluster can use: ``gs://bucket/prefix``, or an absolute path on the cache volume (under
    ``cache_mount_path``, which the state steps then mount). Any other local path would be written inside the
    step's container and lost with it, so it is refused."""
    from coea.store.gcs import parse_gcs_uri

    if uri.startswith("gs://"):
        try:
            parse_gcs_uri(uri)
        except CoeaInputError as err:  # it names no option ("uri: bad bucket name ..."): this one is --state-uri
            raise err.replace(source=None, option="--state-uri (or the settings' state_uri)") from err
        return uri
    if "://" in uri or not uri.startswith("/"):
        raise CoeaInputError(f"state URI {uri!r} is neither gs://... nor an absolute path", option="--state-uri",
                             fix="use gs://BUCKET/PREFIX or a directory on the cache volume such as /cache/coea-state")
    mount = cache_mount_path.rstrip("/")
    if uri.rstrip("/") != mount and not uri.startswith(mount + "/"):
        raise CoeaInputError(f"state URI {uri!r} is a local path outside the cache volume (mounted at {mount}): "
                             "the steps would write the state inside their containers and lose it",
                             option="--state-uri", fix=f"use gs://BUCKET/PREFIX or a directory under {mount}/")
    return uri


def check_pod_readable(spec: str, dep: DeploymentSettings) -> None:
    """A scheduled run's ``prepare_data`` pod reads the log: a gs:// one, the synthetic generator, or (with the
    state on the cache volume, which the state steps then mount) a path under its mount; any other path is one on
    this machine, and every run would fail on it, maybe a day later."""
    from coea.data.loaders import parse_spec

    kind, location = parse_spec(spec)
    if location is None or not isinstance(location, Path):
        return
    mount = dep.cache_mount_path.rstrip("/")
    if dep.state_on_cache_volume and str(location).startswith(mount + "/"):
        return
    raise CoeaInputError(f"{spec!r} is a path on this machine: a scheduled run's prepare_data pod cannot read it",
                         option="--data (or data.spec in --config)",
                         fix=f"put the log in a bucket: --data {kind if kind != 'movielens' else 'parquet'}:"
                             f"gs://BUCKET/events/ (or, with the state on the cache volume, a path under {mount}/)")
