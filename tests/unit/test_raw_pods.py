"""The raw pods and ReplicaSets the shell keeps from their informers (operator/raw_reads.py):
only what the status reads, news only when that changes, and the same causes as from the
full objects."""

from __future__ import annotations

import copy
from typing import Any

from kfserving_operator.api.config import OperatorConfig
from kfserving_operator.operator.cache import Children
from kfserving_operator.operator.raw_reads import RawPods
from kfserving_operator.reconcile.plan import Plan, plan_reconcile
from kfserving_operator.render import RENDER_TIME
from tests.support.raw import key, observed, starting_deployment

DEPLOYMENT = "model-predictor-default"
PARENT = ("default", "model")
ISVC = {
    "apiVersion": "serving.kubeflow.org/v1beta1", "kind": "InferenceService",
    "metadata": {"name": "model", "namespace": "default", "uid": "u1", "generation": 1,
                 "annotations": {"serving.kubeflow.org/deploymentMode": "RawDeployment"}},
    "spec": {"predictor": {"sklearn": {"storageUri": "gs://bucket/model"}}},
}


def _labels(pod_hash: str) -> dict[str, str]:
    return {"serving.kubeflow.org/inferenceservice": "model", "component": "predictor",
            "app": f"isvc.{DEPLOYMENT}", "pod-template-hash": pod_hash}


def _replica_set(revision: str, pod_hash: str, ready: int = 0) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {
        "name": f"{DEPLOYMENT}-{pod_hash}", "namespace": "default", "resourceVersion": "7",
        "labels": _labels(pod_hash), "managedFields": [{"manager": "kcm"}],
        "annotations": {"deployment.kubernetes.io/revision": revision,
                        "deployment.kubernetes.io/desired-replicas": "1"}},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "x"}]}}},
        "status": {"replicas": 1, "readyReplicas": ready, "observedGeneration": 1}}


def _pod(name: str, pod_hash: str, container_status: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": name, "namespace": "default", "resourceVersion": "9", "labels": _labels(pod_hash),
        "annotations": {"serving.kubeflow.org/storage-initializer-sourceuri": "gs://b/m"}},
        "spec": {"containers": [{
            "name": "kfserving-container", "image": "img:1", "args": ["--model_dir=/mnt"],
            "env": [{"name": "A", "value": "b"}],
            "resources": {"limits": {"memory": "1Gi", "cpu": "1"}}}],
            "initContainers": [{"name": "storage-initializer", "image": "init:1"}],
            "volumes": [{"name": "v", "emptyDir": {}}]},
        "status": {"phase": "Running", "podIP": "10.0.0.9", "conditions": [
            {"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [{"name": "kfserving-container", **container_status}]}}


CRASH = {"restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
         "lastState": {"terminated": {"exitCode": 3, "reason": "Error"}}}
OOM = {"restartCount": 1, "lastState": {"terminated": {"exitCode": 137,
                                                        "reason": "OOMKilled"}}}


def _live_deployment() -> dict[str, Any]:
    first = plan_reconcile(ISVC, OperatorConfig(), observed([]), RENDER_TIME)
    deployment = next(o for o in first.apply if o["kind"] == "Deployment")
    return starting_deployment(deployment)


def _ready(plan: Plan) -> dict[str, Any]:
    return next(c for c in plan.status["conditions"] if c["type"] == "PredictorReady")


def test_the_kept_fields_give_the_same_causes_as_the_full_objects() -> None:
    live = _live_deployment()
    replica_sets = (_replica_set("1", "abc"), _replica_set("0", "old", ready=1))
    for status in (CRASH, OOM):
        pods = (_pod("p1", "abc", status),)
        full = plan_reconcile(ISVC, OperatorConfig(), observed(
            [live], raw_replica_sets={DEPLOYMENT: replica_sets},
            raw_pods={DEPLOYMENT: pods}), RENDER_TIME)
        kept = RawPods()
        for obj in (*replica_sets, *pods):
            assert kept.put(copy.deepcopy(obj)) == PARENT
        found_sets, found_pods = kept.incomplete("default", Children(raw={key(live): live}))
        assert len(found_sets[DEPLOYMENT]) == 2 and len(found_pods[DEPLOYMENT]) == 1
        trimmed = plan_reconcile(ISVC, OperatorConfig(), observed(
            [live], raw_replica_sets=found_sets, raw_pods=found_pods), RENDER_TIME)
        assert _ready(trimmed) == _ready(full)
        assert _ready(trimmed)["status"] == "False"
    assert "1Gi" in _ready(trimmed)["message"]  # the memory limit, from the kept spec
    assert "previous ReplicaSet" in _ready(trimmed)["message"]
    stored = kept.selected("default", live)[1][0]
    assert "env" not in stored["spec"]["containers"][0] and "volumes" not in stored["spec"]
    assert "managedFields" not in kept.selected("default", live)[0][0]["metadata"]


def test_only_a_change_the_status_reads_is_news() -> None:
    kept = RawPods()
    pod = _pod("p1", "abc", CRASH)
    assert kept.put(pod) == PARENT
    bookkeeping = copy.deepcopy(pod)
    bookkeeping["metadata"]["resourceVersion"] = "10"
    bookkeeping["status"]["podIP"] = "10.0.0.10"
    assert kept.put(bookkeeping) is None
    restarted = copy.deepcopy(pod)
    restarted["status"]["containerStatuses"][0]["restartCount"] = 4
    assert kept.put(restarted) == PARENT
    replica_set = _replica_set("1", "abc")
    assert kept.put(replica_set) == PARENT
    scaled = copy.deepcopy(replica_set)
    scaled["status"]["observedGeneration"] = 2
    assert kept.put(scaled) is None
    scaled["status"]["readyReplicas"] = 1
    assert kept.put(scaled) == PARENT
    assert len(kept) == 2
    assert [o["metadata"]["name"] for o in kept.of_kind("Pod")] == ["p1"]
    assert kept.put(restarted, deleted=True) == PARENT
    assert kept.put(restarted, deleted=True) is None  # already gone
    assert list(kept.of_kind("Pod")) == [] and len(kept) == 1


def test_a_pod_of_another_deployment_or_complete_deployment_is_not_read() -> None:
    live = _live_deployment()
    kept = RawPods()
    other = _pod("q", "abc", CRASH)
    other["metadata"]["labels"]["app"] = "isvc.other-predictor-default"
    kept.put(other)
    assert kept.selected("default", live) == ((), ())
    assert kept.put({**other, "metadata": {**other["metadata"], "labels": {}}}) is None
    assert len(kept) == 0  # relabelled out of the selector: forgotten
    kept.put(_pod("p", "abc", CRASH))
    complete = copy.deepcopy(live)
    complete["status"]["conditions"][0].update(status="True", reason="MinimumReplicasAvailable")
    complete["status"].update(readyReplicas=1, availableReplicas=1)
    assert kept.incomplete("default", Children(raw={key(complete): complete})) == ({}, {})
