"""A stand-in for the few KFP v2beta1 REST endpoints that ``coea upload`` and ``coea schedule`` use.

NOT a real KFP: a stdlib ``http.server`` in a thread that keeps pipelines, versions, experiments and recurring runs
in dicts, answers in the JSON shapes of the v2beta1 API (field names as ``kfp_server_api`` reads them), refuses
what a real server refuses here (a duplicate version name, a missing bearer token when one is required) and
records every request. Contract tests run the real ``kfp.Client`` against it.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from typing import Any
from urllib.parse import parse_qs, urlsplit

API = "/apis/v2beta1"


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    body: Any  # the JSON body, or the multipart form's fields (a file as its bytes)


@dataclass
class StandInKfp:
    """The server's state; ``token`` set = every request needs ``Authorization: Bearer <token>``."""

    token: str | None = None
    pipelines: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    experiments: dict[str, dict[str, Any]] = field(default_factory=dict)
    recurring_runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    ids: Any = field(default_factory=lambda: count(1))

    def new_id(self, kind: str) -> str:
        return f"{kind}-{next(self.ids)}"

    def writes(self) -> list[tuple[str, str]]:
        """(method, path) of every request that was not a GET."""
        return [(r.method, r.path) for r in self.requests if r.method != "GET"]


def _matches(item: dict[str, Any], query: dict[str, str]) -> bool:
    predicates = json.loads(query["filter"])["predicates"] if "filter" in query else []
    return all(item.get(p["key"]) == p["stringValue"] for p in predicates)


def _form(headers: Any, raw: bytes) -> dict[str, Any]:
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {headers['Content-Type']}\r\n\r\n".encode() + raw)
    return {part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
            for part in message.iter_parts()}


class _Handler(BaseHTTPRequestHandler):
    kfp: StandInKfp  # set on the subclass per server

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body: Any = {}
        if raw:
            body = _form(self.headers, raw) if "multipart" in self.headers["Content-Type"] else json.loads(raw)
        auth = self.headers.get("Authorization")
        self.kfp.requests.append(Recorded(method, url.path, query, auth, body))
        if self.kfp.token and auth != f"Bearer {self.kfp.token}":
            return self._reply(401, {"error": "missing or wrong bearer token", "code": 16})
        status, payload = route(self.kfp, method, url.path.removeprefix(API), query, body)
        self._reply(status, payload)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")


def _upload_pipeline(kfp: StandInKfp, query: dict[str, str], form: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    name, namespace = query["name"], query.get("namespace", "")
    if any(p["display_name"] == name and p["namespace"] == namespace for p in kfp.pipelines.values()):
        return 409, {"error": f"pipeline {name} already exists", "code": 6}
    pid = kfp.new_id("pipeline")
    kfp.pipelines[pid] = {"pipeline_id": pid, "display_name": name, "namespace": namespace}
    _add_version(kfp, pid, name, form["uploadfile"])  # KFP makes a first version named like the pipeline
    return 200, kfp.pipelines[pid]


def _add_version(kfp: StandInKfp, pid: str, name: str, package: bytes) -> tuple[int, dict[str, Any]]:
    if any(v["pipeline_id"] == pid and v["display_name"] == name for v in kfp.versions.values()):
        return 409, {"error": f"version {name} already exists", "code": 6}
    vid = kfp.new_id("version")
    kfp.versions[vid] = {"pipeline_id": pid, "pipeline_version_id": vid, "display_name": name, "package": package}
    return 200, {k: v for k, v in kfp.versions[vid].items() if k != "package"}


def _recurring(kfp: StandInKfp, method: str, path: str, query: dict[str, str],
               body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    if path == "/recurringruns" and method == "GET":
        found = [r for r in kfp.recurring_runs.values()
                 if r["experiment_id"] == query.get("experiment_id") and _matches(r, query)]
        return 200, {"recurringRuns": found} if found else {}
    if path == "/recurringruns" and method == "POST":
        rid = kfp.new_id("recurring-run")
        kfp.recurring_runs[rid] = {**body, "recurring_run_id": rid, "status": "ENABLED"}
        return 200, kfp.recurring_runs[rid]
    rid, _, verb = path.removeprefix("/recurringruns/").partition(":")
    if rid not in kfp.recurring_runs:
        return 404, {"error": f"no recurring run {rid}", "code": 5}
    if method == "DELETE":
        del kfp.recurring_runs[rid]
    elif verb in ("enable", "disable"):
        kfp.recurring_runs[rid]["status"] = "ENABLED" if verb == "enable" else "DISABLED"
    return 200, {}


def route(kfp: StandInKfp, method: str, path: str, query: dict[str, str],
          body: Any) -> tuple[int, dict[str, Any]]:
    """Answer one request (``path`` without the ``/apis/v2beta1`` prefix)."""
    if (method, path) == ("GET", "/healthz"):
        return 200, {"multi_user": False}
    if (method, path) == ("GET", "/pipelines"):  # multi-user KFP: no namespace lists the shared pipelines only
        found = [p for p in kfp.pipelines.values()
                 if _matches(p, query) and p["namespace"] == query.get("namespace", "")]
        return 200, {"pipelines": found, "total_size": len(found)} if found else {}
    if (method, path) == ("POST", "/pipelines/upload"):
        return _upload_pipeline(kfp, query, body)
    if (method, path) == ("POST", "/pipelines/upload_version"):
        if query.get("pipelineid") not in kfp.pipelines:
            return 404, {"error": "no such pipeline", "code": 5}
        return _add_version(kfp, query["pipelineid"], query["name"], body["uploadfile"])
    if method == "GET" and path.startswith("/pipelines/") and path.endswith("/versions"):
        pid = path.split("/")[2]
        found = [{k: v for k, v in ver.items() if k != "package"} for ver in kfp.versions.values()
                 if ver["pipeline_id"] == pid and _matches(ver, query)]
        return 200, {"pipeline_versions": found} if found else {}
    if (method, path) == ("GET", "/experiments"):
        found = [e for e in kfp.experiments.values() if _matches(e, query)]
        return 200, {"experiments": found} if found else {}
    if (method, path) == ("POST", "/experiments"):
        eid = kfp.new_id("experiment")
        kfp.experiments[eid] = {**body, "experiment_id": eid}
        return 200, kfp.experiments[eid]
    if path.startswith("/recurringruns"):
        return _recurring(kfp, method, path, query, body)
    return 404, {"error": f"the stand-in does not implement {method} {path}", "code": 12}


class StandInServer:
    """``with StandInServer() as (url, kfp):`` a stand-in KFP on 127.0.0.1 in a thread."""

    def __init__(self, token: str | None = None) -> None:
        self.kfp = StandInKfp(token=token)
        handler = type("Handler", (_Handler,), {"kfp": self.kfp})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> tuple[str, StandInKfp]:
        self.thread.start()
        return self.url, self.kfp

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
