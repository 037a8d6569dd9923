"""TrainedModels against the real apiserver: admission, models.json, status, deletion, writes."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import yaml

from tests.support.cluster import Cluster, KubectlError, wait_for
from tests.support.knative import KnativeStandIn
from tests.support.operator import OperatorProcess

pytestmark = pytest.mark.usefixtures("operator")


def mms_isvc(name: str = "mms", memory: str | None = None, **sklearn: Any) -> dict[str, Any]:
    spec: dict[str, Any] = dict(sklearn)
    if memory:
        spec["resources"] = {"limits": {"memory": memory}}
    return {"apiVersion": "serving.kubeflow.org/v1beta1", "kind": "InferenceService",
            "metadata": {"name": name}, "spec": {"predictor": {"sklearn": spec}}}


def trained_model(name: str, parent: str = "mms", memory: str = "256Mi",
                  framework: str = "sklearn", uri: str | None = None) -> dict[str, Any]:
    return {"apiVersion": "serving.kubeflow.org/v1alpha1", "kind": "TrainedModel",
            "metadata": {"name": name},
            "spec": {"inferenceService": parent,
                     "model": {"storageUri": uri or f"gs://models/{name}",
                               "framework": framework, "memory": memory}}}


def tm_json(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    out = cluster.kubectl("get", "trainedmodels.serving.kubeflow.org", name, "-n", namespace,
                          "-o", "json", check=False)
    return json.loads(out) if out else None


def tm_condition(cluster: Cluster, namespace: str, name: str, kind: str) -> dict[str, Any]:
    obj = tm_json(cluster, namespace, name) or {}
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond["type"] == kind:
            return dict(cond)
    return {}


def wait_tm(cluster: Cluster, namespace: str, name: str, kind: str, status: str,
            reason: str | None = None, timeout: float = 30) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        cond = tm_condition(cluster, namespace, name, kind)
        if cond.get("status") == status and (reason is None or cond.get("reason") == reason):
            return cond
        return None

    result: dict[str, Any] = wait_for(check, timeout=timeout,
                                      message=f"TrainedModel {name} {kind}={status} {reason}")
    return result


def models_json(cluster: Cluster, namespace: str, isvc: str = "mms") -> list[dict[str, Any]]:
    out = cluster.kubectl("get", "configmap", f"modelconfig-{isvc}-0", "-n", namespace, "-o",
                          "json", check=False)
    if not out:
        return []
    entries: list[dict[str, Any]] = json.loads(json.loads(out)["data"]["models.json"])
    return entries


def model_names(cluster: Cluster, namespace: str, isvc: str = "mms") -> list[str]:
    return [entry["modelName"] for entry in models_json(cluster, namespace, isvc)]


def ready_mms(cluster: Cluster, namespace: str, name: str = "mms", **kwargs: Any) -> None:
    cluster.apply_yaml(mms_isvc(name, **kwargs), namespace)
    knative = KnativeStandIn(cluster, namespace)
    knative.wait_for_ksvc(f"{name}-predictor-default")
    knative.observe(f"{name}-predictor-default", ready=True)
    cluster.kubectl("wait", "--for=condition=Ready", f"isvc/{name}", "-n", namespace,
                    "--timeout=60s")


def test_trained_models_are_written_into_the_model_config_and_become_ready(
        cluster: Cluster, namespace: str) -> None:
    ready_mms(cluster, namespace)
    cluster.apply_yaml(trained_model("model-a"), namespace)
    cluster.apply_yaml(trained_model("model-b", memory="512Mi"), namespace)
    for name in ("model-a", "model-b"):
        wait_tm(cluster, namespace, name, "Ready", "True")
    assert models_json(cluster, namespace) == [
        {"modelName": "model-a", "modelSpec": {"storageUri": "gs://models/model-a",
                                               "framework": "sklearn", "memory": "256Mi"}},
        {"modelName": "model-b", "modelSpec": {"storageUri": "gs://models/model-b",
                                               "framework": "sklearn", "memory": "512Mi"}},
    ]
    obj = tm_json(cluster, namespace, "model-a") or {}
    assert obj["status"]["url"] == f"http://mms.{namespace}.example.com/v1/models/model-a:predict"
    assert obj["status"]["address"]["url"] == (
        f"http://mms.{namespace}.svc.cluster.local/v1/models/model-a:predict")
    isvc = cluster.get_json("isvc", "mms", "-n", namespace)
    [owner] = obj["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "InferenceService", "mms", isvc["metadata"]["uid"])
    assert obj["metadata"]["labels"]["inferenceservice"] == "mms"
    table = cluster.kubectl("get", "tm", "-n", namespace)
    header = table.splitlines()[0].split()
    assert header == ["NAME", "URL", "READY", "AGE"]
    assert "/v1/models/model-b:predict" in table and "True" in table

    cluster.kubectl("delete", "tm", "model-a", "-n", namespace)
    wait_for(lambda: model_names(cluster, namespace) == ["model-b"],
             message="model-a removed from models.json")


def test_admission_refuses_models_the_parent_cannot_serve(cluster: Cluster,
                                                          namespace: str) -> None:
    cluster.apply_yaml(mms_isvc(), namespace)
    cluster.apply_yaml({**mms_isvc("single", storageUri="gs://one/model")}, namespace)

    def refused(manifest: dict[str, Any]) -> str:
        with pytest.raises(KubectlError) as info:
            cluster.apply_yaml(manifest, namespace)
        return info.value.stderr

    assert "spec.inferenceService: InferenceService 'nope' does not exist" in refused(
        trained_model("m", parent="nope"))
    message = refused(trained_model("m", parent="single"))
    assert "spec.inferenceService: must name a multi-model InferenceService" in message
    assert "storageUri" in message
    assert "spec.model.framework: must be one of [sklearn]" in refused(
        trained_model("m", framework="tensorflow"))
    assert "spec.model.memory: must be a Kubernetes quantity" in refused(
        trained_model("m", memory="lots"))
    assert "spec.model.storageUri: the model agent pulls from URIs starting with" in refused(
        trained_model("m", uri="pvc://claim/model"))
    # A name already in the model config (written by hand here) is refused.
    wait_for(lambda: cluster.kubectl("get", "configmap", "modelconfig-mms-0", "-n", namespace,
                                     check=False), message="model config map")
    cluster.kubectl("patch", "configmap", "modelconfig-mms-0", "-n", namespace, "--type=merge",
                    "-p", json.dumps({"data": {"models.json": json.dumps(
                        [{"modelName": "taken", "modelSpec": {}}])}}))
    assert "metadata.name: a model named 'taken' is already in ConfigMap" in refused(
        trained_model("taken"))
    # Memory is immutable once admitted.
    cluster.apply_yaml(trained_model("fixed"), namespace)
    assert "spec.model.memory: is immutable" in refused(trained_model("fixed", memory="1Gi"))


def test_status_says_why_a_model_is_not_served(cluster: Cluster, namespace: str) -> None:
    ready_mms(cluster, namespace, memory="1Gi")
    cluster.apply_yaml(trained_model("fits", memory="768Mi"), namespace)
    wait_tm(cluster, namespace, "fits", "Ready", "True")
    cluster.apply_yaml(trained_model("too-big", memory="512Mi"), namespace)
    cond = wait_tm(cluster, namespace, "too-big", "Ready", "False", "MemoryResourceNotAvailable")
    assert "1Gi" in cond["message"] and "768Mi" in cond["message"]
    assert model_names(cluster, namespace) == ["fits"]

    # The ConfigMap data may not exceed 1 MiB: two models with 600 kB storage URIs.
    ready_mms(cluster, namespace, "big")
    long_uri = "https://models.example.com/" + "a" * 600_000
    # (created, not applied: kubectl apply would copy them into a too large annotation)
    for name in ("first", "second"):
        cluster.kubectl("create", "-n", namespace, "-f", "-", input=yaml.safe_dump(
            trained_model(name, "big", uri=long_uri + name)))
        if name == "first":
            wait_tm(cluster, namespace, "first", "ModelConfigured", "True")
    cond = wait_tm(cluster, namespace, "second", "Ready", "False", "ModelConfigFull")
    assert "modelconfig-big-0 is full" in cond["message"]
    assert model_names(cluster, namespace, "big") == ["first"]

    # The parent becomes a single-model server: its models say so.
    cluster.apply_yaml(mms_isvc("mms", memory="1Gi", storageUri="gs://one/model"), namespace)
    cond = wait_tm(cluster, namespace, "fits", "IsMMSPredictor", "False", "IsNotMMSPredictor")
    assert "storageUri" in cond["message"]
    assert tm_condition(cluster, namespace, "fits", "Ready")["status"] == "False"

    # The parent goes, its models stay (orphaned by the user): they report it.
    cluster.kubectl("delete", "isvc", "big", "-n", namespace, "--cascade=orphan")
    cond = wait_tm(cluster, namespace, "first", "Ready", "False", "InferenceServiceNotFound",
                   timeout=60)
    assert "'big' does not exist" in cond["message"]


def test_deleting_the_inference_service_deletes_its_trained_models(
        cluster: Cluster, namespace: str, operator: OperatorProcess | None) -> None:
    if operator is None:
        pytest.skip("stops the operator process")
    ready_mms(cluster, namespace)
    for name in ("m1", "m2"):
        cluster.apply_yaml(trained_model(name), namespace)
        wait_tm(cluster, namespace, name, "Ready", "True")
    cluster.kubectl("delete", "isvc", "mms", "-n", namespace)
    wait_for(lambda: not json.loads(cluster.kubectl(
        "get", "tm", "-n", namespace, "-o", "json"))["items"], timeout=60,
        message="TrainedModels garbage-collected with their InferenceService")

    # Also while the operator is down: deletion never waits for it.
    ready_mms(cluster, namespace, "mms2")
    cluster.apply_yaml(trained_model("m3", "mms2"), namespace)
    wait_tm(cluster, namespace, "m3", "Ready", "True")
    operator.stop()
    try:
        cluster.kubectl("delete", "isvc", "mms2", "-n", namespace, "--timeout=30s")
        wait_for(lambda: tm_json(cluster, namespace, "m3") is None, timeout=60,
                 message="TrainedModel deleted while the operator is down")
    finally:
        operator.start()


def test_no_writes_when_nothing_changed_and_across_restart(
        cluster: Cluster, namespace: str, operator: OperatorProcess | None) -> None:
    if operator is None or operator.audit_log is None:
        pytest.skip("counting requests needs the local control plane's audit log")
    ready_mms(cluster, namespace)
    for name in ("m1", "m2"):
        cluster.apply_yaml(trained_model(name), namespace)
    for name in ("m1", "m2"):
        wait_tm(cluster, namespace, name, "Ready", "True")
    time.sleep(2)

    offset, since = operator.audit_offset(), operator.log_offset()
    # Events that make the TrainedModel controller reconcile without changing anything.
    cluster.kubectl("label", "tm", "m1", "-n", namespace, "example.com/touched=1")
    KnativeStandIn(cluster, namespace).observe("mms-predictor-default", ready=True)
    # First the proof that the controller is alive and reconciled after those events.
    operator.wait_reconciled(f"{namespace}/mms", since=since, trained_models=True)
    writes = operator.writes_since(offset, namespace)
    assert writes == [], yaml.safe_dump([(w["verb"], w["requestURI"]) for w in writes])

    offset, since = operator.audit_offset(), operator.log_offset()
    operator.restart()
    operator.wait_reconciled(f"{namespace}/mms", since=since)  # the start's resync
    operator.wait_reconciled(f"{namespace}/mms", since=since, trained_models=True)
    writes = operator.writes_since(offset, namespace)
    assert writes == [], yaml.safe_dump([(w["verb"], w["requestURI"]) for w in writes])

    # A model deleted while the operator is down leaves models.json at the next start.
    operator.stop()
    try:
        cluster.kubectl("delete", "tm", "m2", "-n", namespace)
    finally:
        operator.start()
    wait_for(lambda: model_names(cluster, namespace) == ["m1"], timeout=30,
             message="stale model removed after the restart")
