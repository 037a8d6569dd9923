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


class RetryLineThrottle(logging.Filter):
    """At most one kopf request-retry line per logger per ``interval`` seconds."""

    def __init__(self, interval: float = 30.0) -> None:
        super().__init__()
        self._interval = interval
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(KOPF_RETRY_PREFIX):
            return True
        now = time.monotonic()
        last = self._last.get(record.name)
        if last is not None and now - last < self._interval:
            self._held[record.name] = self._held.get(record.name, 0) + 1
            return False
        self._last[record.name] = now
        held = self._held.pop(record.name, 0)
        if held:
            record.msg = f"{record.getMessage()} ({held} similar lines held back)"
            record.args = None
        return True


def quiet_request_retries(interval: float = 30.0) -> None:
    """Throttle kopf's request-retry lines on every handler of the root logger."""
    throttle = RetryLineThrottle(interval)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RetryLineThrottle) for f in handler.filters):
            handler.addFilter(throttle)
