"""`coea compile`, `upload --dry-run` and `schedule --dry-run` on settings a cluster cannot use (session 43
walkthrough: they silently built a package with image coea:latest, no pipeline root and state /cache/coea-state):
one WARNING line on stderr per problem after the command succeeded, and the dry run's output names the image(s),
pipeline root and state URI it would use."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_cli

DIGEST = "europe-docker.pkg.dev/proj/coea/coea@sha256:" + "0123456789abcdef" * 4
READY = ["--image", DIGEST, "--pipeline-root", "gs://my-bucket/kfp-root"]


@pytest.fixture(autouse=True)
def _no_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KF_PIPELINES_ENDPOINT", raising=False)


def warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("WARNING")]


def test_compile_with_the_defaults_warns_about_the_image_and_the_pipeline_root(tmp_path: Path, capsys) -> None:
    code, out, err = run_cli(["compile", "--out", str(tmp_path)], capsys)
    assert code == 0 and "coea-training: " in out and "coea-recurring: " in out
    image, root = warnings(err)
    assert image.startswith("WARNING: image coea:latest names no registry, so a cluster cannot pull it"), err
    assert root.startswith("WARNING: no pipeline root"), err


def test_compile_for_a_cluster_warns_about_nothing(tmp_path: Path, capsys) -> None:
    code, _, err = run_cli(["compile", "--out", str(tmp_path), *READY], capsys)
    assert code == 0 and err == "", err


@pytest.mark.parametrize("command", [["upload"], ["schedule", "--data", "synthetic"]])
def test_a_dry_run_says_no_endpoint_was_given_and_what_the_package_uses(tmp_path: Path, capsys,
                                                                          command: list[str]) -> None:
    code, out, err = run_cli([*command, "--dry-run", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("dry run: nothing sent (no endpoint given: --host or KF_PIPELINES_ENDPOINT)")
    assert lines[1] == ("the package uses: image coea:latest; pipeline root none (the KFP server's default); "
                        "state_uri /cache/coea-state (on the cache volume coea-model-cache at /cache)")
    assert len(warnings(err)) == 2, err


@pytest.mark.parametrize("command", [["upload"], ["schedule", "--data", "parquet:gs://my-bucket/events/"]])
def test_a_dry_run_for_a_cluster_names_its_image_root_and_state(tmp_path: Path, capsys, command: list[str]) -> None:
    code, out, err = run_cli([*command, "--dry-run", "--out", str(tmp_path), "--state-uri",
                              "gs://my-bucket/coea/state", *READY], capsys)
    assert code == 0 and warnings(err) == [], err
    assert out.splitlines()[1] == (f"the package uses: image {DIGEST}; pipeline root gs://my-bucket/kfp-root; "
                                   "state_uri gs://my-bucket/coea/state")
