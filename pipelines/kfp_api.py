"""The KFP REST API (v2beta1) calls of ``coea upload`` and ``coea schedule``, through ``kfp.Client``.

:class:`Connection` says where the server is and how to authenticate: the endpoint (``--host`` or the
``KF_PIPELINES_ENDPOINT`` environment variable, which kfp itself also reads), and at most one of a bearer token
(``--token`` / ``KF_PIPELINES_TOKEN``), Google IAP (``--iap-client-id`` / ``KF_PIPELINES_IAP_OAUTH2_CLIENT_ID``:
kfp obtains the ID token from service-account credentials; with a user login pass ``--token`` a service account's
ID token, README) or the pod's projected service-account token (``--in-cluster``: kfp's
``ServiceAccountTokenVolumeCredentials``, read from ``KF_PIPELINES_SA_TOKEN_PATH`` or
``/var/run/secrets/kubeflow/pipelines/token``); ``namespace`` is the profile namespace of multi-user Kubeflow.

:class:`KfpApi` makes each call and records it (:class:`ApiCall`: method, path, body summary). Without a client it
is the dry run: it records the same calls and sends nothing, and every lookup answers "not found", so the
printed calls are those that a fresh server would receive. A refused or failed call becomes one
``CoeaInputError`` line naming the call, the status and the fix.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from coea.errors import CoeaInputError

API = "/apis/v2beta1"
ENDPOINT_ENV = "KF_PIPELINES_ENDPOINT"
TOKEN_ENV = "KF_PIPELINES_TOKEN"
IAP_CLIENT_ID_ENV = "KF_PIPELINES_IAP_OAUTH2_CLIENT_ID"
IN_CLUSTER_ENDPOINT = "http://ml-pipeline.kubeflow.svc.cluster.local:8888"  # KFP's API service, any install
AUTH_FIX = (f"pass --token (or {TOKEN_ENV}), --iap-client-id for an IAP-protected endpoint, or --in-cluster in a "
            "pod; on multi-user Kubeflow also --namespace (your profile)")
T = TypeVar("T")


@dataclass(frozen=True)
class Connection:
    """Where the KFP API is and how to authenticate (at most one of token, IAP, in-cluster)."""

    host: str | None
    token: str | None = None
    iap_client_id: str | None = None
    in_cluster: bool = False
    namespace: str | None = None  # the profile namespace of multi-user Kubeflow; None = single-user

    def __post_init__(self) -> None:
        chosen = [name for name, on in (("--token", self.token), ("--iap-client-id", self.iap_client_id),
                                        ("--in-cluster", self.in_cluster)) if on]
        if len(chosen) > 1:
            raise CoeaInputError(f"choose one way to authenticate, got {' and '.join(chosen)}", option=chosen[1],
                                 fix="a token, IAP or the pod's service account, not several")
        if self.host and not self.host.startswith(("http://", "https://")):
            raise CoeaInputError(f"KFP endpoint {self.host!r} has no http:// or https://", option="--host",
                                 fix="e.g. https://kfp.example.com or http://localhost:8888 (port-forward)")

    @property
    def endpoint(self) -> str | None:
        """The endpoint the calls go to (the in-cluster service when ``--in-cluster`` names none)."""
        return self.host or (IN_CLUSTER_ENDPOINT if self.in_cluster else None)

    def client_kwargs(self) -> dict[str, Any]:
        """The arguments of ``kfp.Client`` (kfp 2.17) for this connection."""
        kwargs: dict[str, Any] = {"host": self.endpoint}
        if self.token:
            kwargs["existing_token"] = self.token
        if self.iap_client_id:
            kwargs["client_id"] = self.iap_client_id
        if self.in_cluster:
            from kfp.client.set_volume_credentials import ServiceAccountTokenVolumeCredentials

            kwargs["credentials"] = ServiceAccountTokenVolumeCredentials()
        if self.namespace:
            kwargs["namespace"] = self.namespace
        return kwargs

    def _bearer(self) -> str | None:
        """The bearer token kfp.Client will send, where one is known before connecting (--token, or the pod's
        projected service-account token with --in-cluster); None for IAP, whose token kfp gets itself."""
        if self.token or not self.in_cluster:
            return self.token
        import os

        path = os.getenv("KF_PIPELINES_SA_TOKEN_PATH") or "/var/run/secrets/kubeflow/pipelines/token"
        try:
            return Path(path).read_text(encoding="utf-8").strip() or None
        except OSError:
            return None

    def client(self) -> Any:
        """A ``kfp.Client`` for this connection; a connection without an endpoint is a ``CoeaInputError``."""
        import kfp

        if not self.endpoint:
            raise CoeaInputError("no KFP endpoint", option="--host",
                                 fix=f"pass --host https://KFP_HOST or set {ENDPOINT_ENV} (or --in-cluster in a pod)")
        _answers(self.endpoint, self._bearer())
        return _guarded("connect", self.endpoint, lambda: kfp.Client(**self.client_kwargs()))


REPLY_TIMEOUT_S = 15.0  # how long the endpoint may take to answer at all (kfp.Client itself waits forever)


def _answers(endpoint: str, token: str | None = None, timeout: float = REPLY_TIMEOUT_S) -> None:
    """A ``CoeaInputError`` when ``endpoint`` accepts a connection but sends no reply within ``timeout`` seconds (a
    wrong port, a proxy that swallows requests): kfp.Client's calls have no timeout and would hang. Any reply, an
    error status included, and any other failure are left to kfp.Client and :func:`_guarded`. ``token`` goes with
    the request as kfp.Client's own would send it."""
    import urllib.error
    import urllib.request

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"{endpoint.rstrip('/')}{API}/healthz", headers=headers)
    try:
        urllib.request.urlopen(request, timeout=timeout).close()
    except urllib.error.HTTPError:
        return  # it answered (401/403/404 ... are kfp.Client's to report)
    except (OSError, ValueError) as err:  # URLError wraps the socket's TimeoutError in .reason
        if isinstance(getattr(err, "reason", err), TimeoutError):
            raise CoeaInputError(f"no reply from the KFP API within {timeout:g} s", source=endpoint,
                                 fix=f"check the endpoint and port: the KFP API root (Kubeflow: "
                                     f"https://HOST/pipeline), --host / {ENDPOINT_ENV}") from err


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """kfp prints links to stdout, warns that it needs KFP >= 2.0.0-beta.2 and logs each failed health check with
    its traceback: keep all three out of the CLI's output."""
    logging.disable(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        logging.disable(logging.NOTSET)


@dataclass(frozen=True)
class ApiCall:
    """One REST call: method, path (with the query that matters) and a summary of the body."""

    method: str
    path: str
    body: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        return f"{self.method:<6} {self.path}" + (f"  {json.dumps(self.body, sort_keys=True)}" if self.body else "")


def name_filter(name: str) -> str:
    """The v2beta1 list filter ``display_name == name`` (the form kfp.Client sends)."""
    return json.dumps({"predicates": [{"operation": 1, "key": "display_name", "stringValue": name}]})


def _file_summary(package: Path) -> dict[str, Any]:
    return {"uploadfile": Path(package).name, "bytes": Path(package).stat().st_size}


def _guarded(what: str, endpoint: str | None, send: Callable[[], T]) -> T:
    """Run ``send`` quietly (kfp prints links), turning API and network failures into a ``CoeaInputError``."""
    import kfp_server_api
    import urllib3

    try:
        with _quiet():
            return send()
    except TimeoutError as err:  # kfp.Client's health check, 5 tries 5 s apart, when no namespace is given
        raise CoeaInputError(f"KFP {what} failed: {API}/healthz did not answer OK", source=endpoint,
                             fix=f"check the endpoint and the auth: {AUTH_FIX}") from err
    except kfp_server_api.ApiException as err:
        fix = AUTH_FIX if err.status in (401, 403) else (
            "check the endpoint: the KFP API root (Kubeflow: https://HOST/pipeline)" if err.status == 404
            else "see the KFP API server's log")
        raise CoeaInputError(f"KFP {what} failed: HTTP {err.status} {err.reason}", source=endpoint, fix=fix) from err
    except urllib3.exceptions.HTTPError as err:
        raise CoeaInputError(f"cannot reach the KFP API for {what}: {type(err).__name__}", source=endpoint,
                             fix=f"check --host / {ENDPOINT_ENV} and the network (kubectl port-forward?)") from err
    except ValueError as err:  # kfp's own checks, e.g. two pipelines with one name
        raise CoeaInputError(f"KFP {what}: {err}", source=endpoint, fix="see the KFP UI") from err


class KfpApi:
    """The calls of upload and schedule on ``client`` (a ``kfp.Client``), each recorded in ``calls``; with
    ``client=None`` a dry run: the calls are recorded, nothing is sent, lookups find nothing."""

    def __init__(self, client: Any = None, endpoint: str | None = None) -> None:
        self.client = client
        self.endpoint = endpoint
        self.calls: list[ApiCall] = []

    @property
    def dry_run(self) -> bool:
        return self.client is None

    def _call(self, call: ApiCall, send: Callable[[], T], dry: T) -> T:
        self.calls.append(call)
        return dry if self.client is None else _guarded(f"{call.method} {call.path}", self.endpoint, send)

    def pipeline_id(self, name: str, namespace: str | None = None) -> str | None:
        """The id of the pipeline named ``name`` in ``namespace``, or None. Multi-user KFP lists only the shared
        pipelines when no namespace is given (``kfp.Client.get_pipeline_id`` sends none), so a pipeline uploaded
        into a namespace is looked up there: otherwise the next upload would not find it and conflict with it."""
        def send() -> str | None:
            found = self.client.list_pipelines(page_size=2, filter=name_filter(name), namespace=namespace)
            return found.pipelines[0].pipeline_id if found.pipelines else None

        query = f"filter=display_name={name}" + (f"&namespace={namespace}" if namespace else "")
        return self._call(ApiCall("GET", f"{API}/pipelines?{query}"), send, None)

    def upload_pipeline(self, package: Path, name: str, description: str, namespace: str | None) -> str:
        """Register a new pipeline (KFP also makes its first version, named like the pipeline); its id."""
        body = {**_file_summary(package), "name": name, **({"namespace": namespace} if namespace else {})}
        return self._call(ApiCall("POST", f"{API}/pipelines/upload", body),
                          lambda: self.client.upload_pipeline(str(package), pipeline_name=name, description=description,
                                                              namespace=namespace).pipeline_id, "<new pipeline id>")

    def version_id(self, pipeline_id: str, name: str) -> str | None:
        """The id of the pipeline's version named ``name``, or None."""
        def send() -> str | None:
            found = self.client.list_pipeline_versions(pipeline_id, page_size=2, filter=name_filter(name))
            return found.pipeline_versions[0].pipeline_version_id if found.pipeline_versions else None

        return self._call(ApiCall("GET", f"{API}/pipelines/{pipeline_id}/versions?filter=display_name={name}"),
                          send, None)

    def upload_version(self, package: Path, pipeline_id: str, name: str, description: str) -> str:
        """Upload ``package`` as a new version ``name`` of the pipeline; its id."""
        body = {**_file_summary(package), "name": name, "pipelineid": pipeline_id}
        return self._call(ApiCall("POST", f"{API}/pipelines/upload_version", body),
                          lambda: self.client.upload_pipeline_version(
                              str(package), name, pipeline_id=pipeline_id,
                              description=description).pipeline_version_id, "<new version id>")

    def experiment_id(self, name: str, namespace: str | None) -> str:
        """The id of the experiment ``name``, created when missing."""
        def find() -> str | None:
            try:
                return self.client.get_experiment(experiment_name=name, namespace=namespace).experiment_id
            except ValueError as err:
                if str(err).startswith("No experiment is found"):
                    return None
                raise

        query = f"?filter=display_name={name}" + (f"&namespace={namespace}" if namespace else "")
        found = self._call(ApiCall("GET", f"{API}/experiments{query}"), find, None)
        if found is not None:
            return found
        body = {"display_name": name, **({"namespace": namespace} if namespace else {})}
        return self._call(ApiCall("POST", f"{API}/experiments", body), lambda: self.client.create_experiment(
            name, namespace=namespace).experiment_id, "<new experiment id>")

    def recurring_runs(self, experiment_id: str, name: str) -> list[tuple[str, bool]]:
        """(id, enabled) of every recurring run named ``name`` in the experiment."""
        def send() -> list[tuple[str, bool]]:
            found = self.client.list_recurring_runs(experiment_id=experiment_id, page_size=100,
                                                    filter=name_filter(name)).recurring_runs or []
            return [(r.recurring_run_id, r.status != "DISABLED" and r.mode != "DISABLE") for r in found]

        return self._call(ApiCall("GET", f"{API}/recurringruns?experiment_id={experiment_id}"
                                         f"&filter=display_name={name}"), send, [])

    def set_recurring_run_enabled(self, run_id: str, enabled: bool) -> None:
        verb = "enable" if enabled else "disable"
        self._call(ApiCall("POST", f"{API}/recurringruns/{run_id}:{verb}"),
                   lambda: getattr(self.client, f"{verb}_recurring_run")(run_id), None)

    def delete_recurring_run(self, run_id: str) -> None:
        self._call(ApiCall("DELETE", f"{API}/recurringruns/{run_id}"),
                   lambda: self.client.delete_recurring_run(run_id), None)

    def create_recurring_run(self, kwargs: dict[str, Any], body: dict[str, Any]) -> str:
        """``kfp.Client.create_recurring_run(**kwargs)``; ``body`` is the summary recorded; returns the new id."""
        return self._call(ApiCall("POST", f"{API}/recurringruns", body),
                          lambda: self.client.create_recurring_run(**kwargs).recurring_run_id,
                          "<new recurring run id>")
