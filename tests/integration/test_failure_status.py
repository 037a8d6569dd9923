"""A status that says why, against a real kube-apiserver with the Knative stand-in.

The stand-in writes the Knative Service status real Knative writes for a failed revision
(``Ready``/``RoutesReady`` RevisionMissing, ``ConfigurationsReady`` RevisionFailed). The
revision's pods are real Pod objects in the apiserver (no kubelet runs them): the operator
reads them, by Knative's revision label, to name the cause. The same scenarios run on real
Knative with KWOK-failed pods in the e2e tier.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.support.cluster import Cluster, wait_for
from tests.support.isvc import condition, sklearn_isvc, wait_condition
from tests.support.knative import KnativeStandIn

pytestmark = pytest.mark.usefixtures("operator")

KSVC = "iris-predictor-default"
REV1 = f"{KSVC}-00001"
REV2 = f"{KSVC}-00002"


def revision_pod(cluster: Cluster, namespace: str, revision: str,
                 container_status: dict[str, Any]) -> None:
    """A pod of ``revision`` whose model server container is in ``container_status``."""
    cluster.apply_yaml({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"{revision}-deployment-1", "labels": {
            "serving.knative.dev/revision": revision}},
        "spec": {"automountServiceAccountToken": False, "containers": [
            {"name": "kserve-container", "image": "kserve/sklearnserver:v0.6.1",
             "resources": {"limits": {"memory": "64Mi"}}},
            {"name": "queue-proxy", "image": "queue"}]},
    }, namespace)
    status = {"status": {"phase": "Running", "conditions": [
        {"type": "PodScheduled", "status": "True"}], "containerStatuses": [
        {"name": "kserve-container", "image": "kserve/sklearnserver:v0.6.1", "imageID": "",
         "ready": False, "restartCount": 4, **container_status},
        {"name": "queue-proxy", "image": "queue", "imageID": "", "ready": False,
         "restartCount": 0, "state": {"running": {}}}]}}
    cluster.kubectl("patch", "pod", f"{revision}-deployment-1", "-n", namespace,
                    "--subresource=status", "--type=merge", "-p", json.dumps(status))


def warnings(cluster: Cluster, namespace: str, reason: str) -> list[dict[str, Any]]:
    events = cluster.get_json("events", "-n", namespace)["items"]
    return [e for e in events if e["type"] == "Warning" and e["reason"] == reason
            and e["involvedObject"]["kind"] == "InferenceService"]


def nudge(cluster: Cluster, namespace: str, times: int = 3) -> None:
    """Make the operator reconcile again without changing anything it owns: Knative touches
    its Services all the time, here an annotation of the Knative Service (a watch event)."""
    for i in range(times):
        cluster.kubectl("annotate", "services.serving.knative.dev", KSVC, "-n", namespace,
                        f"test/nudge=n{i}", "--overwrite")
    time.sleep(2)


def test_stand_in_writes_what_real_knative_writes_for_a_failed_first_revision(
        cluster: Cluster, namespace: str) -> None:
    cluster.apply_yaml(sklearn_isvc("iris"), namespace)
    knative = KnativeStandIn(cluster, namespace)
    knative.wait_for_ksvc(KSVC)
    status = knative.observe(KSVC, ready=False, failure_message="Container failed with: ")
    conds = {c["type"]: c for c in status["conditions"]}
    missing = f'Configuration "{KSVC}" does not have any ready Revision.'
    assert (conds["Ready"]["status"], conds["Ready"]["reason"],
            conds["Ready"]["message"]) == ("False", "RevisionMissing", missing)
    assert (conds["RoutesReady"]["status"], conds["RoutesReady"]["reason"]) == (
        "False", "RevisionMissing")
    assert (conds["ConfigurationsReady"]["status"], conds["ConfigurationsReady"]["reason"]) == (
        "False", "RevisionFailed")
    assert status["url"] == f"http://{KSVC}.{namespace}.example.com"
    assert "latestReadyRevisionName" not in status and "traffic" not in status


def test_oom_killed_first_revision_is_named_shown_said_once_and_recovers(
        cluster: Cluster, namespace: str) -> None:
    cluster.apply_yaml(sklearn_isvc("iris"), namespace)
    knative = KnativeStandIn(cluster, namespace)
    knative.wait_for_ksvc(KSVC)
    revision_pod(cluster, namespace, REV1, {
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}})
    # Knative's own words for an OOMKilled container: exit code, empty message.
    knative.observe(KSVC, ready=False, failure_message="Container failed with: ")
    status = wait_for(
        lambda: (s := cluster.get_json("isvc", "iris", "-n", namespace).get("status") or {})
        and condition(s, "Ready").get("reason") == "OOMKilled" and s,
        message="Ready reason OOMKilled")
    for type_ in ("Ready", "PredictorReady", "PredictorConfigurationReady"):
        cond = condition(status, type_)
        assert cond["status"] == "False" and cond["reason"] == "OOMKilled", type_
        assert f"revision {REV1}: container kserve-container was killed because it ran out " \
               "of memory (OOMKilled, exit code 137); raise its memory limit of 64Mi" in (
                   cond["message"]), type_
    assert condition(status, "PredictorRouteReady")["reason"] == "RevisionMissing"
    assert condition(status, "IngressReady")["reason"] == "Predictor ingress not created"

    table = cluster.kubectl("get", "isvc", "iris", "-n", namespace)
    header, row = table.splitlines()[:2]
    assert header.split()[-1] == "REASON" and row.split()[-1] == "OOMKilled", table
    described = " ".join(cluster.kubectl("describe", "isvc", "iris", "-n", namespace).split())
    assert "ran out of memory (OOMKilled, exit code 137)" in described

    nudge(cluster, namespace)
    said = wait_for(lambda: warnings(cluster, namespace, "OOMKilled"), message="the warning")
    assert len(said) == 1 and said[0].get("count", 1) == 1, said
    assert "ran out of memory" in said[0]["message"]
    assert warnings(cluster, namespace, "RevisionMissing") == []

    fixed = sklearn_isvc("iris")
    fixed["spec"]["predictor"]["sklearn"]["resources"] = {"limits": {"memory": "4Gi"}}
    cluster.apply_yaml(fixed, namespace)
    wait_for(lambda: "4Gi" in json.dumps(knative.ksvc(KSVC)), message="ksvc to get the fix")
    knative.observe(KSVC, ready=True)
    status = wait_condition(cluster, namespace, "iris", "Ready", "True")
    assert condition(status, "PredictorReady")["status"] == "True"
    assert status["components"]["predictor"]["latestReadyRevision"] == REV2
    assert len(warnings(cluster, namespace, "OOMKilled")) == 1


def test_without_pods_the_configurations_message_is_the_cause(
        cluster: Cluster, namespace: str) -> None:
    cluster.apply_yaml(sklearn_isvc("iris"), namespace)
    knative = KnativeStandIn(cluster, namespace)
    knative.wait_for_ksvc(KSVC)
    knative.observe(KSVC, ready=False,
                    failure_message="0/1 nodes are available: 1 Insufficient memory")
    status = wait_for(
        lambda: (s := cluster.get_json("isvc", "iris", "-n", namespace).get("status") or {})
        and condition(s, "Ready").get("status") == "False" and s,
        message="Ready False")
    ready = condition(status, "Ready")
    assert ready["reason"] == "RevisionFailed"
    assert ready["message"] == (f'Revision "{REV1}" failed with message: 0/1 nodes are '
                                "available: 1 Insufficient memory; no revision is serving")
