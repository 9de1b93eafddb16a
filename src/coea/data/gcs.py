"""Reading interaction logs from Google Cloud Storage: one ``gs://BUCKET/OBJECT`` or a ``gs://BUCKET/PREFIX/``.

An object is streamed to a local file (``Blob.download_to_filename`` writes it chunk by chunk), never held in
memory as bytes, so a log is in memory once: as the table read from that file. The client is
``google.cloud.storage.Client()``: application default credentials (workload identity on GKE), or the emulator
that ``STORAGE_EMULATOR_HOST`` names. Transient errors (network, 429, 5xx, a connection dropped mid-read) are
retried for up to ``DataConfig.gcs_retry_s`` seconds. Every failure is one :class:`~coea.errors.CoeaInputError`
naming the URI: a bucket that does not exist, an object that does not exist, no permission (401/403), no
credentials, or a read that failed for good (an outage, a connection dropped mid-read).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc
from google.cloud import storage
from google.cloud.storage import exceptions as storage_exc
from google.cloud.storage.retry import DEFAULT_RETRY

from coea.errors import CoeaInputError

log = logging.getLogger(__name__)

GS = "gs://"
BUCKET_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")  # a GCS bucket name (the data specs and the store)
_READ_FAILED = (gexc.GoogleAPIError, requests.RequestException, auth_exc.TransportError, storage_exc.DataCorruption,
                storage_exc.InvalidResponse, OSError)


def is_gcs_uri(text: str) -> bool:
    """True for ``gs://...`` (the text of a data spec after ``csv:`` / ``parquet:``)."""
    return text.strip().startswith(GS)


@dataclass(frozen=True)
class GcsPath:
    """``gs://bucket/name``: an object, or a prefix when ``name`` is ``''`` or ends with ``/``."""

    bucket: str
    name: str

    @property
    def is_prefix(self) -> bool:
        return not self.name or self.name.endswith("/")

    def child(self, relative: str) -> GcsPath:
        """The object or prefix ``relative`` below this prefix."""
        base = self.name if self.is_prefix else f"{self.name}/"
        return GcsPath(self.bucket, base + relative)

    def __str__(self) -> str:
        return f"{GS}{self.bucket}/{self.name}"


def parse_gcs_path(uri: str) -> GcsPath:
    """``gs://bucket/a/b.csv`` -> ``GcsPath("bucket", "a/b.csv")``; a malformed URI is a CoeaInputError."""
    bucket, _, name = uri.strip()[len(GS):].partition("/")
    if not BUCKET_NAME_RE.match(bucket) or ".." in bucket or "//" in name:
        raise CoeaInputError(f"malformed gs:// URI {uri!r}", option="--data",
                             fix="use gs://BUCKET/OBJECT or gs://BUCKET/PREFIX/ (lowercase bucket name)")
    return GcsPath(bucket, name)


def _cause(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:200]}{'...' if len(text) > 200 else ''}"


READ_ROLE = "roles/storage.objectViewer"
WRITE_ROLE = "roles/storage.objectAdmin"


def storage_client(source: str) -> Any:
    """``google.cloud.storage.Client()``; no credentials is a CoeaInputError naming ``source``."""
    try:
        return storage.Client()
    except auth_exc.DefaultCredentialsError as err:
        raise _no_credentials(source, "accessing") from err


def _no_credentials(source: str, doing: str) -> CoeaInputError:
    return CoeaInputError(f"no Google Cloud credentials for {doing} it", source=source,
                          fix="run gcloud auth application-default login, use workload identity on GKE, "
                              "or set STORAGE_EMULATOR_HOST for an emulator")


@contextlib.contextmanager
def storage_errors(source: str, doing: str, role: str) -> Iterator[None]:
    """Turn a storage call's permission, credential and network errors into one CoeaInputError naming ``source``
    (``doing``: "reading", "writing", ...; ``role``: the IAM role that grants it). NotFound and PreconditionFailed
    pass through: what they mean depends on the call."""
    try:
        yield
    except (gexc.NotFound, gexc.PreconditionFailed):
        raise
    except (gexc.Forbidden, gexc.Unauthorized) as err:
        raise CoeaInputError(f"permission denied ({err.code}) {doing} it", source=source,
                             fix=f"grant the pod's service account {role} on the bucket (workload identity), "
                                 "or locally run gcloud auth application-default login") from err
    except auth_exc.DefaultCredentialsError as err:
        raise _no_credentials(source, doing) from err
    except _READ_FAILED as err:
        raise CoeaInputError(f"{doing} it failed ({_cause(err)})", source=source,
                             fix="check the network (STORAGE_EMULATOR_HOST for an emulator) and that GCS is "
                                 "reachable, then re-run") from err


class GcsReader:
    """Downloads and listings with retries, each failure turned into one CoeaInputError naming the URI."""

    def __init__(self, retry_s: float = 60.0, client: Any = None) -> None:
        self.retry = DEFAULT_RETRY.with_timeout(retry_s) if retry_s > 0 else None
        self._client = client

    def client_for(self, path: GcsPath) -> Any:
        if self._client is None:
            self._client = storage_client(str(path))
        return self._client

    def download(self, path: GcsPath, dest: Path) -> Path:
        """Stream the object ``path`` into the file ``dest``; returns ``dest``."""
        with self.reading(path):
            self.client_for(path).bucket(path.bucket).blob(path.name).download_to_filename(str(dest), retry=self.retry)
        log.info("downloaded %s (%d bytes)", path, dest.stat().st_size)
        return dest

    def list_names(self, prefix: GcsPath) -> list[str]:
        """The names of the objects below ``prefix``, relative to it (``dt=2026-11-29/part-0.csv``)."""
        base = prefix.child("").name
        with self.reading(prefix):
            blobs = self.client_for(prefix).list_blobs(prefix.bucket, prefix=base, retry=self.retry)
            return [blob.name[len(base):] for blob in blobs]

    @contextlib.contextmanager
    def reading(self, path: GcsPath) -> Iterator[None]:
        """Turn what a storage call under it raises into one CoeaInputError naming ``path``."""
        try:
            with storage_errors(str(path), "reading", READ_ROLE):
                yield
        except gexc.NotFound as err:
            raise self._not_found(path) from err

    def _not_found(self, path: GcsPath) -> CoeaInputError:
        try:
            bucket_exists = self.client_for(path).bucket(path.bucket).exists(retry=None)
        except _READ_FAILED:  # e.g. no storage.buckets.get permission: say what we know
            bucket_exists = True
        if not bucket_exists:
            return CoeaInputError(f"bucket {path.bucket!r} does not exist", source=str(path),
                                  fix="check the bucket name after gs:// (gcloud storage ls)")
        return CoeaInputError("object not found", source=str(path),
                              fix="check the name (gcloud storage ls); a folder of dt=YYYY-MM-DD/ partitions is "
                                  "written with a trailing /")
