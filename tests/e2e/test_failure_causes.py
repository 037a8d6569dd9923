"""A status that says why, on real Knative: five ways a model pod fails, and the way back.

Real Knative Serving decides that a revision failed; KWOK plays the kubelet and makes the pod
fail the way a kubelet reports it (hack/kwok/failure-stages.yaml, selected by annotations the
test puts on the InferenceService); kube-scheduler reports the pod it cannot place. For each
cause the InferenceService's Ready condition, its component conditions, `kubectl get` and
`kubectl describe` name the cause, one Warning event says it, and applying the fix turns it
Ready again.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import Cluster, wait_for

pytestmark = pytest.mark.usefixtures("operator")

STAGES = Path(__file__).resolve().parents[2] / "hack" / "kwok" / "failure-stages.yaml"
NAME = "iris"
KSVC = f"{NAME}-predictor-default"
CAUSE = "fail.kfserving-operator.test/cause"
# Knative waits this long for a pod that never becomes ready before it fails the revision
# (its default is 10 minutes); the crash loop is reported without waiting.
PROGRESS_DEADLINE = {"serving.knative.dev/progress-deadline": "8s"}
# kwok's own stages must never race the failure stages (weight 0 is never picked).
NO_RACE = {"pod-ready.stage.kwok.x-k8s.io/weight": "0",
           "pod-init-container-running.stage.kwok.x-k8s.io/weight": "0"}
STORAGE_URI = "gs://kfserving-examples/models/sklearn/1.0/model"
WAIT = 120.0


@dataclass(frozen=True)
class Cause:
    annotations: dict[str, str]
    reason: str
    words: tuple[str, ...]
    sklearn: dict[str, Any] = field(default_factory=dict)


CAUSES = {
    "image-pull": Cause(
        {CAUSE: "image-pull"}, "ImagePullBackOff",
        ("of container kfserving-container cannot be pulled (ImagePullBackOff: Back-off pulling "
         "image", "check the image name and tag")),
    "crash-loop": Cause(
        {CAUSE: "crash-loop", "fail.kfserving-operator.test/exit-code": "3",
         "fail.kfserving-operator.test/message": "model file not found in /mnt/models"},
        "CrashLoopBackOff",
        ("container kfserving-container keeps exiting with exit code 3",
         "model file not found in /mnt/models")),
    "oom-killed": Cause(
        {CAUSE: "oom-killed"}, "OOMKilled",
        ("container kfserving-container was killed because it ran out of memory (OOMKilled, exit "
         "code 137); raise its memory limit of 300Mi",),
        {"resources": {"requests": {"memory": "300Mi"}, "limits": {"memory": "300Mi"}}}),
    "storage-initializer": Cause(
        {CAUSE: "storage-initializer",
         "fail.kfserving-operator.test/message": "403 Forbidden: no access to "
                                                 "gs://kfserving-examples"},
        "StorageInitializerFailed",
        ("the storage-initializer could not download the model (exit code 1): 403 Forbidden",
         "check storageUri")),
    "unschedulable": Cause(
        {}, "Unschedulable",
        # The scheduler's own words; the lane has two nodes (KWOK's and the real one).
        ("its pod cannot be scheduled: 0/", "nodes are available", "Insufficient memory"),
        {"resources": {"requests": {"memory": "4Ti"}, "limits": {"memory": "4Ti"}}}),
}


def isvc(annotations: dict[str, str] | None = None, canary: int | None = None,
         **sklearn: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"sklearn": {"storageUri": STORAGE_URI, **sklearn}}
    if canary is not None:
        spec["canaryTrafficPercent"] = canary
    return {"apiVersion": "serving.kubeflow.org/v1beta1", "kind": "InferenceService",
            "metadata": {"name": NAME, "annotations": annotations or {}},
            "spec": {"predictor": spec}}


def failing(cause: Cause, canary: int | None = None) -> dict[str, Any]:
    return isvc({**PROGRESS_DEADLINE, **NO_RACE, **cause.annotations}, canary,
                **copy.deepcopy(cause.sklearn))


def status(cluster: Cluster, namespace: str) -> dict[str, Any]:
    result: dict[str, Any] = cluster.get_json("isvc", NAME, "-n", namespace).get("status") or {}
    return result


def conditions(cluster: Cluster, namespace: str) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status(cluster, namespace).get("conditions") or []}


def wait_reason(cluster: Cluster, namespace: str, reason: str) -> dict[str, dict[str, Any]]:
    def check() -> dict[str, dict[str, Any]] | None:
        conds = conditions(cluster, namespace)
        ready = conds.get("Ready", {})
        return conds if (ready.get("status"), ready.get("reason")) == ("False", reason) else None

    result: dict[str, dict[str, Any]] = wait_for(
        check, timeout=WAIT, interval=0.5, message=f"Ready=False {reason}")
    return result


def wait_ready(cluster: Cluster, namespace: str) -> dict[str, Any]:
    cluster.kubectl("wait", "--for=condition=Ready", f"isvc/{NAME}", "-n", namespace,
                    f"--timeout={int(WAIT)}s")
    return status(cluster, namespace)


def warnings(cluster: Cluster, namespace: str, reason: str) -> list[dict[str, Any]]:
    items = cluster.get_json("events", "-n", namespace,
                             "--field-selector", f"involvedObject.name={NAME}")["items"]
    return [e for e in items if e["type"] == "Warning" and e["reason"] == reason]


def assert_said_once(cluster: Cluster, namespace: str, reason: str, words: str) -> None:
    said = wait_for(lambda: warnings(cluster, namespace, reason), timeout=30,
                    message=f"a Warning {reason}")
    # Knative keeps reconciling (and so does the operator, on every Knative status change):
    # give it time to repeat itself, then count.
    time.sleep(5)
    said = warnings(cluster, namespace, reason)
    assert len(said) == 1 and said[0].get("count", 1) == 1, said
    assert words in said[0]["message"], said[0]["message"]


@pytest.fixture(scope="module", autouse=True)
def _failure_stages(cluster: Cluster) -> Iterator[None]:
    """KWOK's fake node and the failure stages, as Stage objects (KWOK runs with
    ``--enable-crds=Stage``); removed again afterwards."""
    nodes = cluster.get_json("nodes")["items"]
    if not any((n["metadata"].get("annotations") or {}).get("kwok.x-k8s.io/node") == "fake"
               for n in nodes):
        pytest.skip("needs the Knative lane's KWOK node (kfserving-operator cluster up --knative)")
    cluster.kubectl("apply", "-f", str(STAGES))
    try:
        yield
    finally:
        cluster.kubectl("delete", "-f", str(STAGES), "--ignore-not-found", check=False)


@pytest.mark.parametrize("name", sorted(CAUSES))
def test_failed_first_revision_says_why_once_and_recovers(
        cluster: Cluster, namespace: str, name: str, report: Callable[[str], None]) -> None:
    cause = CAUSES[name]
    started = time.monotonic()
    cluster.apply_yaml(failing(cause), namespace)
    conds = wait_reason(cluster, namespace, cause.reason)
    report(f"Ready=False after {time.monotonic() - started:.1f}s: {cause.reason}: "
           f"{conds['Ready']['message']}")

    revision = f"{KSVC}-00001"
    for type_ in ("Ready", "PredictorReady", "PredictorConfigurationReady"):
        cond = conds[type_]
        assert (cond["status"], cond["reason"]) == ("False", cause.reason), (type_, cond)
        assert cond["message"].startswith(f"revision {revision}: "), (type_, cond)
        assert cond["message"].endswith("; no revision is serving"), (type_, cond)
        for words in cause.words:
            assert words in cond["message"], (type_, words, cond["message"])
    # Knative's own word for the route stays where it is true; it is not the headline.
    assert conds["PredictorRouteReady"]["reason"] == "RevisionMissing"
    assert conds["IngressReady"]["reason"] == "Predictor ingress not created"
    assert cause.words[0] in conds["IngressReady"]["message"]

    table = cluster.kubectl("get", "isvc", NAME, "-n", namespace).splitlines()
    assert table[0].split()[-1] == "REASON" and table[1].split()[-1] == cause.reason, table
    described = " ".join(cluster.kubectl("describe", "isvc", NAME, "-n", namespace).split())
    assert cause.words[0] in described

    assert_said_once(cluster, namespace, cause.reason, cause.words[0])

    started = time.monotonic()
    cluster.apply_yaml(isvc(), namespace)
    fixed = wait_ready(cluster, namespace)
    report(f"fixed: Ready=True after {time.monotonic() - started:.1f}s")
    ready = {c["type"]: c for c in fixed["conditions"]}
    assert ready["PredictorReady"]["status"] == "True"
    assert ready["PredictorConfigurationReady"]["status"] == "True"
    assert fixed["components"]["predictor"]["latestReadyRevision"] == f"{KSVC}-00002"
    assert len(warnings(cluster, namespace, cause.reason)) == 1


def test_failed_canary_keeps_the_previous_revision_serving_and_says_so(
        cluster: Cluster, namespace: str, report: Callable[[str], None]) -> None:
    cluster.apply_yaml(isvc(), namespace)
    wait_ready(cluster, namespace)
    old, new = f"{KSVC}-00001", f"{KSVC}-00002"

    cause = CAUSES["crash-loop"]
    cluster.apply_yaml(failing(cause, canary=20), namespace)
    conds = wait_reason(cluster, namespace, cause.reason)
    message = conds["Ready"]["message"]
    report(f"canary: Ready=False {conds['Ready']['reason']}: {message}")
    assert message.startswith(f"revision {new}: "), message
    assert cause.words[0] in message
    assert message.endswith(f"the previous revision {old} keeps serving all traffic, "
                            f"{new} gets none"), message
    assert conds["PredictorRouteReady"]["status"] == "True"
    traffic = status(cluster, namespace)["components"]["predictor"]["traffic"]
    assert {t["revisionName"] for t in traffic} == {old}, traffic
    assert sum(t["percent"] for t in traffic) == 100

    cluster.apply_yaml(isvc(canary=20), namespace)
    fixed = wait_ready(cluster, namespace)
    shares = {t["revisionName"]: t["percent"]
              for t in fixed["components"]["predictor"]["traffic"]}
    assert shares == {old: 80, f"{KSVC}-00003": 20}, shares
