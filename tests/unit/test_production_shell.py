"""Leader-election records, request classification, metrics, logs and the command line."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import logging
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kfserving_operator import __version__
from kfserving_operator.cli import build_parser, main, run_options
from kfserving_operator.k8s.instrumentation import request_verb, watched_resource
from kfserving_operator.k8s.leader import (
    LeaderElector,
    LeaseRecord,
    LeaseTiming,
    lease_object,
    micro_time,
    next_record,
    record_of,
)
from kfserving_operator.logs import JsonLogFormatter, TextFormatter
from kfserving_operator.operator.cache import ObjectCache
from kfserving_operator.operator.health import Readiness
from kfserving_operator.operator.metrics import OperatorMetrics
from kfserving_operator.operator.workqueue import Requeue, WorkQueue
from kfserving_operator.webhooks import certificates, registration

T0 = datetime.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.UTC)

# -- leader election ------------------------------------------------------------------------


def test_lease_records_follow_client_go() -> None:
    first = next_record(None, "a_1", 15, T0)
    assert first == LeaseRecord("a_1", 15, "2026-01-02T03:04:05.678901Z",
                                "2026-01-02T03:04:05.678901Z", 0)
    later = T0 + datetime.timedelta(seconds=2)
    renewed = next_record(first, "a_1", 15, later)
    assert (renewed.acquire_time, renewed.renew_time, renewed.transitions) == (
        first.acquire_time, micro_time(later), 0)
    taken = next_record(renewed, "b_2", 15, later)
    assert (taken.holder, taken.acquire_time, taken.transitions) == ("b_2", micro_time(later), 1)
    released = LeaseRecord("", 1, None, None, 1)
    assert next_record(released, "a_1", 15, later).transitions == 2
    lease = lease_object("lock", "ns", taken, "42")
    assert lease["metadata"] == {"name": "lock", "namespace": "ns", "resourceVersion": "42"}
    assert record_of(lease) == taken


@pytest.mark.parametrize(("duration", "deadline", "retry"),
                         [(10, 10, 2), (15, 14, 2), (15, 10, 9), (0.5, 0.3, 0.1)])
def test_lease_timing_refuses_unsafe_settings(duration: float, deadline: float,
                                              retry: float) -> None:
    with pytest.raises(ValueError):
        LeaseTiming(duration, deadline, retry)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _elector(clock: _Clock) -> LeaderElector:
    return LeaderElector(api=None, name="lock", namespace="ns",  # type: ignore[arg-type]
                         identity="me", timing=LeaseTiming(4, 2.5, 0.5), clock=clock)


def test_follower_dates_a_change_from_its_previous_read() -> None:
    clock = _Clock()
    elector = _elector(clock)
    other = LeaseRecord("other", 4, "t", "t1", 0)
    elector._observe(other, "1", read_started=100.0)
    assert elector.expires_in() == pytest.approx(4.0)  # first sight: dated now
    clock.now = 100.5
    elector._observe(LeaseRecord("other", 4, "t", "t2", 0), "2", read_started=100.5)
    # Renewed after the read that began at 100.0: dated then, not at 100.5.
    assert elector.expires_in() == pytest.approx(3.5)
    clock.now = 110.0  # a stalled follower: never dated more than a retry period back
    elector._observe(LeaseRecord("other", 4, "t", "t3", 0), "3", read_started=110.0)
    assert elector.expires_in() == pytest.approx(4 - 0.6)
    clock.now = 113.5
    assert elector.expires_in() < 0  # unrenewed past its duration: free to take
    assert elector._observed is not None
    elector._observe(elector._observed, "3", read_started=113.5)
    assert elector.expires_in() < 0  # the same record again changes nothing


def test_released_lease_is_free_at_once() -> None:
    elector = _elector(_Clock())
    elector._observe(LeaseRecord("", 1, None, None, 3), "9", read_started=100.0)
    assert elector.expires_in() == 0


async def test_leadership_events_and_callback() -> None:
    changes: list[bool] = []
    elector = LeaderElector(api=None, name="lock", namespace="ns",  # type: ignore[arg-type]
                            identity="me", on_change=changes.append)
    assert not elector.is_leader and elector.not_leading.is_set()
    elector._set_leading(True)
    elector._set_leading(True)
    assert elector.is_leader and elector.leading.is_set() and not elector.not_leading.is_set()
    elector._set_leading(False)
    assert changes == [True, False]


# -- API request classification -------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "query", "verb"), [
    ("GET", "/api/v1/namespaces/ns/secrets/s", {}, "get"),
    ("GET", "/api/v1/services", {}, "list"),
    ("GET", "/api/v1/namespaces/ns/services", {}, "list"),
    ("GET", "/apis/serving.kubeflow.org/v1beta1/inferenceservices", {"watch": ["true"]},
     "watch"),
    ("GET", "/api/v1/namespaces/ns", {}, "get"),
    ("GET", "/api/v1/namespaces", {}, "list"),
    ("GET", "/apis", {}, "get"),
    ("POST", "/api/v1/namespaces/ns/events", {}, "create"),
    ("PUT", "/apis/coordination.k8s.io/v1/namespaces/ns/leases/l", {}, "update"),
    ("PATCH", "/apis/serving.kubeflow.org/v1beta1/namespaces/ns/inferenceservices/x/status",
     {}, "patch"),
    ("DELETE", "/apis/serving.knative.dev/v1/namespaces/ns/services/x", {}, "delete"),
    ("DELETE", "/apis/serving.knative.dev/v1/namespaces/ns/services", {}, "deletecollection"),
])
def test_request_verbs(method: str, path: str, query: dict[str, list[str]],
                       verb: str) -> None:
    assert request_verb(method, path, query) == verb


def test_watched_resource_names_group_and_plural() -> None:
    assert watched_resource("/apis/serving.knative.dev/v1/services") == (
        "services.serving.knative.dev")
    assert watched_resource("/api/v1/namespaces/ns/configmaps") == "configmaps"


# -- metrics ----------------------------------------------------------------------------------


def _families(metrics: OperatorMetrics) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(metrics.exposition().decode())}


async def test_metrics_follow_the_queue_and_the_cache() -> None:
    metrics = OperatorMetrics()
    cache = ObjectCache()
    outcomes: list[tuple[str, float]] = []
    gate = asyncio.Event()

    async def handle(key: str) -> str:
        await gate.wait()
        if key == "later":
            raise Requeue(5, "waiting")
        return "up to date"

    queue: WorkQueue[str] = WorkQueue(
        handle, workers=1, observe=lambda result, seconds: outcomes.append((result, seconds)))
    metrics.watch_queue(queue.state)
    metrics.watch_ready_counts(cache.ready_counts)
    for name, ready in (("a", "True"), ("b", "False"), ("c", None)):
        status = {"conditions": [{"type": "Ready", "status": ready}]} if ready else {}
        cache.put_isvc({"apiVersion": "serving.kubeflow.org/v1beta1",
                        "kind": "InferenceService",
                        "metadata": {"namespace": "ns", "name": name}, "status": status})
    queue.start()
    for key in ("now", "later", "third"):
        queue.add(key)
    await asyncio.sleep(0.05)
    families = _families(metrics)
    assert families["kfserving_workqueue_depth"].samples[0].value == 2  # one is running
    assert families["kfserving_workqueue_oldest_item_age_seconds"].samples[0].value > 0.04
    ready = {s.labels["ready"]: s.value for s in families["kfserving_inferenceservices"].samples}
    assert ready == {"True": 1, "False": 1, "Unknown": 1}
    gate.set()
    await asyncio.sleep(0.05)
    await queue.stop()
    assert sorted(result for result, _ in outcomes) == ["requeue", "success", "success"]
    assert queue.state() == (0, 0.0)
    cache.drop_isvc(("ns", "a"))
    assert cache.ready_counts() == {"False": 1, "Unknown": 1}


def test_metric_names_and_types() -> None:
    metrics = OperatorMetrics()
    metrics.admissions.labels(webhook="validator", result="denied").inc()
    metrics.admission_duration.labels(webhook="validator").observe(0.01)
    metrics.observe_api_request("patch", "200")
    metrics.observe_watch_restart("services")
    families = _families(metrics)
    expected = {
        "kfserving_reconcile": "counter", "kfserving_reconcile_duration_seconds": "histogram",
        "kfserving_admission_requests": "counter",
        "kfserving_admission_duration_seconds": "histogram",
        "kfserving_watch_restarts": "counter", "kfserving_api_requests": "counter",
        "kfserving_leader": "gauge", "kfserving_workqueue_depth": "gauge",
        "kfserving_workqueue_oldest_item_age_seconds": "gauge",
        "kfserving_inferenceservices": "gauge",
    }
    assert {name: families[name].type for name in expected} == expected
    assert families["kfserving_poison_objects_skipped"].type == "counter"
    results = {s.labels.get("result") for s in families["kfserving_reconcile"].samples}
    assert {"success", "error", "requeue"} <= results  # present at 0 from the start


def test_readiness_needs_cache_and_webhooks_and_drops_when_stopping() -> None:
    readiness = Readiness()
    assert readiness.unmet() == ["cache not primed", "webhooks not registered"]
    readiness.cache_primed = readiness.webhooks_registered = True
    assert readiness.ready
    readiness.stopping = True
    assert readiness.unmet() == ["stopping"]


# -- logs -------------------------------------------------------------------------------------


def _record(name: str, message: str, **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord(name, logging.INFO, __file__, 1, message, (), None)
    record.__dict__.update(extra)
    return record


def test_text_logs_carry_the_full_logger_name_and_the_object() -> None:
    name = "kfserving_operator.operator.workqueue"
    line = TextFormatter().format(_record(name, "reconcile ns/x: up to date"))
    assert f" INFO    {name}: reconcile ns/x: up to date" in line
    ref = {"namespace": "ns", "name": "x", "kind": "InferenceService"}
    assert "[ns/x] handled" in TextFormatter().format(
        _record("kopf.objects", "handled", k8s_ref=ref))


def test_json_logs_are_one_object_per_line() -> None:
    ref = {"apiVersion": "v1", "kind": "Service", "namespace": "ns", "name": "x", "uid": None}
    line = JsonLogFormatter().format(
        _record("kopf.objects", "handled", k8s_ref=ref, k8s_skip=True, settings=object()))
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["logger"] == "kopf.objects" and parsed["level"] == "INFO"
    assert parsed["message"] == "handled"
    assert datetime.datetime.fromisoformat(parsed["time"]).tzinfo is not None
    assert parsed["object"] == {"apiVersion": "v1", "kind": "Service", "namespace": "ns",
                                "name": "x"}
    assert "settings" not in parsed and "k8s_ref" not in parsed


# -- command line -----------------------------------------------------------------------------


def test_version_and_plain_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"kfserving-operator {__version__}"
    for argv in (["--help"], ["run", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        out = capsys.readouterr().out
        assert "``" not in out and "\x1b[" not in out  # no markup, no colours
        assert out.startswith("usage: kfserving-operator")
    run_help = build_parser().parse_args(["run", "--log-format", "json"])
    assert run_help.log_format == "json"


def test_local_defaults_take_free_ports_and_cluster_defaults_are_fixed() -> None:
    parser = build_parser()
    local = parser.parse_args(["run", "--webhooks", "local"])
    local.lease_timing = LeaseTiming()
    options = run_options(local)
    assert (options.webhook_port, options.health_port) == (0, 0)
    assert options.webhook_host == options.health_host == "127.0.0.1"
    cluster = parser.parse_args(["run", "--webhooks", "cluster", "--no-leader-elect",
                                 "--shutdown-drain-seconds", "7"])
    cluster.lease_timing = LeaseTiming()
    options = run_options(cluster)
    assert (options.webhook_port, options.health_port, options.drain_seconds) == (9443, 8080, 7)
    assert options.leader_election is False


def test_unsafe_lease_flags_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--leader-election-lease-duration", "5",
              "--leader-election-renew-deadline", "6"])
    assert exit_info.value.code == 2
    assert "renew deadline" in capsys.readouterr().err


# -- webhooks ---------------------------------------------------------------------------------


def test_renewed_secret_keeps_the_previous_ca_in_the_bundle() -> None:
    first = certificates.new_secret("svc", "ns")
    second = certificates.new_secret("svc", "ns", previous=first)
    first_ca = base64.b64decode(first["data"]["ca.crt"])
    bundle = base64.b64decode(second["data"]["ca.crt"])
    assert bundle.count(b"BEGIN CERTIFICATE") == 2 and bundle.endswith(first_ca)
    third = certificates.new_secret("svc", "ns", previous=second)
    # Only the CA being replaced is kept, so the bundle never grows beyond two.
    assert base64.b64decode(third["data"]["ca.crt"]).count(b"BEGIN CERTIFICATE") == 2
    now = datetime.datetime.now(datetime.UTC)
    assert certificates.secret_is_usable(second, now)
    assert not certificates.secret_is_usable(second, now + datetime.timedelta(days=400))
    assert not certificates.secret_is_usable(None, now)


def test_endpoints_of_existing_configurations() -> None:
    def service(path: str) -> dict[str, Any]:
        return registration.service_client_config("svc", "ns", path, b"ca")

    def url(path: str) -> dict[str, Any]:
        return registration.url_client_config("https://127.0.0.1:1234", path, b"ca")

    assert {e.service for e in registration.endpoints(
        registration.mutating_configuration(service, "ns"))} == {"ns/svc"}
    assert [e.url for e in registration.endpoints(registration.validating_configuration(url))] \
        == [f"https://127.0.0.1:1234{path}"
            for path in (registration.VALIDATOR_PATH, registration.V1ALPHA2_VALIDATOR_PATH)]
    assert list(registration.endpoints({})) == []
