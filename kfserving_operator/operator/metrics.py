"""The operator's Prometheus metrics, on a registry of its own (``prometheus-client``).

Counters and histograms are updated where things happen (the work queue, the admission
server, the API clients). Values that are a state rather than an event (queue depth, the age
of the oldest waiting key, InferenceServices by Ready status) are read when Prometheus
scrapes, from callbacks, so they cost nothing between scrapes and can never drift.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kfserving_operator import counters

PREFIX = "kfserving"
# Reconciles of an unchanged object take microseconds; applies take tens of milliseconds;
# a slow apiserver takes seconds.
RECONCILE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# The apiserver waits 10 s (the webhooks' timeoutSeconds) before it gives up on a review.
ADMISSION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

QueueState = Callable[[], tuple[int, float]]  # (depth, age of the oldest waiting key in s)
ReadyCounts = Callable[[], Mapping[str, int]]  # Ready condition status -> count


class _StateCollector(Collector):
    """Gauges computed at scrape time from the live queue and cache."""

    def __init__(self) -> None:
        self.queue_state: QueueState | None = None
        self.ready_counts: ReadyCounts | None = None

    def collect(self) -> Iterable[Metric]:
        depth, age = self.queue_state() if self.queue_state else (0, 0.0)
        yield GaugeMetricFamily(f"{PREFIX}_workqueue_depth",
                                "InferenceServices waiting for a reconcile", value=depth)
        yield GaugeMetricFamily(f"{PREFIX}_workqueue_oldest_item_age_seconds",
                                "How long the longest-waiting InferenceService has waited",
                                value=age)
        family = GaugeMetricFamily(f"{PREFIX}_inferenceservices",
                                   "InferenceServices in the cache by their Ready condition",
                                   labels=["ready"])
        counts = dict(self.ready_counts()) if self.ready_counts else {}
        for status in ("True", "False", "Unknown"):
            family.add_metric([status], counts.pop(status, 0))
        for status, count in sorted(counts.items()):
            family.add_metric([status], count)
        yield family
        # The plain counters the pure layers keep (poison objects, transient API errors,
        # write-failure events), exported as they stand.
        for counter in counters.ALL:
            yield CounterMetricFamily(counter.name.removesuffix("_total"), counter.help,
                                      value=counter.value)


class OperatorMetrics:
    """Every metric the operator exports; one instance per process (or per test)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.reconciles = Counter(
            f"{PREFIX}_reconcile", "Reconciles by result (success, error, requeue)",
            ["result"], registry=registry)
        self.reconcile_duration = Histogram(
            f"{PREFIX}_reconcile_duration_seconds", "Time one reconcile took",
            buckets=RECONCILE_BUCKETS, registry=registry)
        self.admissions = Counter(
            f"{PREFIX}_admission_requests", "Admission reviews by webhook and result "
            "(allowed, denied, error)", ["webhook", "result"], registry=registry)
        self.admission_duration = Histogram(
            f"{PREFIX}_admission_duration_seconds", "Time spent answering one admission review",
            ["webhook"], buckets=ADMISSION_BUCKETS, registry=registry)
        self.watch_restarts = Counter(
            f"{PREFIX}_watch_restarts", "Watch requests re-opened after the first, by resource",
            ["resource"], registry=registry)
        self.api_requests = Counter(
            f"{PREFIX}_api_requests", "Requests to the Kubernetes API by verb and HTTP code "
            "(code 'error' when no response came)", ["verb", "code"], registry=registry)
        self.leader = Gauge(
            f"{PREFIX}_leader", "1 while this replica holds the leader Lease and reconciles",
            registry=registry)
        self._state = _StateCollector()
        registry.register(self._state)
        # Pre-create the label sets a dashboard expects to see at 0.
        for result in ("success", "error", "requeue"):
            self.reconciles.labels(result=result)

    def watch_queue(self, state: QueueState) -> None:
        self._state.queue_state = state

    def watch_ready_counts(self, counts: ReadyCounts) -> None:
        self._state.ready_counts = counts

    def observe_admission(self, webhook: str, result: str, seconds: float) -> None:
        self.admissions.labels(webhook=webhook, result=result).inc()
        self.admission_duration.labels(webhook=webhook).observe(seconds)

    def observe_api_request(self, verb: str, code: str) -> None:
        self.api_requests.labels(verb=verb, code=code).inc()

    def observe_watch_restart(self, resource: str) -> None:
        self.watch_restarts.labels(resource=resource).inc()

    def exposition(self) -> bytes:
        """The text exposition format of every metric, as Prometheus scrapes it."""
        return generate_latest(self.registry)
