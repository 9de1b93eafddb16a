"""`coea upload`/`schedule` against an endpoint that accepts connections but never answers: kfp.Client's calls have
no timeout, so the connection is checked first and fails in seconds with one line (a stand-in socket server that
only accepts: no network, no KFP)."""

import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from coea.errors import CoeaInputError
from pipelines import kfp_api

HELD: list[socket.socket] = []  # accepted connections, kept open (a closed one would be a reply: EOF)


def _silent_server() -> tuple[socket.socket, str]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    threading.Thread(target=lambda: HELD.append(server.accept()[0]), daemon=True).start()
    return server, f"http://127.0.0.1:{server.getsockname()[1]}"


class _Unauthorized(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(401)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_an_endpoint_that_never_answers_is_one_line_within_the_timeout() -> None:
    server, url = _silent_server()
    try:
        with pytest.raises(CoeaInputError, match=r"no reply from the KFP API within 0.3 s") as err:
            kfp_api._answers(url, None, timeout=0.3)
        assert url in str(err.value) and "\n" not in str(err.value)
    finally:
        server.close()
        for conn in HELD:
            conn.close()


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
