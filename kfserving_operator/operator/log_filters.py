"""Log filters that keep an API server outage to a handful of lines.

kopf logs every failed attempt of every request of every watch ("Request attempt #2/7
failed; will retry: GET ... -> ClientConnectorError(...)"), several watches at a time, for
as long as the API server is away. One such line per watch and interval says the same; the
filter lets that one through, with the count of the lines it held back.
"""

from __future__ import annotations

import logging
import time

# What kopf's request retries start with (kopf._cogs.clients.api.request).
KOPF_RETRY_PREFIX = "Request attempt"


class Throttle:
    """At most one log line per ``interval`` seconds; counts the lines it held back."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._last: float | None = None
        self._held = 0

    def allow(self) -> int | None:
        """None to stay quiet; otherwise how many lines were held back since the last one."""
        now = time.monotonic()
        if self._last is not None and now - self._last < self._interval:
            self._held += 1
            return None
        held, self._held, self._last = self._held, 0, now
        return held

    def reset(self) -> None:
        self._last, self._held = None, 0


class RetryLineThrottle(logging.Filter):
    """At most one kopf request-retry line per logger per ``interval`` seconds."""

    def __init__(self, interval: float = 30.0) -> None:
        super().__init__()
        self._interval = interval
        self._throttles: dict[str, Throttle] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(KOPF_RETRY_PREFIX):
            return True
        held = self._throttles.setdefault(record.name, Throttle(self._interval)).allow()
        if held is None:
            return False
        if held:
            record.msg = f"{record.getMessage()} ({held} similar lines held back)"
            record.args = None
        return True
