"""GCS for the tests, with no network and no credentials: an in-process gcp-storage-emulator (a real GCS JSON
API for the real google-cloud-storage client, fixtures in ``tests/conftest.py``) and :class:`FaultyGcs`, a tiny
HTTP server for what the emulator cannot do: answer 403, or drop the connection in the middle of a download."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from typing import Any

import pandas as pd

BUCKET = "coea-test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_ERRORS = {"forbidden": (403, "caller does not have storage.objects.get access"),
           "unavailable": (503, "backend unavailable")}


class _FaultyHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.server.hits.append(self.path)  # type: ignore[attr-defined]
        if self.server.mode in _ERRORS:  # type: ignore[attr-defined]
            code, message = _ERRORS[self.server.mode]  # type: ignore[attr-defined]
            body = json.dumps({"error": {"code": code, "message": message, "errors": [{"reason": message}]}}).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        # "truncate": promise 10 kB, send 20 bytes of a CSV, hang up (a connection dropped mid-read)
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", "10000")
        self.end_headers()
        self.wfile.write(b"user_id,item_id,cat")
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def faulty_gcs(mode: str, hits: list[str] | None = None) -> Iterator[str]:
    """A server answering every GET with 403 (``mode="forbidden"``), 503 (``"unavailable"``) or a download cut off
    after a few bytes (``"truncate"``); yields its URL for ``STORAGE_EMULATOR_HOST``. Each request's path is
    appended to ``hits``."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _FaultyHandler)
    server.mode = mode  # type: ignore[attr-defined]
    server.hits = hits if hits is not None else []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def partition_days(df: pd.DataFrame) -> pd.Series:
    """The UTC day (``YYYY-MM-DD``) of each event, the ``dt=`` partition it belongs to."""
    return pd.to_datetime(df["timestamp"].astype("int64"), unit="s", utc=True).dt.strftime("%Y-%m-%d")


def upload_partitions(client: Any, df: pd.DataFrame, prefix: str, fmt: str = "csv") -> list[str]:
    """Write ``df`` to ``gs://BUCKET/<prefix>dt=YYYY-MM-DD/part-00000.<fmt>``, one partition per UTC day of its
    events, plus a ``_SUCCESS`` marker in each (which readers skip); returns the days."""
    bucket = client.bucket(BUCKET)
    days = partition_days(df)
    for day, part in df.groupby(days, sort=True):
        buf = BytesIO()
        if fmt == "csv":
            part.to_csv(buf, index=False)
        else:
            part.to_parquet(buf, index=False)
        bucket.blob(f"{prefix}dt={day}/part-00000.{fmt}").upload_from_string(buf.getvalue())
        bucket.blob(f"{prefix}dt={day}/_SUCCESS").upload_from_string(b"")
    return sorted(days.unique())
