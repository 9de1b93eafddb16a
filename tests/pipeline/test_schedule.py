"""Cron validation, `coea schedule` (dry run, errors) and `coea compile`; the calls sent to a server are in
test_kfp_contract.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from coea.errors import CoeaInputError
from pipelines.schedule import validate_cron
from tests.helpers import REPO, run_cli


@pytest.mark.parametrize("cron", ["0 0 3 * * *", "0 0 * * * *", "*/30 * * * * ?", "0 15 10 ? * MON-FRI",
                                  "0 0 0 1 JAN,JUL *", "0  0 3 * *  *", "0 0 9-17/2 * * 1-5"])
def test_good_crons(cron: str) -> None:
    assert validate_cron(cron) == " ".join(cron.split())


@pytest.mark.parametrize(("cron", "message"), [
    ("0 3 * * *", 'prepend the seconds: "0 0 3 \\* \\* \\*"'),
    ("* * *", "3 fields, expected 6"),
    ("", "0 fields"),
    ("60 0 3 * * *", "second value '60' is outside 0-59"),
    ("0 0 24 * * *", "hour value '24'"),
    ("0 0 3 0 * *", "day-of-month value '0'"),
    ("0 0 3 * 13 *", "month value '13'"),
    ("0 0 3 * * 7", "day-of-week value '7'"),
    ("0 0 3 * * FUNDAY", "day-of-week value 'FUNDAY'"),
    ("0 0 5-3 * * *", "runs backwards"),
    ("0 0 */0 * * *", "step must be >= 1"),
    ("? 0 3 * * *", "'\\?' is only allowed"),
    ("0 0 3 @ * *", "cannot read '@'"),
])
def test_bad_crons(cron: str, message: str) -> None:
    with pytest.raises(CoeaInputError, match=message):
        validate_cron(cron)


def recurring_run_body(out: str) -> dict[str, Any]:
    """The body of the ``POST .../recurringruns`` line of a dry run's output."""
    (line,) = [ln for ln in out.splitlines() if ln.split()[:2] == ["POST", "/apis/v2beta1/recurringruns"]]
    return json.loads(line[line.index("{"):])


def test_schedule_dry_run_prints_the_calls(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KF_PIPELINES_ENDPOINT", raising=False)
    code, out, _ = run_cli(["schedule", "--dry-run", "--cron", "0 30 2 * * *", "--state-uri", "gs://my-bucket/coea",
                         "--out", str(tmp_path), "--drift-threshold", "0.4", "--data", "parquet:gs://my-bucket/events/"],
                        capsys)
    assert code == 0 and out.startswith("dry run: nothing sent (no endpoint given")
    body = recurring_run_body(out)
    assert body["trigger"]["cron_schedule"]["cron"] == "0 30 2 * * *" and body["display_name"] == "coea-recurring"
    assert body["service_account"] == "coea-pipeline-runner" and body["max_concurrency"] == 1
    assert body["pipeline_version_reference"]["pipeline_version_id"] == "<new version id>"
    assert (tmp_path / "coea_recurring.yaml").is_file()
    params = body["runtime_config"]["parameters"]
    assert params["state_uri"] == "gs://my-bucket/coea" and params["drift_threshold"] == 0.4
    assert params["data_config"].startswith('{"data": {')  # long values are shortened in the summary


@pytest.mark.parametrize(("args", "shown"), [([], "no --config or --data"), (["--config", "gpu"], "--config names no "
                                                                                "data.spec")])
def test_schedule_refuses_synthetic_data_unless_asked(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch, args: list[str],
                                                      shown: str) -> None:
    """A schedule without a data spec (no --config, or the README's `--config gpu`, which names none) sent runs
    that trained on the synthetic generator's data and overwrote the production state; refused now, before any
    call. `--data synthetic` asks for it (a demo schedule)."""
    monkeypatch.delenv("KF_PIPELINES_ENDPOINT", raising=False)
    base = ["schedule", "--dry-run", "--state-uri", "gs://my-bucket/coea", "--out", str(tmp_path), *args]
    code, out, err = run_cli(base, capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: option --data: {shown}: every scheduled run would train on generated synthetic "
                          "data and overwrite the state at gs://my-bucket/coea"), err
    assert "fix: name the log: --data parquet:gs://BUCKET/events/" in err
    code, out, err = run_cli([*base, "--data", "synthetic"], capsys)
    assert code == 0 and "POST" in out, err


def test_schedule_takes_cron_and_state_from_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:

    code, out, _ = run_cli(["schedule", "--dry-run", "--settings", str(REPO / "k8s/overlays/cpu-dev/pipeline.yaml"),
                         "--out", str(tmp_path), "--data", "synthetic"], capsys)
    body = recurring_run_body(out)
    assert code == 0 and body["trigger"]["cron_schedule"]["cron"] == "0 0 * * * *"
    assert body["runtime_config"]["parameters"]["state_uri"] == "/cache/coea-state"


def test_a_bad_cron_in_the_settings_file_is_named_there(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Audit (session 53): a 5-field cron in pipeline.yaml was reported as `option --cron`, which was not given."""
    settings = tmp_path / "pipeline.yaml"
    settings.write_text("cron: '0 3 * * *'\n")
    code, _, err = run_cli(["schedule", "--dry-run", "--settings", str(settings), "--out", str(tmp_path / "b"),
                            "--data", "synthetic"], capsys)
    assert code == 2 and err.startswith(f"error: {settings}, option cron: cron '0 3 * * *' has 5 fields"), err


@pytest.mark.parametrize(("args", "message"), [
    (["--dry-run", "--cron", "0 3 * * *"], "5 fields"),
    ([], "no KFP endpoint"),
    (["--dry-run", "--state-uri", "relative/dir"], "neither gs://"),
    (["--dry-run", "--state-uri", "gs://Bad_Bucket/x"], "error: option --state-uri (or the settings' state_uri): "
                                                        "bad bucket name"),
    (["--dry-run", "--drift-threshold", "0"], "drift threshold"),
    (["--dry-run", "--token", "t", "--in-cluster"], "choose one way to authenticate"),
    (["--dry-run", "--gcs-export-uri", "notgs/path"], "option --gcs-export-uri: not a gs:// URI"),
    (["--dry-run", "--gcs-export-uri", "gs://Bad_Bucket/x"], "option --gcs-export-uri: bad bucket name"),
    (["--dry-run", "--namespace", "Bad_NS"], "option --namespace: namespace 'Bad_NS' is not a Kubernetes namespace"),
    (["--dry-run", "--namespace", "coea/x"], "is not a Kubernetes namespace name"),
    (["--dry-run", "--job-name", " "], "option --job-name: empty job name"),
    (["--dry-run", "--cron", ""], "option --cron: empty cron"),
    # session 55: a path on this machine, which no scheduled run's pod can read, was sent as it was
    (["--dry-run", "--data", "csv:my_log.csv"], "'csv:my_log.csv' is a path on this machine"),
    (["--dry-run", "--data", "movielens:../shared/data/ml-1m"], "fix: put the log in a bucket: --data parquet:gs://"),
    (["--dry-run", "--state-uri", "gs://my-bucket/state", "--data", "parquet:/cache/events/"],
     "a path on this machine"),
])
def test_schedule_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KF_PIPELINES_ENDPOINT", raising=False)
    code, out, err = run_cli(["schedule", "--out", str(tmp_path), "--data", "synthetic", *args], capsys)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_a_log_on_the_cache_volume_is_readable_when_the_state_steps_mount_it(tmp_path: Path, capsys) -> None:
    """With the state on the cache volume (the cpu-dev overlay) the steps mount it, so a log under /cache/ is fine;
    so is gs://."""
    for data, state in (("parquet:/cache/events/", "/cache/coea-state"), ("csv:gs://my-bucket/log.csv", "gs://my-bucket/state")):
        code, _, err = run_cli(["schedule", "--out", str(tmp_path), "--dry-run", "--data", data, "--state-uri", state],
                               capsys)
        assert code == 0, err


def test_compile_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["compile", "--out", str(tmp_path)], capsys)
    assert code == 0 and "warning:" not in err  # the WARNING lines of the default image and root: test_deploy_warnings*
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coea_recurring.yaml", "coea_training.yaml"]
    assert "coea-training: " in out and "coea-recurring: " in out


def test_compile_with_a_placeholder_state_uri_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The overlays' settings hold placeholders (gs://REPLACE_ME-coea-bucket/...): compile still writes the
    pipelines (a run can pass its own state_uri) but says the default is not usable; upload/schedule refuse it."""
    settings = REPO / "k8s" / "overlays" / "gpu-pool" / "pipeline.yaml"
    code, _, err = run_cli(["compile", "--out", str(tmp_path / "c"), "--settings", str(settings)], capsys)
    assert code == 0 and "warning: the compiled state_uri default is not usable" in err and "REPLACE_ME" in err
    assert (tmp_path / "c" / "coea_training.yaml").is_file()
