"""Recurring runs of ``coea_recurring`` on a KFP host: cron check, request, ``kfp.Client.create_recurring_run``.

KFP's cron (robfig/cron) has six fields, seconds first: ``second minute hour day-of-month month day-of-week``;
``0 0 3 * * *`` is 03:00 every day. :func:`validate_cron` checks the shape and the ranges before anything is
sent, so a five-field Unix cron fails here with the fix instead of on the server.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from coea.errors import CoeaInputError

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
    """Everything sent to KFP: the experiment, then ``create_recurring_run``'s arguments."""

    host: str | None
    experiment: str
    namespace: str | None
    job_name: str
    cron_expression: str
    pipeline_package_path: str
    params: dict[str, Any] = field(default_factory=dict)
    service_account: str | None = None
    max_concurrency: int = 1  # periods must not overlap: each run reads and replaces the state
    no_catchup: bool = True  # after a pause, run the latest period only
    enabled: bool = True
    pipeline_root: str | None = None  # the runs' artifact root (gs://...); None = the package's defaultPipelineRoot

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def create_kwargs(self, experiment_id: str) -> dict[str, Any]:
        """The keyword arguments of ``kfp.Client.create_recurring_run`` (kfp 2.17)."""
        return {"experiment_id": experiment_id, "job_name": self.job_name, "cron_expression": self.cron_expression,
                "pipeline_package_path": self.pipeline_package_path, "params": self.params,
                "service_account": self.service_account or None, "max_concurrency": self.max_concurrency,
                "no_catchup": self.no_catchup, "enabled": self.enabled, "pipeline_root": self.pipeline_root or None}


def create_recurring_run(request: RecurringRunRequest, client: Any = None) -> str:
    """Get or create the experiment and create the recurring run; returns its id. ``client`` defaults to
    ``kfp.Client(host=request.host)``."""
    if client is None:
        import kfp

        client = kfp.Client(host=request.host)
    experiment = client.create_experiment(name=request.experiment, namespace=request.namespace or None)
    run = client.create_recurring_run(**request.create_kwargs(experiment.experiment_id))
    return str(getattr(run, "recurring_run_id", run))


def validate_state_uri(uri: str) -> str:
    """A state location a cluster can use: ``gs://bucket/prefix`` or an absolute path (on the cache volume)."""
    from coea.store.gcs import parse_gcs_uri

    if uri.startswith("gs://"):
        parse_gcs_uri(uri)  # StoreError (a CoeaInputError) names the fix
        return uri
    if "://" in uri or not uri.startswith("/"):
        raise CoeaInputError(f"state URI {uri!r} is neither gs://... nor an absolute path", option="--state-uri",
                             fix="use gs://BUCKET/PREFIX or a directory on the cache volume such as /cache/coea-state")
    return uri
