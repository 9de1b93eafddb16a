"""Dockerfiles/: a light static check of the two images (no Docker engine here, so nothing is built):
non-root user, torch before the package, every package folder of pyproject.toml copied before the install,
no remote ADD, no secret-looking ENV/ARG, cache paths under
/cache, no ENTRYPOINT; and constraints.txt pins every dependency of pyproject.toml."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = {"cpu": REPO / "Dockerfiles" / "cpu.Dockerfile", "gpu": REPO / "Dockerfiles" / "gpu.Dockerfile"}
CONSTRAINTS = REPO / "Dockerfiles" / "constraints.txt"
SECRET_NAME = re.compile(r"KEY|TOKEN|PASSWORD|SECRET|CREDENTIAL", re.IGNORECASE)


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, backslash continuations joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        word, _, rest = full.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, f"{path}: dangling line continuation"
    return out


def final_stage(instrs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (word, _) in enumerate(instrs) if word == "FROM")
    return instrs[last_from:]


def env_names(args: str) -> list[str]:
    return re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", args)


@pytest.fixture(params=sorted(DOCKERFILES), name="flavour")
def _flavour(request) -> str:
    return request.param


def test_runs_as_non_root_with_workdir_and_no_entrypoint(flavour):
    stage = final_stage(instructions(DOCKERFILES[flavour]))
    users = [args for word, args in stage if word == "USER"]
    assert users, "the final stage sets no USER (it would run as root)"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0") and user == "1000"
    assert ("WORKDIR", "/app") in stage
    assert not [w for w, _ in instructions(DOCKERFILES[flavour]) if w in ("ENTRYPOINT", "CMD")]


def test_torch_is_installed_before_the_package_with_constraints(flavour):
    runs = [args for word, args in instructions(DOCKERFILES[flavour]) if word == "RUN"]
    torch_at = next(i for i, r in enumerate(runs) if re.search(r"pip install .*torch==", r))
    package_at = next(i for i, r in enumerate(runs) if re.search(r"pip install .*-c \S+ \.(\s|$)", r))
    assert torch_at < package_at
    assert "--index-url" in runs[torch_at]
    assert "constraints.txt" in runs[package_at]


@pytest.mark.parametrize("flavour", sorted(DOCKERFILES))
def test_the_images_torch_is_the_version_every_other_install_pins(flavour):
    """The Dockerfile's ``ARG TORCH_VERSION`` (its CPU or CUDA wheel) is the torch the constraints pin and the
    Makefile's local install uses: a different pin would make ``pip install -r constraints.txt`` replace the image's
    wheel with PyPI's default build."""
    arg = re.search(r"^ARG TORCH_VERSION=(\S+)$", DOCKERFILES[flavour].read_text(), re.M)
    pinned = re.search(r"^torch==(\S+)$", (REPO / "Dockerfiles" / "constraints.txt").read_text(), re.M)
    made = re.search(r"^TORCH_VERSION := (\S+)$", (REPO / "Makefile").read_text(), re.M)
    assert arg and pinned and made, "a torch version is not where this test reads it"
    assert arg[1] == pinned[1] == made[1], (arg[1], pinned[1], made[1])


def test_every_package_folder_is_copied_before_the_install(flavour):
    """pyproject.toml installs coea from src/ and components/, pipelines/ from the root: each must be in the image."""
    find = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    tops = {name for name in find["include"] if "." not in name and "*" not in name}
    folders = {f"{where}/{name}".removeprefix("./") for name in tops for where in find["where"]
               if (REPO / where / name / "__init__.py").is_file()}
    assert folders == {"src/coea", "components", "pipelines"}
    instrs = instructions(DOCKERFILES[flavour])
    install = next(i for i, (w, a) in enumerate(instrs) if w == "RUN" and re.search(r"pip install .*-c \S+ \.", a))
    copied = {a.split()[0].rstrip("/") for w, a in instrs[:install] if w == "COPY"}
    for folder in folders:
        assert folder in copied or folder.split("/")[0] in copied, f"{folder} is not copied before `pip install .`"


def test_no_remote_add_and_no_secrets(flavour):
    instrs = instructions(DOCKERFILES[flavour])
    for word, args in instrs:
        if word == "ADD":
            assert not re.search(r"https?://|git@", args), f"ADD from a URL: {args}"
        if word in ("ENV", "ARG"):
            names = env_names(args) or [args.split("=")[0]]
            assert not [n for n in names if SECRET_NAME.search(n)], f"secret-looking {word}: {args}"
        assert not (word == "COPY" and re.search(r"\.env\b|id_rsa|credentials", args))


def test_environment_for_caches_and_pip(flavour):
    stage = final_stage(instructions(DOCKERFILES[flavour]))
    env = " ".join(args for word, args in stage if word == "ENV")
    assert "PIP_NO_CACHE_DIR=1" in env
    assert "HF_HOME=/cache/" in env and "TORCH_HOME=/cache/" in env
    assert "PATH=/opt/venv/bin:" in env


def test_base_images():
    cpu_text = DOCKERFILES["cpu"].read_text()
    gpu_text = DOCKERFILES["gpu"].read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in cpu_text
    assert "download.pytorch.org/whl/cpu" in cpu_text
    assert re.search(r"ARG CUDA_IMAGE=nvidia/cuda:\S+-ubuntu22\.04", gpu_text)
    assert "python3.11" in gpu_text


def test_constraints_pin_every_dependency_and_satisfy_pyproject():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pins: dict[str, str] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", line
            pins[canonicalize_name(req.name)] = spec.version
    for dep in deps:
        req = Requirement(dep)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is a dependency but not pinned in {CONSTRAINTS.name}"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} violates {dep}"


def test_dockerignore_keeps_the_context_small():
    ignored = {
        line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "runs", "tests", "**/__pycache__"} <= ignored
    assert not ignored & {"src", "pyproject.toml", "README.md", "Dockerfiles"}
