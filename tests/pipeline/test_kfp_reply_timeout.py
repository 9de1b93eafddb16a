"""`coea upload`/`schedule` against an endpoint that accepts connections but never answers: kfp.Client's calls have
no timeout, so the connection is checked first and fails in seconds with one line (a stand-in socket server that
only accepts: no network, no KFP). `Connection.client()`, through which both commands reach the API (the contract
tests of test_kfp_contract.py run them through it), is tested itself: without the check it would hang."""

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from coea.errors import CoeaInputError
from pipelines import kfp_api

HELD: list[socket.socket] = []  # accepted connections, kept open (a closed one would be a reply: EOF)


@pytest.fixture
def silent_url() -> Iterator[str]:
    """The URL of a socket server that accepts connections and never answers; closed with them afterwards."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    threading.Thread(target=lambda: HELD.append(server.accept()[0]), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()
        for conn in HELD:
            conn.close()


class _Unauthorized(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(401)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_an_endpoint_that_never_answers_is_one_line_within_the_timeout(silent_url: str) -> None:
    with pytest.raises(CoeaInputError, match=r"no reply from the KFP API within 0.3 s") as err:
        kfp_api._answers(silent_url, None, timeout=0.3)
    assert silent_url in str(err.value) and "\n" not in str(err.value)


def test_the_client_checks_the_endpoint_before_kfp_client_can_hang(monkeypatch: pytest.MonkeyPatch,
                                                                   silent_url: str) -> None:
    """``Connection.client()`` runs the check with the module's reply timeout (shortened here to 0.3 s) before it
    builds ``kfp.Client``, whose health check against this server would wait forever: the call ends with the
    one-line error. It runs in a thread so that a missing check fails the test instead of hanging the suite."""
    monkeypatch.setattr(kfp_api._answers, "__defaults__", (None, 0.3))  # the default timeout client() relies on
    outcome: list[BaseException | None] = []

    def connect() -> None:
        try:
            kfp_api.Connection(host=silent_url).client()
            outcome.append(None)
        except BaseException as exc:  # reported to the test's thread
            outcome.append(exc)

    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "Connection.client() hangs against an endpoint that never answers"
    assert isinstance(outcome[0], CoeaInputError), outcome
    assert "no reply from the KFP API within 0.3 s" in str(outcome[0]) and "\n" not in str(outcome[0])


def test_any_reply_or_a_refused_connection_is_left_to_kfp_client() -> None:
    """A 401 (auth: kfp.Client reports it with the auth fix) and a closed port (refused at once) pass the check."""
    http = HTTPServer(("127.0.0.1", 0), _Unauthorized)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        kfp_api._answers(f"http://127.0.0.1:{http.server_address[1]}", "t", timeout=5)
    finally:
        http.shutdown()
        http.server_close()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    kfp_api._answers(f"http://127.0.0.1:{port}", None, timeout=5)
