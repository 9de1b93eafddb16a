"""What compile, upload and schedule say about a package a cluster cannot run (session 43 walkthrough: without
--settings/--image they silently built one with image coea:latest and no pipeline root): one WARNING line per
problem, and a dry run names the image(s), pipeline root and state URI it would use."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.settings import DeploymentSettings
from pipelines.compile import deployment_summary, deployment_warnings
from pipelines.kfp_api import ApiCall, KfpApi
from pipelines.upload import dry_run_header, dry_run_report

REF = "europe-docker.pkg.dev/p/r/coea:0.1.0"
DIGEST = "@sha256:" + "a" * 64
READY = DeploymentSettings(base_image=REF, pipeline_root="gs://b/kfp-root", state_uri="gs://b/coea/state")


def test_the_default_settings_warn_about_the_image_and_the_missing_pipeline_root():
    image, root = deployment_warnings(DeploymentSettings())
    assert image.startswith("WARNING: image coea:latest names no registry, so a cluster cannot pull it"), image
    assert "--image REGISTRY/coea:TAG" in image
    assert root.startswith("WARNING: no pipeline root") and "--pipeline-root gs://BUCKET/ROOT" in root, root


def test_settings_ready_for_a_cluster_give_no_warning():
    assert deployment_warnings(READY) == []
    assert deployment_warnings(DeploymentSettings(base_image="localhost:5000/coea" + DIGEST,
                                                  pipeline_root="minio://mlpipeline/v2")) == []


@pytest.mark.parametrize(("changes", "expected"), [
    ({"base_image": "coea:0.1.0"}, ["WARNING: image coea:0.1.0 names no registry"]),
    ({"gpu_image": "coea-gpu" + DIGEST}, [f"WARNING: image coea-gpu{DIGEST} names no registry"]),
    ({"pipeline_root": ""}, ["WARNING: no pipeline root"]),
])
def test_each_unusable_setting_gets_its_own_warning_line(changes, expected):
    from dataclasses import replace

    warnings = deployment_warnings(replace(READY, **changes))
    assert len(warnings) == len(expected) and all(w.startswith(e) for w, e in zip(warnings, expected, strict=True))
    assert all("\n" not in w for w in warnings)
    if "gpu_image" in changes:
        assert "--gpu-image REGISTRY/coea-gpu:TAG" in warnings[0]


def test_the_shipped_placeholders_are_warned_about():
    """Audit, session 55: the overlays' ``image: REGISTRY/coea:TAG`` and ``gs://REPLACE_ME-...`` pipeline root
    compiled, uploaded and scheduled without a word (only the state_uri placeholder was refused)."""
    from dataclasses import replace

    from pipelines.compile import PLACEHOLDER_MARKS

    warnings = deployment_warnings(replace(READY, base_image="REGISTRY/coea:TAG", gpu_image="REGISTRY/coea:TAG-gpu",
                                           pipeline_root="gs://REPLACE_ME-coea-bucket/kfp-root"))
    assert [w.split(" is a placeholder")[0] for w in warnings] == [
        "WARNING: image REGISTRY/coea:TAG", "WARNING: gpu_image REGISTRY/coea:TAG-gpu",
        "WARNING: pipeline_root gs://REPLACE_ME-coea-bucket/kfp-root"], warnings
    assert "pass --pipeline-root" in warnings[2]
    for path in ("base", "overlays/standalone", "overlays/gpu-pool"):  # every mark is one the shipped files use
        text = (Path(__file__).parents[2] / "k8s" / path / "pipeline.yaml").read_text()
        assert any(mark in text for mark in PLACEHOLDER_MARKS), path


def test_the_summary_names_the_images_root_and_state():
    assert deployment_summary(DeploymentSettings()) == (
        "the package uses: image coea:latest; pipeline root none (the KFP server's default); state_uri "
        "/cache/coea-state (on the cache volume coea-model-cache at /cache)")
    gpu = DeploymentSettings(base_image=REF, gpu_image=REF + "-gpu", pipeline_root="gs://b/kfp-root",
                             state_uri="gs://b/coea/state")
    assert deployment_summary(gpu) == (f"the package uses: image {REF}, GPU steps {REF}-gpu; pipeline root "
                                       "gs://b/kfp-root; state_uri gs://b/coea/state")


def test_the_dry_run_header_says_no_endpoint_was_given():
    assert dry_run_header(None) == ("dry run: nothing sent (no endpoint given: --host or KF_PIPELINES_ENDPOINT); "
                                    "lookups are shown finding nothing")
    assert dry_run_header("https://kfp.example.com").startswith("dry run: nothing sent to https://kfp.example.com;")


def test_the_dry_run_report_is_header_summary_then_calls():
    api = KfpApi(None, None)
    api.calls.append(ApiCall("GET", "/apis/v2beta1/pipelines"))
    assert dry_run_report(api, READY) == [dry_run_header(None), deployment_summary(READY),
                                          "GET    /apis/v2beta1/pipelines"]
