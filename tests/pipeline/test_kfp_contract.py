"""Contract tests of `coea upload` / `coea schedule` against a STAND-IN server (tests/pipeline/kfp_standin.py), not a
real KFP: the real kfp.Client sends its v2beta1 REST calls to a local stdlib HTTP server that implements the few
endpoints used and records every request. They prove which calls are sent and what they carry (pipeline, version,
recurring run with cron, max_concurrency 1, no_catchup, pipeline root), that re-running replaces instead of
duplicating, that the dry run prints the very calls a fresh server receives, and how auth is passed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import coea
from pipelines.definitions import RECURRING, TRAINING
from pipelines.kfp_api import API, Connection
from tests.helpers import run_cli
from tests.pipeline.compiled_spec import k8s_executors, read_spec
from tests.pipeline.kfp_standin import StandInServer

ROOT = "gs://coea-bucket/kfp-root"
STATE = "gs://coea-bucket/state"
UPLOAD = ["upload", "--state-uri", STATE, "--pipeline-root", ROOT]
DEMO = ["schedule", "--data", "synthetic"]  # a demo schedule: the data named
SCHEDULE = [*DEMO, "--state-uri", STATE, "--pipeline-root", ROOT, "--cron", "0 30 2 * * *"]


@pytest.fixture(autouse=True)
def no_kfp_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No endpoint or token from the environment, and no kfp context file of the user's."""
    for name in ("KF_PIPELINES_ENDPOINT", "KF_PIPELINES_TOKEN", "KF_PIPELINES_IAP_OAUTH2_CLIENT_ID"):
        monkeypatch.delenv(name, raising=False)
    import kfp

    monkeypatch.setattr(kfp.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp-context.json"))


@pytest.fixture(scope="module")
def compile_cache(tmp_path_factory: pytest.TempPathFactory) -> dict[Any, dict[str, Path]]:
    return {"dir": tmp_path_factory.mktemp("compiled")}


@pytest.fixture(autouse=True)
def compile_once_per_settings(compile_cache: dict[Any, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Compiling takes seconds on a loaded machine: each distinct DeploymentSettings is compiled once per module
    and its YAML copied into the command's --out (compiling itself is tested in test_compile*.py)."""
    import shutil

    from pipelines import compile as compile_module

    real = compile_module.compile_pipelines

    def cached(out_dir: Path, settings: Any = None) -> dict[str, Path]:
        if settings not in compile_cache:
            compile_cache[settings] = real(compile_cache["dir"] / str(len(compile_cache)), settings)
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        return {name: Path(shutil.copy(path, Path(out_dir) / path.name)) for name, path in
                compile_cache[settings].items()}

    monkeypatch.setattr(compile_module, "compile_pipelines", cached)


def _ok(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    return out


def _dry_run_lines(out: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path without the query, body) of each call line the dry run printed."""
    calls = []
    for line in out.splitlines()[2:]:  # after the header and what the package uses
        method, rest = line.split(None, 1)
        path, _, body = rest.partition("  ")
        calls.append((method, path.split("?")[0], json.loads(body) if body else {}))
    return calls


def test_upload_and_schedule_send_pipeline_version_and_recurring_run(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """upload registers both pipelines, each with a version VERSION-GITSHA-SPECHASH holding the compiled package;
    upload again is a no-op; schedule (same settings: the same package) reuses the recurring pipeline's version
    and creates one recurring run pointing at it with the cron, max_concurrency 1, no_catchup and the pipeline
    root; another state URI compiles another package, hence a new version."""
    with StandInServer() as (url, kfp):
        out = _ok([*UPLOAD, "--host", url, "--out", str(tmp_path / "a")], capsys)
        assert {p["display_name"] for p in kfp.pipelines.values()} == {TRAINING, RECURRING}
        ours = {v["display_name"]: v for v in kfp.versions.values() if v["display_name"].startswith(coea.__version__)}
        assert len(ours) == 2 and out.count("uploaded\n") == 2
        package = (tmp_path / "a" / "coea_recurring.yaml").read_bytes()
        recurring_version = next(v for v in ours.values() if v["package"] == package)
        assert recurring_version["display_name"].split("-")[0] == coea.__version__

        again = _ok([*UPLOAD, "--host", url, "--out", str(tmp_path / "b")], capsys)
        assert again.count("already on the server (nothing uploaded)") == 2 and len(kfp.versions) == 4

        _ok([*SCHEDULE, "--host", url, "--out", str(tmp_path / "c")], capsys)
        assert [m for m, p in kfp.writes() if p.endswith("upload_version")] == ["POST", "POST"]  # none by schedule
        (run,) = kfp.recurring_runs.values()
    assert run["trigger"] == {"cron_schedule": {"cron": "0 30 2 * * *"}}
    assert int(run["max_concurrency"]) == 1 and run["no_catchup"] is True and run["mode"] == "ENABLE"
    assert run["runtime_config"]["pipeline_root"] == ROOT
    assert run["runtime_config"]["parameters"]["state_uri"] == "gs://coea-bucket/state"
    assert run["pipeline_version_reference"] == {"pipeline_id": recurring_version["pipeline_id"],
                                                 "pipeline_version_id": recurring_version["pipeline_version_id"]}
    assert run["service_account"] == "coea-pipeline-runner" and "pipeline_spec" not in run
    with StandInServer() as (url, kfp):
        _ok([*UPLOAD, "--host", url, "--out", str(tmp_path / "d")], capsys)
        _ok([*UPLOAD, "--state-uri", "gs://coea-bucket/other", "--host", url, "--out", str(tmp_path / "e")], capsys)
        assert len(kfp.versions) == 2 + 4  # KFP's 2 first versions + 2 of ours per state URI (both pipelines)


def test_the_settings_namespace_and_service_account_reach_every_call(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The multi-user overlay's settings file with a namespace and a service account of its own (not the
    defaults'): upload creates the pipelines in that namespace, schedule creates the experiment there and the
    recurring run with that service account (where the Profile's PVC, ConfigMap and workload identity are)."""
    import yaml

    settings = yaml.safe_load((Path(coea.__file__).parents[2] / "k8s/overlays/multi-user/pipeline.yaml").read_text())
    settings.update(namespace="team-a", service_account="team-a-runner")
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(settings))
    with StandInServer() as (url, kfp):
        _ok([*UPLOAD, "--settings", str(path), "--host", url, "--out", str(tmp_path / "a")], capsys)
        _ok([*SCHEDULE, "--settings", str(path), "--host", url, "--out", str(tmp_path / "b")], capsys)
        (run,) = kfp.recurring_runs.values()
        # session 55: the schedule found the pipelines upload had created in the namespace (a lookup without the
        # namespace lists only shared ones, and the second upload conflicted with the first: HTTP 409)
        assert len(kfp.pipelines) == 2 and {p["namespace"] for p in kfp.pipelines.values()} == {"team-a"}
        assert [e.get("namespace") for e in kfp.experiments.values()] == ["team-a"]
    assert run["service_account"] == "team-a-runner"


def test_rescheduling_replaces_the_recurring_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Scheduling the same job name again leaves ONE recurring run, with the new cron: the old one was disabled
    before the new one was created, then deleted."""
    with StandInServer() as (url, kfp):
        _ok([*SCHEDULE, "--host", url, "--out", str(tmp_path)], capsys)
        (first,) = kfp.recurring_runs
        out = _ok([*SCHEDULE[:-1], "0 0 4 * * *", "--host", url, "--out", str(tmp_path)], capsys)
        (second,) = kfp.recurring_runs
        writes = kfp.writes()
    assert second != first and f"replacing {first}" in out
    assert kfp.recurring_runs[second]["trigger"]["cron_schedule"]["cron"] == "0 0 4 * * *"
    tail = writes[-3:]
    assert tail == [("POST", f"{API}/recurringruns/{first}:disable"), ("POST", f"{API}/recurringruns"),
                    ("DELETE", f"{API}/recurringruns/{first}")]
    assert len(kfp.experiments) == 1


def test_dry_run_takes_the_endpoint_from_the_environment_and_sends_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """KF_PIPELINES_ENDPOINT=URL coea schedule --dry-run (no --host): prints each call, sends none; its write
    calls are exactly those a fresh server then receives from the real schedule, in the same order."""
    with StandInServer() as (url, kfp):
        monkeypatch.setenv("KF_PIPELINES_ENDPOINT", url)
        out = _ok([*SCHEDULE, "--dry-run", "--out", str(tmp_path)], capsys)
        assert kfp.requests == [] and out.splitlines()[0].startswith(f"dry run: nothing sent to {url}")
        printed = _dry_run_lines(out)
        body = printed[-1][2]
        assert printed[-1][:2] == ("POST", f"{API}/recurringruns")
        assert body["trigger"]["cron_schedule"]["cron"] == "0 30 2 * * *" and body["max_concurrency"] == 1
        assert body["no_catchup"] is True and body["runtime_config"]["pipeline_root"] == ROOT
        _ok([*SCHEDULE, "--out", str(tmp_path)], capsys)  # the same command for real, endpoint from the env
        sent = kfp.writes()
    assert [(m, p) for m, p, _ in printed if m != "GET"] == sent
    assert [m for m, _ in sent] == ["POST"] * 4  # pipeline, version, experiment, recurring run


def test_token_from_env_is_sent_and_a_refusal_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that needs a bearer token: without one, one error line (kfp.Client's health check fails; the fix
    names --token) and exit 2, nothing uploaded; with KF_PIPELINES_TOKEN every request carries it. (kfp waits 5 s
    between its 5 health checks; the test skips the waits.)"""
    import kfp.client.client

    monkeypatch.setattr(kfp.client.client.time, "sleep", lambda _: None)
    with StandInServer(token="s3cret") as (url, kfp):
        code, out, err = run_cli(["upload", "--host", url, "--out", str(tmp_path)], capsys)
        assert code == 2 and "healthz did not answer OK" in err and "--token" in err
        assert len(err.strip().splitlines()) == 1
        assert not kfp.pipelines
        kfp.requests.clear()
        monkeypatch.setenv("KF_PIPELINES_TOKEN", "s3cret")
        _ok(["upload", "--host", url, "--out", str(tmp_path)], capsys)
        assert kfp.requests and {r.authorization for r in kfp.requests} == {"Bearer s3cret"}


def test_in_cluster_sends_the_projected_service_account_token(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """--in-cluster: kfp's ServiceAccountTokenVolumeCredentials read the pod's projected token file."""
    (tmp_path / "token").write_text("pod-token")
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(tmp_path / "token"))
    with StandInServer(token="pod-token") as (url, kfp):
        _ok(["upload", "--in-cluster", "--host", url, "--out", str(tmp_path)], capsys)
        assert {r.authorization for r in kfp.requests} == {"Bearer pod-token"} and len(kfp.pipelines) == 2


def test_connection_options() -> None:
    """IAP and namespace go to kfp.Client as client_id / namespace; --in-cluster without --host uses KFP's
    in-cluster service; two ways to authenticate or a host without a scheme are refused."""
    kwargs = Connection("https://kfp.example.com", iap_client_id="123.apps.googleusercontent.com",
                        namespace="team-a").client_kwargs()
    assert kwargs == {"host": "https://kfp.example.com", "client_id": "123.apps.googleusercontent.com",
                      "namespace": "team-a"}
    assert Connection(None, in_cluster=True).endpoint == "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
    from coea.errors import CoeaInputError

    with pytest.raises(CoeaInputError, match="choose one way to authenticate"):
        Connection("https://h", token="t", in_cluster=True)
    with pytest.raises(CoeaInputError, match="has no http"):
        Connection("kfp.example.com")


def test_without_an_endpoint_schedule_says_how_to_give_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli([*SCHEDULE, "--out", str(tmp_path / "build")], capsys)
    assert code == 2 and "no KFP endpoint" in err and "KF_PIPELINES_ENDPOINT" in err
    assert not (tmp_path / "build").exists()  # refused before compiling


def test_state_volume_follows_the_state_uri_passed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With the gpu-pool settings and a gs:// state the state steps mount no volume; `--state-uri /cache/...` makes
    them mount the cache PVC; a local path outside the mount is refused (one line, exit 2)."""
    from tests.helpers import REPO

    settings = ["--settings", str(REPO / "k8s/overlays/gpu-pool/pipeline.yaml"), "--dry-run"]

    def pvc_mounts(out: Path) -> set[str]:
        spec = read_spec(out / "coea_recurring.yaml")
        return {ex for ex, body in k8s_executors(spec).items() if body.get("pvcMount")}

    _ok([*DEMO, *settings, "--state-uri", STATE, "--out", str(tmp_path / "gs")], capsys)
    assert pvc_mounts(tmp_path / "gs") == set()
    _ok([*DEMO, *settings, "--state-uri", "/cache/coea-state", "--out", str(tmp_path / "pvc")], capsys)
    assert {"exec-load-state", "exec-save-state", "exec-prepare-data"} <= pvc_mounts(tmp_path / "pvc")
    code, _, err = run_cli([*DEMO, *settings, "--state-uri", "/data/state", "--out", str(tmp_path / "x")], capsys)
    assert code == 2 and "outside the cache volume (mounted at /cache)" in err and len(err.strip().splitlines()) == 1
