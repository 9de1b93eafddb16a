"""Shared fixtures."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coea.config import SyntheticConfig
from tests.gcs_helpers import BUCKET, free_port
from tests.helpers import ML_DIR


def pytest_configure(config: pytest.Config) -> None:
    """A suite started as a background job (``make test &``, ``nohup``, a CI step without a terminal) inherits
    SIGINT ignored, which the CLI's interrupt handling keeps ignored by design (coea.interrupts): the tests that
    deliver Ctrl-C (SIGINT) to a command would then test nothing. Each test process (every xdist worker runs this)
    takes Python's own Ctrl-C handler back, as a terminal gives it; the tests of the ignored case set SIG_IGN
    themselves."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def ml_dir() -> Path:
    return ML_DIR


@pytest.fixture
def tiny_synth() -> SyntheticConfig:
    """A small but structured synthetic config: fast enough for unit tests."""
    return SyntheticConfig(seed=3, n_users=120, n_categories=20, n_groups=4, items_per_category=8,
                           mean_interactions=40, min_interactions=25)


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[tuple[Any, str]]:
    """One in-process gcp-storage-emulator per session: (server, its URL). Tests wipe it in ``gcs_client``."""
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def gcs_client(gcs_emulator: tuple[Any, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """A real ``google.cloud.storage.Client`` on the wiped emulator, holding the empty bucket ``BUCKET``.
    ``STORAGE_EMULATOR_HOST`` points at the emulator for this test, so a default client (and a subprocess, such
    as a kfp.local step) reaches it too."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    server, host = gcs_emulator
    server.wipe()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", host)
    client = storage.Client(project="test", credentials=AnonymousCredentials())
    client.create_bucket(BUCKET)
    return client
