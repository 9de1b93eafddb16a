"""DeploymentSettings: defaults, the k8s pipeline.yaml files, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from coea.errors import CoeaInputError
from components.settings import DeploymentSettings, StageClass
from tests.helpers import REPO

PIPELINE_YAMLS = [REPO / "k8s" / p / "pipeline.yaml" for p in ("base", "overlays/gpu-pool", "overlays/cpu-dev")]


@pytest.mark.parametrize("path", PIPELINE_YAMLS, ids=lambda p: p.parent.name)
def test_reads_every_k8s_pipeline_yaml(path: Path) -> None:
    raw = yaml.safe_load(path.read_text())
    settings = DeploymentSettings.from_yaml(path)
    assert settings.base_image == raw["image"] and settings.state_uri == raw["state_uri"]
    assert settings.gpu_node_selector_key == raw["gpu_node_selector_key"]
    assert settings.accelerator_type == raw["accelerator_type"] and settings.cron == raw["cron"]
    assert settings.cache_pvc_name == "coea-model-cache" and settings.cache_mount_path == "/cache"


def test_defaults_and_state_on_volume() -> None:
    s = DeploymentSettings()
    assert s.accelerator_type == "nvidia.com/gpu" and s.accelerator_limit == 1
    assert s.requests(StageClass.TRAIN) == ("4", "16Gi")
    assert s.state_on_cache_volume
    assert not DeploymentSettings(state_uri="gs://b/coea").state_on_cache_volume


@pytest.mark.parametrize(("text", "message"), [
    ("image: x\nnot_a_key: 1\n", "unknown key"),
    ("gpu_retrys: 2\n", r"unknown key 'gpu_retrys' \(did you mean 'gpu_retries'\?\)"),
    ("gpu_toleration_effect: Sometimes\n", "gpu_toleration_effect"),
    ("image: ''\n", "must not be empty"),
    ("- a\n- b\n", "mapping"),
    ("image: reg/coea@sha256:12ab\n", "malformed digest"),
    ("gpu_image: 'reg/Coea:1'\n", "gpu_image: image 'reg/Coea:1' is not a valid reference"),
    ("pipeline_root: /tmp/root\n", "pipeline_root '/tmp/root' must start with one of"),
    ("relevance_from_novelty: 'yes please'\n", "relevance_from_novelty must be true or false"),
    ("gpu_retries: -1\n", "gpu_retries must be >= 0"),
    ("memory_request_train: 16GB\n", "memory_request_train '16GB' is not a Kubernetes memory quantity"),
    ("cpu_request_train: lots\n", "cpu_request_train 'lots' is not a Kubernetes CPU quantity"),
    ("limits_train: 'abc,def'\n", r"limits_train \(cpu\) 'abc' is not a Kubernetes CPU quantity"),
    ("gpu_cache_size: lots\n", "gpu_cache_size 'lots' is not a Kubernetes memory quantity"),
    ("io_retries: 1.5\n", "io_retries must be a whole number, got 1.5"),
    ("accelerator_limit: true\n", "accelerator_limit must be a whole number, got True"),
    ("gpu_timeout_seconds: 6h\n", "gpu_timeout_seconds must be a whole number, got '6h'"),
    ("cache_mount_path: cache\n", "cache_mount_path 'cache' must be an absolute path"),
    ("state_uri: relative/state\n", "state_uri 'relative/state' must be gs://BUCKET/PREFIX or an absolute path"),
    # audit (session 53): both were read silently, the last value (or base_image over image) kept
    ("state_uri: /a\nstate_uri: /b\n", "line 2: key 'state_uri' is given twice in the same mapping"),
    ("image: reg/coea:1\nbase_image: reg/coea:2\n", "image and base_image are the same setting; keep one"),
])
def test_bad_settings_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    with pytest.raises(CoeaInputError, match=message) as err:
        DeploymentSettings.from_yaml(path)
    assert str(err.value).count(str(path)) == 1  # the file is named once


def test_gpu_image_only_for_gpu_stages_and_limits_per_class() -> None:
    digest = "reg.example:5000/team/coea-gpu@sha256:" + "ab" * 32
    s = DeploymentSettings(base_image="reg.example:5000/team/coea:0.1.0-abc", gpu_image=digest)
    assert {stage: s.image_of(stage) for stage in ("prepare_data", "sft_relevance", "pco_loop", "evaluate")} == {
        "prepare_data": s.base_image, "sft_relevance": digest, "pco_loop": digest, "evaluate": s.base_image}
    assert DeploymentSettings().image_of("dsie_group") == "coea:latest"  # no gpu_image: the base image
    assert s.limits(StageClass.TRAIN) == ("8", "32Gi") and s.limits(StageClass.LIGHT) == ("1", "4Gi")
    with pytest.raises(ValueError, match="limits_train"):
        DeploymentSettings(limits_train="8")


def test_missing_settings_file(tmp_path: Path) -> None:
    with pytest.raises(CoeaInputError, match="not found"):
        DeploymentSettings.from_yaml(tmp_path / "nope.yaml")


def test_library_and_cli_do_not_import_kfp() -> None:
    """Importing the CLI, the library, the settings and the schedule/upload/API helpers loads no kfp (only the component
    and pipeline modules that build or run pipelines do; tests/unit/test_layers.py checks the library's source)."""
    import subprocess
    import sys

    code = ("import sys, coea.cli, coea.stages, coea.state, components, components.settings, pipelines, "
            "pipelines.schedule, pipelines.kfp_api, pipelines.upload; "
            "print(sorted(m for m in sys.modules if m == 'kfp' or m.startswith('kfp.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"
