"""Retry with exponential backoff for transient cloud-storage errors."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import requests
from google.api_core import exceptions as gexc

log = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    gexc.TooManyRequests,
    gexc.InternalServerError,
    gexc.BadGateway,
    gexc.ServiceUnavailable,
    gexc.GatewayTimeout,
    gexc.RetryError,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    ConnectionError,
    TimeoutError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """Attempt ``max_attempts`` times; wait ``initial_backoff_s * multiplier**(n-1)`` (capped) after try n."""

    max_attempts: int = 5
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 16.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        attempts = self.max_attempts
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ValueError(f"max_attempts must be an int >= 1, got {self.max_attempts!r}")
        if self.initial_backoff_s < 0 or self.max_backoff_s < 0:
            raise ValueError(f"backoffs must be >= 0, got {self.initial_backoff_s}, {self.max_backoff_s}")
        if self.multiplier < 1:
            raise ValueError(f"multiplier must be >= 1, got {self.multiplier}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return min(self.max_backoff_s, self.initial_backoff_s * self.multiplier ** (attempt - 1))


def call_with_retry(fn: Callable[[], T], policy: RetryPolicy, what: str,
                    sleep: Callable[[float], None] = time.sleep) -> T:
    """Call ``fn``; on a transient error wait and try again, up to ``policy.max_attempts`` calls in all.

    The last transient error, or any non-transient one, propagates unchanged.
    """
    for attempt in range(1, policy.max_attempts + 1):
        try:
            return fn()
        except TRANSIENT_ERRORS as exc:
            if attempt == policy.max_attempts:
                log.warning("%s: attempt %d/%d failed (%s); giving up", what, attempt, attempt, exc)
                raise
            wait = policy.delay(attempt)
            log.warning("%s: attempt %d/%d failed (%s); retrying in %.3fs",
                        what, attempt, policy.max_attempts, exc, wait)
            sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover
