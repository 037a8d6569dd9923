"""Poison objects: JSON nested past Python's recursion limit never takes the operator down.

The API server stores up to 10 000 levels of nesting in a field that preserves unknown
fields. Before the fix, one such labelled Knative Service ended the operator in its watch
decoder within a second, and every restart ended in the cache-priming LIST, so the webhooks
were never served. Now the object is skipped and reported (a Warning event on it), and
everything else keeps running, across a restart too.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from kfserving_operator.api import constants as c
from tests.support.cluster import Cluster, KubectlError, wait_for
from tests.support.isvc import sklearn_isvc
from tests.support.knative import KnativeStandIn
from tests.support.operator import OperatorProcess

LEVELS = 1500  # Python gives up near 1000; the API server allows 10 000


def nested(levels: int) -> str:
    return '{"a":' * levels + '"bottom"' + "}" * levels


PLACEHOLDER = '"<deep>"'


def poison_ksvc(name: str, namespace: str) -> str:
    """A labelled Knative Service without an owner, deeply nested under its spec."""
    return json.dumps({
        "apiVersion": "serving.knative.dev/v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {c.ISVC_LABEL: "anything"}},
        "spec": {"template": {"spec": {"containers": [{"image": "x"}]}}, "poison": "<deep>"},
    }).replace(PLACEHOLDER, nested(LEVELS))


def poison_isvc(name: str, namespace: str) -> str:
    """An InferenceService nested deeply under a preserved field (spec.predictor.affinity)."""
    return json.dumps({
        "apiVersion": "serving.kubeflow.org/v1beta1", "kind": "InferenceService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"predictor": {"sklearn": {"storageUri": "gs://models/iris"},
                               "affinity": "<deep>"}},
    }).replace(PLACEHOLDER, nested(LEVELS))


def warnings_about(cluster: Cluster, namespace: str, name: str) -> list[str]:
    events = cluster.get_json("events", "-n", namespace, "--field-selector",
                              f"involvedObject.name={name},reason=UndecodableObject")
    return [event["message"] for event in events["items"]]


def reconciles(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    cluster.apply_yaml(sklearn_isvc(name), namespace)
    return KnativeStandIn(cluster, namespace).wait_for_ksvc(f"{name}-predictor-default")


@pytest.fixture
def running(operator: OperatorProcess | None) -> OperatorProcess:
    if operator is None:
        pytest.skip("needs the operator process this session started")
    return operator


def test_poison_child_is_skipped_and_reported_while_everything_else_runs(
        cluster: Cluster, namespace: str, running: OperatorProcess) -> None:
    pid = running.process.pid
    cluster.kubectl("create", "-f", "-", input=poison_ksvc("deep", namespace))
    messages = wait_for(lambda: warnings_about(cluster, namespace, "deep"),
                        message="a Warning event on the poison object")
    assert "nested deeper than" in messages[0] and f"{namespace}/deep" in messages[0]
    time.sleep(1)
    assert running.process.poll() is None and running.process.pid == pid
    # The rest works: admission (the webhooks answer) and reconcile.
    reconciles(cluster, namespace, "after")
    with pytest.raises(KubectlError, match="canaryTrafficPercent"):
        cluster.apply_yaml(sklearn_isvc("refused", canaryTrafficPercent=101), namespace)
    assert "Traceback" not in running.log()


def test_operator_restarts_over_poison_objects(
        cluster: Cluster, namespace: str, running: OperatorProcess) -> None:
    """Chaos: a poison child and a poison InferenceService stored while the webhooks were
    out of the path; the operator restarts over both, serves its webhooks and reconciles."""
    cluster.kubectl("create", "-f", "-", input=poison_ksvc("deep-child", namespace))
    running.stop()  # webhooks unregistered: the apiserver stores what it is given
    cluster.kubectl("create", "-f", "-", input=poison_isvc("deep-isvc", namespace))
    log_before = len(running.log())
    running.start()  # waits until the webhooks are registered again
    for name in ("deep-child", "deep-isvc"):
        wait_for(lambda name=name: warnings_about(cluster, namespace, name),
                 message=f"a Warning event on {name}")
    reconciles(cluster, namespace, "healthy")
    assert running.process.poll() is None
    tail = running.log()[log_before:]
    assert "Traceback" not in tail and "RecursionError" not in tail
    # The poison InferenceService got no children: nothing was built from a truncated spec.
    out = cluster.kubectl("get", "services.serving.knative.dev", "-n", namespace, "-o",
                          "name")
    assert "deep-isvc" not in out
    for kind, name in (("services.serving.knative.dev", "deep-child"),
                       ("inferenceservices.serving.kubeflow.org", "deep-isvc")):
        cluster.kubectl("delete", kind, name, "-n", namespace, "--wait=false")
