"""Cron validation, `coea schedule` (dry run, errors, a fake KFP client) and `coea compile`."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from coea.errors import CoeaInputError
from pipelines.schedule import validate_cron
from tests.pipeline.pipeline_helpers import run_cli as _run


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


def test_schedule_dry_run_prints_the_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["schedule", "--dry-run", "--cron", "0 30 2 * * *", "--state-uri", "gs://my-bucket/coea",
                         "--out", str(tmp_path), "--drift-threshold", "0.4"], capsys)
    assert code == 0
    request = json.loads(out)
    assert request["dry_run"] is True and request["host"] is None
    assert request["cron_expression"] == "0 30 2 * * *" and request["job_name"] == "coea-recurring"
    assert request["service_account"] == "coea-pipeline-runner" and request["max_concurrency"] == 1
    assert Path(request["pipeline_package_path"]) == tmp_path / "coea_recurring.yaml"
    assert (tmp_path / "coea_recurring.yaml").is_file()
    params = request["params"]
    assert params["state_uri"] == "gs://my-bucket/coea" and params["drift_threshold"] == 0.4
    assert json.loads(params["data_config"])["data"]["spec"] == "synthetic"


def test_schedule_takes_cron_and_state_from_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.helpers import REPO

    code, out, _ = _run(["schedule", "--dry-run", "--settings", str(REPO / "k8s/overlays/cpu-dev/pipeline.yaml"),
                         "--out", str(tmp_path)], capsys)
    request = json.loads(out)
    assert code == 0 and request["cron_expression"] == "0 0 * * * *"
    assert request["params"]["state_uri"] == "/cache/coea-state"


@pytest.mark.parametrize(("args", "message"), [
    (["--dry-run", "--cron", "0 3 * * *"], "5 fields"),
    ([], "--host is required"),
    (["--dry-run", "--state-uri", "relative/dir"], "neither gs://"),
    (["--dry-run", "--state-uri", "gs://Bad_Bucket/x"], "bad bucket name"),
    (["--dry-run", "--drift-threshold", "0"], "drift threshold"),
])
def test_schedule_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                message: str) -> None:
    code, out, err = _run(["schedule", "--out", str(tmp_path), *args], capsys)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


class FakeClient:
    """Records what kfp.Client would have been asked."""

    calls: list[tuple[str, dict[str, Any]]] = []

    def __init__(self, host: str | None = None, **kwargs: Any) -> None:
        self.calls.append(("init", {"host": host, **kwargs}))

    def create_experiment(self, name: str, namespace: str | None = None) -> Any:
        self.calls.append(("create_experiment", {"name": name, "namespace": namespace}))
        return SimpleNamespace(experiment_id="exp-1")

    def create_recurring_run(self, **kwargs: Any) -> Any:
        self.calls.append(("create_recurring_run", kwargs))
        return SimpleNamespace(recurring_run_id="rr-42")


def test_schedule_calls_create_recurring_run(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import kfp

    FakeClient.calls = []
    monkeypatch.setattr(kfp, "Client", FakeClient)
    code, out, _ = _run(["schedule", "--host", "https://kfp.example.com", "--state-uri", "gs://b-1/s",
                         "--out", str(tmp_path), "--namespace", "coea"], capsys)
    assert code == 0 and "rr-42" in out
    (_, init), (_, exp), (_, run) = FakeClient.calls
    assert init["host"] == "https://kfp.example.com" and exp == {"name": "coea", "namespace": "coea"}
    assert run["experiment_id"] == "exp-1" and run["cron_expression"] == "0 0 3 * * *"
    assert run["pipeline_package_path"] == str(tmp_path / "coea_recurring.yaml")
    assert run["service_account"] == "coea-pipeline-runner" and run["no_catchup"] is True
    assert run["params"]["state_uri"] == "gs://b-1/s"


def test_compile_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["compile", "--out", str(tmp_path)], capsys)
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coea_recurring.yaml", "coea_training.yaml"]
    assert "coea-training: " in out and "coea-recurring: " in out
