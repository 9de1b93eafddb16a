"""What built an output: the package version (and the image's git commit) recorded in artifact metadata.

Every Kubeflow component calls :func:`record_version` on its output artifacts, so the UI's artifact view and
ML Metadata say which release of coea produced each model, dataset and report. ``COEA_GIT_SHA`` is set in the
images by ``make images`` (``--build-arg COEA_GIT_SHA=...``); outside an image it is usually absent.
"""

from __future__ import annotations

import os
from typing import Any

import coea

VERSION_KEY = "coea_version"
GIT_SHA_KEY = "coea_git_sha"


def provenance() -> dict[str, str]:
    """``{"coea_version": ...}`` plus ``"coea_git_sha"`` when the ``COEA_GIT_SHA`` environment variable is set."""
    out = {VERSION_KEY: coea.__version__}
    sha = os.environ.get("COEA_GIT_SHA", "")
    if sha and sha != "unknown":  # "unknown": an image built without make images
        out[GIT_SHA_KEY] = sha
    return out


def record_version(*artifacts: Any) -> None:
    """Add :func:`provenance` to the ``metadata`` dict of each artifact (anything with one, e.g. a KFP
    ``Output[Model]``)."""
    for artifact in artifacts:
        artifact.metadata.update(provenance())
