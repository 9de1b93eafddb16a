"""Load a page in headless Chromium and read, from the test's side, what went wrong in it.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: commands in on fd 3,
replies and events out on fd 4, each a JSON message ended by a NUL byte), so nothing but the Debian ``chromium``
package is needed: no driver, no port. :func:`load_page` opens a file, waits for its load event and returns every
console message, uncaught exception and log entry (a failed resource, a blocked request) the page produced, and
for each ``<img>`` whether it decoded (``complete`` and ``naturalWidth > 0``), as the browser reports them.

On CI (``CI`` set, as ``.ci/run`` runs) a missing Chromium fails the test instead of skipping it: ``.ci/run``
installs it.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ON_CI

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--remote-debugging-pipe"]
# what the page holds, read after its load event: every image's decode state, the sections, the metrics rows
PROBE = """JSON.stringify({
  images: Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth})),
  sections: Array.from(document.querySelectorAll("section[id]")).map(s => s.id),
  metricsRows: document.querySelectorAll("#metrics-table tbody tr").length,
  pcoRows: document.querySelectorAll("#pco-table tbody tr").length
})"""


@dataclass
class PageReport:
    """What the browser saw while loading a page."""

    console: list[tuple[str, str]] = field(default_factory=list)  # (type, text) of every console call
    exceptions: list[str] = field(default_factory=list)  # uncaught errors
    log: list[tuple[str, str]] = field(default_factory=list)  # (level, text) of browser log entries
    probe: dict[str, Any] = field(default_factory=dict)  # PROBE's result

    @property
    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries (a failed image load is one)."""
        return ([t for kind, t in self.console if kind in ("error", "assert")] + self.exceptions
                + [t for level, t in self.log if level == "error"])

    @property
    def broken_images(self) -> list[str]:
        return [i["alt"] for i in self.probe["images"] if not (i["complete"] and i["width"] > 0)]


def require_chromium() -> str:
    """Chromium's path; skips the test where it is missing, except on CI, where it fails."""
    if CHROMIUM is None:
        message = "chromium not installed (Debian: apt-get install chromium; .ci/run installs it)"
        if ON_CI:
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


class _Pipe:
    """One DevTools connection over Chromium's fd 3 (commands) and fd 4 (replies and events)."""

    def __init__(self, profile: Path, timeout: float) -> None:
        to_chrome, self._out = os.pipe()
        self._in, from_chrome = os.pipe()
        # the child's ends moved to fds >= 10, so bash's redirections onto 3 and 4 cannot overwrite them
        ends = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_chrome, from_chrome)]
        for fd in (to_chrome, from_chrome):
            os.close(fd)
        redirect = f'exec "$0" "$@" 3<&{ends[0]} 4>&{ends[1]} {ends[0]}<&- {ends[1]}>&-'
        self.proc = subprocess.Popen(["bash", "-c", redirect, require_chromium(), *FLAGS,
                                      f"--user-data-dir={profile}", "about:blank"],
                                     pass_fds=ends, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        for fd in ends:
            os.close(fd)
        self.deadline, self._buf, self._next_id, self.events = time.monotonic() + timeout, b"", 0, []

    def _read_message(self) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = self.deadline - time.monotonic()
            if left <= 0 or not select.select([self._in], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._in, 1 << 16)
            if not chunk:
                raise RuntimeError(f"chromium closed the DevTools pipe (exit code {self.proc.poll()})")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one command and return its result; events that arrive meanwhile are kept in ``events``."""
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params, **({"sessionId": session} if session else {})}
        os.write(self._out, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read_message()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str) -> None:
        while not any(e.get("method") == method for e in self.events):
            self.events.append(self._read_message())

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        finally:
            for fd in (self._in, self._out):
                os.close(fd)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _report(events: list[dict[str, Any]], probe: dict[str, Any]) -> PageReport:
    out = PageReport(probe=probe)
    for e in events:
        p = e.get("params", {})
        if e.get("method") == "Runtime.consoleAPICalled":
            out.console.append((p["type"], " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"])))
        elif e.get("method") == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            out.exceptions.append(d.get("exception", {}).get("description") or d.get("text", ""))
        elif e.get("method") == "Log.entryAdded":
            out.log.append((p["entry"]["level"], p["entry"]["text"]))
    return out


def load_page(path: Path, profile: Path, timeout: float = 60.0) -> PageReport:
    """Open ``path`` in a fresh headless Chromium (profile dir ``profile``), wait for its load event, and return
    what the browser reported (see :class:`PageReport`)."""
    pipe = _Pipe(profile, timeout)
    try:
        target = pipe.call("Target.createTarget", url="about:blank")["targetId"]
        session = pipe.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            pipe.call(f"{domain}.enable", session)
        pipe.events.clear()  # about:blank's own events
        pipe.call("Page.navigate", session, url=Path(path).resolve().as_uri())
        pipe.wait_for("Page.loadEventFired")
        value = pipe.call("Runtime.evaluate", session, expression=PROBE, returnByValue=True)["result"]["value"]
        return _report([e for e in pipe.events if e.get("sessionId") == session], json.loads(value))
    finally:
        pipe.close()
