"""`make images` and the image provenance, offline (no Docker engine here): the Makefile target's command lines
(`make -n`), the whole target against a stand-in `docker` whose printed `coea compile` command is then run, the
GPU image's torch build against its CUDA base, and the version labels of both Dockerfiles."""

from __future__ import annotations

import hashlib
import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.k8s.test_dockerfiles import DOCKERFILES, final_stage, instructions

REPO = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
# a stand-in docker: logs its arguments; `image inspect` answers a registry digest derived from the reference
FAKE_DOCKER = """#!/bin/sh
echo "$@" >> "$FAKE_DOCKER_LOG"
if [ "$1 $2" = "image inspect" ]; then
  echo "${5%:*}@sha256:$(printf %s "$5" | sha256sum | cut -c1-64)"
fi
"""


def git_sha() -> str:
    return subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout.strip()


def make(*args: str, env: dict[str, str] | None = None) -> list[str]:
    out = subprocess.run(["make", "--no-print-directory", *args], cwd=REPO, capture_output=True, text=True,
                         check=True, env=env)
    return out.stdout.splitlines()


def test_make_n_images_builds_both_dockerfiles_tagged_version_and_sha() -> None:
    tag = f"{VERSION}-{git_sha()}"
    builds = [shlex.split(line) for line in make("-n", "images", "IMAGE=reg.example/coea")
              if line.startswith("docker build")]
    assert [b[b.index("-f") + 1] for b in builds] == ["Dockerfiles/cpu.Dockerfile", "Dockerfiles/gpu.Dockerfile"]
    assert [b[b.index("-t") + 1] for b in builds] == [f"reg.example/coea:{tag}", f"reg.example/coea:{tag}-gpu"]
    for build in builds:
        assert f"COEA_VERSION={VERSION}" in build and f"COEA_GIT_SHA={git_sha()}" in build and build[-1] == "."


def test_make_images_prints_a_compile_command_that_pins_both_digests(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The whole target with PUSH=1 against a stand-in docker: build, build, push, push, then one `coea compile`
    line with both registry digests, which compiles pipelines whose executors carry exactly those references."""
    import os

    from tests.helpers import run_cli

    docker = tmp_path / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    log = tmp_path / "docker.log"
    env = {**os.environ, "FAKE_DOCKER_LOG": str(log)}
    lines = make("images", f"DOCKER={docker}", "IMAGE=reg.example/coea", "PUSH=1", env=env)
    assert [line.split()[0] for line in log.read_text().splitlines()] == ["build", "build", "push", "push",
                                                                          "image", "image"]
    (command,) = [shlex.split(line) for line in lines if line.startswith("coea compile")]
    cpu, gpu = command[command.index("--image") + 1], command[command.index("--gpu-image") + 1]
    assert re.fullmatch(r"reg\.example/coea@sha256:[0-9a-f]{64}", cpu) and cpu != gpu
    tag = f"{VERSION}-{git_sha()}"  # each flag gets its own image's digest (the stand-in's: a hash of the reference)
    for flag, ref in ((cpu, f"reg.example/coea:{tag}"), (gpu, f"reg.example/coea:{tag}-gpu")):
        assert flag == f"reg.example/coea@sha256:{hashlib.sha256(ref.encode()).hexdigest()}", (flag, ref)
    code, _, err = run_cli([*command[1:], "--out", str(tmp_path / "build")], capsys)
    assert code == 0, err
    text = (tmp_path / "build" / "coea_training.yaml").read_text()
    assert set(re.findall(r"image: (\S+)", text)) == {cpu, gpu}


def test_gpu_torch_build_matches_the_cuda_base_image() -> None:
    text = DOCKERFILES["gpu"].read_text()
    cuda = re.search(r"ARG CUDA_IMAGE=nvidia/cuda:(\d+)\.(\d+)\.\d+-base-", text)
    index = re.search(r"ARG TORCH_INDEX_URL=https://download\.pytorch\.org/whl/cu(\d+)", text)
    assert cuda and index, "the GPU image names neither a CUDA base nor a CUDA torch index"
    assert index[1] == f"{cuda[1]}{cuda[2]}", f"torch cu{index[1]} on CUDA {cuda[1]}.{cuda[2]}"
    assert "R580" in text  # the driver requirement of CUDA 13.0 is written down


@pytest.mark.parametrize("flavour", sorted(DOCKERFILES))
def test_images_carry_version_and_commit(flavour: str) -> None:
    stage = final_stage(instructions(DOCKERFILES[flavour]))
    args = {a.split("=")[0] for w, a in stage if w == "ARG"}
    assert {"COEA_VERSION", "COEA_GIT_SHA"} <= args
    labels = " ".join(a for w, a in stage if w == "LABEL")
    assert 'org.opencontainers.image.version="${COEA_VERSION}"' in labels
    assert 'org.opencontainers.image.revision="${COEA_GIT_SHA}"' in labels
    assert ("ENV", "COEA_GIT_SHA=${COEA_GIT_SHA}") in stage  # read by coea.stages.record_version
