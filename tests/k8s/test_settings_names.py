"""Deployment settings that Kubernetes or KFP would reject later fail when the settings file is read (so at
`coea compile`/`upload`/`schedule`): label keys and values, PVC and service-account names, an empty pipeline root
bucket, a GPU deadline no step can meet, an empty experiment; and `coea schedule`'s --experiment and the compile
warning about an unusable state_uri."""

from __future__ import annotations

from pathlib import Path

import pytest

from coea.errors import CoeaInputError
from components.settings import MIN_GPU_TIMEOUT_SECONDS, DeploymentSettings, label_key_problem
from tests.helpers import REPO, run_cli

SHIPPED = sorted((REPO / "k8s").glob("**/pipeline.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(REPO)))
def test_shipped_settings_pass_the_name_checks(path: Path) -> None:
    DeploymentSettings.from_yaml(path)


@pytest.mark.parametrize("key", ["nvidia.com/gpu.present", "coea.io/pool", "gpu", "cloud.google.com/gke-accelerator",
                                 "A_b.c-9", "a" * 63, "example.com/" + "a" * 63])
def test_good_label_keys(key: str) -> None:
    assert label_key_problem(key) is None


@pytest.mark.parametrize("key", ["nvidia gpu/present!", "nvidia.com/gpu present", "Nvidia.com/gpu", "-gpu",
                                 "gpu-", "a" * 64, "/gpu", "nvidia.com/", "a/b/c"])
def test_bad_label_keys(key: str) -> None:
    assert label_key_problem(key)


@pytest.mark.parametrize(("text", "message"), [
    ('gpu_node_selector_key: "nvidia gpu/present!"\ngpu_node_selector_value: "true"\n',
     "gpu_node_selector_key 'nvidia gpu/present!' is not a "
                                                       "Kubernetes label key"),
    ('gpu_toleration_key: "nvidia.com/gpu!"\n', "gpu_toleration_key 'nvidia.com/gpu!' is not a Kubernetes label key"),
    ('gpu_node_selector_key: pool\ngpu_node_selector_value: "yes please"\n',
     "gpu_node_selector_value 'yes please' is not a Kubernetes label value"),
    ('gpu_toleration_value: "-x"\n', "gpu_toleration_value '-x' is not a Kubernetes label value"),
    ("cache_pvc_name: Coea_Cache\nstate_uri: /cache/coea-state\n", "cache_pvc_name 'Coea_Cache' is not a Kubernetes "
                                                                   "object name"),
    ("model_pvc_name: base.models-\n", "model_pvc_name 'base.models-' is not a Kubernetes object name"),
    ("service_account: Coea Runner\n", "service_account 'Coea Runner' is not a Kubernetes object name"),
    ('cache_pvc_name: ""\nstate_uri: /cache/coea-state\n', "cache_pvc_name is empty while state_uri"),
    ("gpu_timeout_seconds: 30\n", f"gpu_timeout_seconds 30 is below {MIN_GPU_TIMEOUT_SECONDS}"),
    ('pipeline_root: "gs://"\n', "pipeline_root 'gs://' names no bucket"),
    ('pipeline_root: "s3:///"\n', "pipeline_root 's3:///' names no bucket"),
    ('experiment: ""\n', "experiment must not be empty"),
    ('experiment: "  "\n', "experiment must not be empty"),
])
def test_bad_settings_fail_when_read(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CoeaInputError) as info:
        DeploymentSettings.from_yaml(path)
    assert message in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("changes", [
    {"gpu_timeout_seconds": 0}, {"gpu_timeout_seconds": MIN_GPU_TIMEOUT_SECONDS},
    {"cache_pvc_name": "", "state_uri": "gs://my-bucket/state"}, {"model_pvc_name": "coea-base-models"},
    {"service_account": ""}, {"gpu_node_selector_key": "", "gpu_node_selector_value": ""},
    {"gpu_toleration_key": "", "gpu_toleration_value": "present"}, {"pipeline_root": "minio://mlpipeline/v2"},
])
def test_good_settings(changes: dict) -> None:
    DeploymentSettings(**changes)


@pytest.mark.parametrize(("text", "message"), [
    ('pipeline_root: "gs://"\n', "pipeline_root 'gs://'"),
    ('gpu_node_selector_key: "nvidia gpu/present!"\ngpu_node_selector_value: "true"\n',
     "is not a Kubernetes label key"),
    ("cache_pvc_name: Coea_Cache\n", "is not a Kubernetes object name"),
    ("gpu_timeout_seconds: 30\n", "gpu_timeout_seconds 30 is below"),
])
def test_compile_refuses_bad_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str,
                                      message: str) -> None:
    settings = tmp_path / "pipeline.yaml"
    settings.write_text(text, encoding="utf-8")
    code, out, err = run_cli(["compile", "--out", str(tmp_path / "build"), "--settings", str(settings)], capsys)
    assert code == 2 and out == "" and not (tmp_path / "build").exists()
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_compile_warning_says_upload_and_schedule_refuse_the_state_uri(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    settings = tmp_path / "pipeline.yaml"
    settings.write_text('state_uri: "gs://"\n', encoding="utf-8")
    code, _, err = run_cli(["compile", "--out", str(tmp_path / "build"), "--settings", str(settings)], capsys)
    assert code == 0 and "warning: the compiled state_uri default is not usable" in err
    assert "coea upload and coea schedule refuse it" in err and "--state-uri" in err


@pytest.mark.parametrize("args", [["--experiment", ""], ["--experiment", " "], ["--settings", "EMPTY"]])
def test_schedule_refuses_an_empty_experiment(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    monkeypatch.delenv("KF_PIPELINES_ENDPOINT", raising=False)
    if args[-1] == "EMPTY":
        args[-1] = str(tmp_path / "pipeline.yaml")
        Path(args[-1]).write_text('experiment: ""\nstate_uri: gs://my-bucket/coea/state\n', encoding="utf-8")
    code, out, err = run_cli(["schedule", "--dry-run", "--state-uri", "gs://my-bucket/coea/state", "--data",
                              "synthetic", "--out", str(tmp_path / "build"), *args], capsys)
    assert code == 2 and out == "" and "POST" not in out
    assert err.startswith("error: ") and "experiment" in err and len(err.strip().splitlines()) == 1
