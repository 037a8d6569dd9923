"""The operator's probes and Prometheus metrics, scraped while a user scenario runs."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from tests.support.cluster import Cluster, KubectlError, wait_for
from tests.support.isvc import isvc_status, sklearn_isvc
from tests.support.metrics import scrape, total, value
from tests.support.operator import OperatorProcess
from tests.support.replicas import http_get


def names(samples: Iterable[tuple[str, tuple[tuple[str, str], ...]]]) -> set[str]:
    return {name for name, _ in samples}


def test_probes_and_metrics_move_during_a_scenario(
        cluster: Cluster, namespace: str, operator: OperatorProcess | None) -> None:
    if operator is None:
        pytest.skip("the operator runs elsewhere; its metrics port is not reachable here")
    port = operator.health_port
    assert http_get(port, "/healthz") == (200, "ok")
    assert http_get(port, "/readyz") == (200, "ok")
    before = scrape(port)

    cluster.apply_yaml(sklearn_isvc("metered"), namespace)
    wait_for(lambda: isvc_status(cluster, namespace, "metered").get("conditions"),
             message="metered's status")
    invalid = sklearn_isvc("refused")
    invalid["spec"]["predictor"]["xgboost"] = {"storageUri": "gs://models/x"}
    with pytest.raises(KubectlError, match="exactly one of"):
        cluster.apply_yaml(invalid, namespace)
    after = scrape(port)

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert moved("kfserving_reconcile_total", result="success") >= 1
    assert moved("kfserving_reconcile_duration_seconds_count") >= 1
    assert moved("kfserving_admission_requests_total", webhook="defaulter",
                 result="allowed") >= 1
    assert moved("kfserving_admission_requests_total", webhook="validator",
                 result="allowed") >= 1
    assert moved("kfserving_admission_requests_total", webhook="validator",
                 result="denied") >= 1
    assert moved("kfserving_admission_duration_seconds_count", webhook="validator") >= 2
    # Server-side apply creating the children (201) and writing the status; kopf's watches.
    assert moved("kfserving_api_requests_total", verb="patch", code="201") >= 1
    assert moved("kfserving_api_requests_total", verb="patch") >= 2
    assert total(after, "kfserving_api_requests_total", verb="watch") >= 1
    assert total(after, "kfserving_api_requests_total", verb="list", code="200") >= 1
    assert value(after, "kfserving_leader") == 1
    ready = {labels[0][1]: v for (name, labels), v in after.items()
             if name == "kfserving_inferenceservices"}
    assert set(ready) >= {"True", "False", "Unknown"} and sum(ready.values()) >= 1
    assert {"kfserving_workqueue_depth",
            "kfserving_workqueue_oldest_item_age_seconds"} <= names(after)
    assert value(after, "kfserving_workqueue_oldest_item_age_seconds") >= 0


def test_reconcile_outcomes_are_logged_one_line_each(
        cluster: Cluster, namespace: str, operator: OperatorProcess | None) -> None:
    if operator is None:
        pytest.skip("the operator's log is not here")
    cluster.apply_yaml(sklearn_isvc("logged"), namespace)
    wait_for(lambda: isvc_status(cluster, namespace, "logged").get("conditions"),
             message="logged's status")
    lines = [line for line in operator.log().splitlines()
             if f"reconcile {namespace}/logged: " in line]
    assert lines, "no reconcile outcome line"
    assert " kfserving_operator.operator.workqueue: " in lines[0]  # the full logger name
    assert any("writes" in line for line in lines)
