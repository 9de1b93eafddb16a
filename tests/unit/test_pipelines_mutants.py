"""Deployment code and run lineage that the tests left unpinned (mutation audit of pipelines/, components/ and
coea.lineage): settings checks (accelerator limit, node selector value, compute retries, what counts as the cache
volume), the cron check of a single-value range, the state URI check beside the cache mount, the recurring run's
replacement and its rollback, the REST body of a disabled recurring run, the KFP error that names the auth fix, the
experiment lookup, the commit digits of an upload's version name, and an old lineage record without ``complete``.
Each test builds its objects directly (no kfp.Client, no server, no compile)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from coea.errors import CoeaInputError
from components.settings import DeploymentSettings


def test_a_gpu_step_cannot_ask_for_zero_gpus() -> None:
    """``accelerator_limit`` is the GPUs of each GPU step: 0 would compile a GPU request of nothing, so it is
    refused; 1 is the default and allowed."""
    assert DeploymentSettings(accelerator_limit=1).accelerator_limit == 1
    with pytest.raises(ValueError, match="accelerator_limit must be >= 1, got 0"):
        DeploymentSettings(accelerator_limit=0)


def test_a_node_selector_key_needs_a_value() -> None:
    """A node selector key without a value would select nodes whose label is empty (none): refused when read."""
    with pytest.raises(ValueError, match="gpu_node_selector_value is empty while gpu_node_selector_key is set"):
        DeploymentSettings(gpu_node_selector_key="cloud.google.com/gke-accelerator")


def test_negative_compute_retries_are_refused() -> None:
    """``compute_retries`` counts retries of the CPU compute steps, like ``io_retries`` and ``gpu_retries``."""
    with pytest.raises(ValueError, match="compute_retries must be >= 0, got -1"):
        DeploymentSettings(compute_retries=-1)


@pytest.mark.parametrize(("state_uri", "on_volume"), [
    ("/cache", True), ("/cache/", True), ("/cache/coea-state", True),
    ("/cache2/coea-state", False), ("/cachedir", False), ("gs://bucket/cache/coea-state", False),
])
def test_only_the_mount_path_and_paths_under_it_are_on_the_cache_volume(state_uri: str, on_volume: bool) -> None:
    """A path that merely starts with the mount path's characters (``/cache2/...``) is not on the volume mounted at
    ``/cache``: the state steps would mount the PVC and still write the state inside their containers."""
    assert DeploymentSettings(state_uri=state_uri).state_on_cache_volume is on_volume


def test_a_single_value_cron_range_is_a_good_range() -> None:
    """``5-5`` (robfig/cron reads it as 5) is not a range that runs backwards; ``5-4`` is."""
    from pipelines.schedule import validate_cron

    assert validate_cron("0 0 5-5 * * *") == "0 0 5-5 * * *"
    with pytest.raises(CoeaInputError, match="runs backwards"):
        validate_cron("0 0 5-4 * * *")


@pytest.mark.parametrize("uri", ["/cache2/coea-state", "/cachedir"])
def test_a_state_path_beside_the_cache_mount_is_refused(uri: str) -> None:
    """``validate_state_uri``: ``/cache2/...`` is outside the volume mounted at ``/cache``, so the steps would
    write the state inside their containers; ``/cache`` itself and paths under it are accepted."""
    from pipelines.schedule import validate_state_uri

    assert validate_state_uri("/cache") == "/cache" and validate_state_uri("/cache/s") == "/cache/s"
    with pytest.raises(CoeaInputError, match="outside the cache volume"):
        validate_state_uri(uri)


def test_the_dry_run_body_of_a_disabled_recurring_run_says_disable() -> None:
    """The REST body summary carries the run's mode: a request with ``enabled=False`` is ``DISABLE``."""
    from pipelines.schedule import RecurringRunRequest
    from pipelines.upload import PipelineVersion

    version = PipelineVersion("coea-recurring", "p1", "v", "v1", uploaded=False)
    request = RecurringRunRequest("coea", None, "job", "0 0 3 * * *", enabled=False)
    assert request.body("e1", version)["mode"] == "DISABLE"
    assert request.create_kwargs("e1", version)["enabled"] is False


class FakeClient:
    """The kfp.Client methods that KfpApi's experiment and recurring-run calls use, recording each call.
    ``runs``: (id, status, mode) of the recurring runs listed; ``create_fails``: create_recurring_run raises."""

    def __init__(self, runs: list[tuple[str, str, str]] = (), *, create_fails: bool = False,
                 experiment_error: str | None = None) -> None:
        self.runs, self.create_fails, self.experiment_error = list(runs), create_fails, experiment_error
        self.calls: list[tuple[str, ...]] = []

    def get_experiment(self, experiment_name: str, namespace: str | None = None) -> Any:
        if self.experiment_error:
            raise ValueError(self.experiment_error)
        return SimpleNamespace(experiment_id="e1")

    def create_experiment(self, name: str, namespace: str | None = None) -> Any:
        self.calls.append(("create_experiment", name))
        return SimpleNamespace(experiment_id="e-new")

    def list_recurring_runs(self, **_: Any) -> Any:
        return SimpleNamespace(recurring_runs=[SimpleNamespace(recurring_run_id=i, status=s, mode=m)
                                               for i, s, m in self.runs])

    def disable_recurring_run(self, run_id: str) -> None:
        self.calls.append(("disable", run_id))

    def enable_recurring_run(self, run_id: str) -> None:
        self.calls.append(("enable", run_id))

    def delete_recurring_run(self, run_id: str) -> None:
        self.calls.append(("delete", run_id))

    def create_recurring_run(self, **_: Any) -> Any:
        self.calls.append(("create",))
        if self.create_fails:
            raise ValueError("the server refused the recurring run")
        return SimpleNamespace(recurring_run_id="r-new")


def _schedule(client: FakeClient) -> Any:
    from pipelines.kfp_api import KfpApi
    from pipelines.schedule import RecurringRunRequest, schedule_version
    from pipelines.upload import PipelineVersion

    version = PipelineVersion("coea-recurring", "p1", "v", "v1", uploaded=False)
    request = RecurringRunRequest("coea", None, "coea-recurring", "0 0 3 * * *")
    return schedule_version(KfpApi(client, "http://kfp.test"), request, version)


def test_a_failed_create_enables_the_replaced_runs_again_and_deletes_nothing() -> None:
    """Rescheduling disables the enabled runs of the name before it creates the new one; when the create fails,
    those runs are enabled again (the schedule keeps firing), a run that was disabled stays so, none is deleted,
    and the error is raised."""
    client = FakeClient([("r1", "ENABLED", "ENABLE"), ("r2", "DISABLED", "DISABLE")], create_fails=True)
    with pytest.raises(CoeaInputError, match="the server refused the recurring run"):
        _schedule(client)
    assert client.calls == [("disable", "r1"), ("create",), ("enable", "r1")]


def test_a_run_whose_mode_is_disable_counts_as_disabled() -> None:
    """A listed recurring run with mode ``DISABLE`` is disabled whatever its status says: rescheduling neither
    disables it nor, on a failed create, enables it (it was off before)."""
    client = FakeClient([("r1", "STATUS_UNSPECIFIED", "DISABLE")], create_fails=True)
    with pytest.raises(CoeaInputError):
        _schedule(client)
    assert client.calls == [("create",)]


def test_an_experiment_lookup_error_is_not_taken_for_a_missing_experiment() -> None:
    """Only kfp's "No experiment is found" means create it; any other failure of the lookup is the error it is,
    and no second experiment of that name is created."""
    from pipelines.kfp_api import KfpApi

    client = FakeClient(experiment_error="Multiple experiments with the name coea")
    with pytest.raises(CoeaInputError, match="Multiple experiments with the name coea"):
        KfpApi(client, "http://kfp.test").experiment_id("coea", None)
    assert client.calls == []
    client = FakeClient(experiment_error="No experiment is found with name coea")
    assert KfpApi(client, "http://kfp.test").experiment_id("coea", None) == "e-new"


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_call_names_the_ways_to_authenticate(status: int) -> None:
    """HTTP 401 and 403 from the KFP API both mean the credentials: the fix names --token, IAP and --in-cluster."""
    import kfp_server_api

    from pipelines.kfp_api import AUTH_FIX, _guarded

    def send() -> None:
        raise kfp_server_api.ApiException(status=status, reason="Forbidden")

    with pytest.raises(CoeaInputError) as err:
        _guarded("connect", "http://kfp.test", send)
    assert err.value.fix == AUTH_FIX and f"HTTP {status}" in str(err.value)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")
def test_the_version_name_s_commit_is_the_12_digit_short_sha(tmp_path: Path) -> None:
    """``git_sha`` gives the checkout's commit in 12 hex digits (the module docstring's ``--short=12``), not git's
    shortest unique abbreviation."""
    from pipelines.upload import git_sha

    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q", str(tmp_path)], check=True)
    subprocess.run([*git, "-C", str(tmp_path), "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    full = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert git_sha(tmp_path) == full[:12]


def test_outside_a_checkout_the_sha_comes_from_the_image_and_unknown_is_nogit(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Without git metadata the image's ``COEA_GIT_SHA`` names the commit; its placeholder ``unknown`` (an image
    built outside a checkout) and an empty one give ``nogit``."""
    from pipelines.upload import git_sha

    monkeypatch.setenv("GIT_DIR", str(tmp_path / "no-repo"))  # git rev-parse fails wherever tmp_path lies
    monkeypatch.setenv("COEA_GIT_SHA", "1a2b3c4d5e6f")
    assert git_sha(tmp_path) == "1a2b3c4d5e6f"
    for value in ("unknown", ""):
        monkeypatch.setenv("COEA_GIT_SHA", value)
        assert git_sha(tmp_path) == "nogit"


def test_a_lineage_record_without_complete_is_a_finished_one(tmp_path: Path) -> None:
    """Records of older versions have no ``complete`` field: ``unfinished`` reads them as finished, as ``check``
    does (the report would call a finished PCO run unfinished); ``complete: false`` is unfinished."""
    import json

    from coea import lineage

    (tmp_path / lineage.LINEAGE).write_text(json.dumps({"id": "a", "histories": {}, "made_from": {}}))
    assert not lineage.unfinished(tmp_path)
    lineage.check(tmp_path, "pco")  # finished: not refused
    (tmp_path / lineage.LINEAGE).write_text(json.dumps({"id": "a", "complete": False}))
    assert lineage.unfinished(tmp_path)
