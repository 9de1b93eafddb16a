"""coea.stages.record_version: the package version (and the image's commit) in artifact metadata."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import coea
from coea.stages import record_version


@pytest.mark.parametrize(("sha", "expected"), [("abc123def456", {"coea_git_sha": "abc123def456"}), ("unknown", {}),
                                               (None, {})])
def test_record_version_adds_version_and_known_commit(monkeypatch: pytest.MonkeyPatch, sha, expected) -> None:
    if sha is None:
        monkeypatch.delenv("COEA_GIT_SHA", raising=False)
    else:
        monkeypatch.setenv("COEA_GIT_SHA", sha)
    a, b = SimpleNamespace(metadata={"llm": "novelty"}), SimpleNamespace(metadata={})
    record_version(a, b)
    assert a.metadata == {"llm": "novelty", "coea_version": coea.__version__, **expected}
    assert b.metadata == {"coea_version": coea.__version__, **expected}
