"""The operator's own counters, in one place, for a metrics endpoint to export.

Each counter only ever goes up, like a Prometheus counter; ``value`` is what a scrape reads.
They are plain integers on purpose: this module has no dependencies, so the pure layers and
the I/O shell can count without importing a metrics library.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Counter:
    """A monotonically increasing count with the name and help text a metric would carry."""

    name: str
    help: str
    value: int = 0

    def inc(self, amount: int = 1) -> None:
        self.value += amount


# Objects the API server sent that could not be decoded safely (JSON nested beyond what the
# operator decodes), each distinct object version counted once; they are skipped, not handled.
POISON_OBJECTS_SKIPPED = Counter(
    "kfserving_poison_objects_skipped_total",
    "Objects skipped because their JSON was nested too deeply to decode safely.",
)
# API requests that failed in transport (connection refused or reset, timeout): the API
# server was unreachable, not the request wrong.
TRANSIENT_API_ERRORS = Counter(
    "kfserving_api_transient_errors_total",
    "API requests that failed because the API server could not be reached.",
)
# ApplyFailed/DeleteFailed Warning events posted (once per distinct cause).
WRITE_FAILURE_EVENTS = Counter(
    "kfserving_write_failure_events_total",
    "Warning events posted for a distinct cause of failed child writes.",
)

ALL: tuple[Counter, ...] = (POISON_OBJECTS_SKIPPED, TRANSIENT_API_ERRORS, WRITE_FAILURE_EVENTS)
