"""Versioned uploads: each compiled pipeline becomes a KFP pipeline with one version per distinct package.

A version is named ``<package version>-<git sha>-<spec hash>``: the coea release, the 12-digit commit
(``git rev-parse --short=12 HEAD``, else the image's ``COEA_GIT_SHA``, else ``nogit``) and the first 8 hex digits of
the SHA-256 of the compiled pipeline (its YAML documents without ``sdkVersion``). The hash is there because one
commit compiles into different packages (another ``--image`` digest, GPU labels, pipeline root or state URI):
re-uploading the very same package finds its version and uploads nothing, while a package that differs gets a
version of its own instead of silently keeping the old one's images.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import coea
from pipelines.kfp_api import KfpApi

if TYPE_CHECKING:
    from components.settings import DeploymentSettings

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class PipelineVersion:
    """A pipeline version on the server: names, ids, and whether this call uploaded it (False: it was there)."""

    pipeline_name: str
    pipeline_id: str
    version_name: str
    version_id: str
    uploaded: bool

    def describe(self) -> str:
        state = "uploaded" if self.uploaded else "already on the server (nothing uploaded)"
        return (f"{self.pipeline_name} (pipeline {self.pipeline_id}): version {self.version_name} "
                f"({self.version_id}) {state}")


def dry_run_header(endpoint: str | None) -> str:
    """The first line of a ``--dry-run``: where nothing was sent (the endpoint, or that none was given)."""
    where = f"to {endpoint}" if endpoint else "(no endpoint given: --host or KF_PIPELINES_ENDPOINT)"
    return f"dry run: nothing sent {where}; lookups are shown finding nothing"


def dry_run_report(api: KfpApi, settings: DeploymentSettings) -> list[str]:
    """What ``--dry-run`` prints: where nothing was sent, what the package uses (image(s), pipeline root,
    state URI: :func:`pipelines.compile.deployment_summary`), then one line per API call."""
    from pipelines.compile import deployment_summary

    return [dry_run_header(api.endpoint), deployment_summary(settings), *(call.line() for call in api.calls)]


def git_sha(repo: Path = REPO_ROOT) -> str:
    """The checkout's 12-digit commit, else the image's ``COEA_GIT_SHA``, else ``nogit``."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=repo, capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        out = None
    if out is not None and out.returncode == 0 and out.stdout.strip():
        return out.stdout.strip()
    sha = os.environ.get("COEA_GIT_SHA", "")
    return sha if sha and sha != "unknown" else "nogit"


def spec_hash(package: Path) -> str:
    """8 hex digits of the SHA-256 of the compiled package's documents (``sdkVersion`` left out)."""
    from pipelines.compile import load_compiled  # loads kfp's compiler

    text = json.dumps(load_compiled(package), sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def version_name(package: Path, sha: str | None = None) -> str:
    """``<coea version>-<git sha>-<spec hash>``, e.g. ``0.1.0-1a2b3c4d5e6f-9f8e7d6c``."""
    return f"{coea.__version__}-{sha or git_sha()}-{spec_hash(package)}"


def ensure_version(api: KfpApi, package: Path, pipeline_name: str, description: str, *,
                   namespace: str | None = None, name: str | None = None) -> PipelineVersion:
    """Register the pipeline when it is new, then upload ``package`` as the version ``name`` (default
    :func:`version_name`) unless that version exists: uploading the same package twice is a no-op."""
    name = name or version_name(package)
    pipeline_id = api.pipeline_id(pipeline_name, namespace)
    if pipeline_id is None:
        pipeline_id = api.upload_pipeline(package, pipeline_name, description, namespace)
    version_id = api.version_id(pipeline_id, name)
    if version_id is not None:
        return PipelineVersion(pipeline_name, pipeline_id, name, version_id, uploaded=False)
    version_id = api.upload_version(package, pipeline_id, name, description)
    return PipelineVersion(pipeline_name, pipeline_id, name, version_id, uploaded=True)
