"""Serverless reconcile against a real kube-apiserver, with a test standing in for Knative."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import yaml

from tests.support.cluster import Cluster, wait_for
from tests.support.isvc import (
    condition,
    get_or_none,
    isvc_status,
    sklearn_isvc,
    wait_condition,
)
from tests.support.knative import KnativeStandIn
from tests.support.operator import OperatorProcess

pytestmark = pytest.mark.usefixtures("operator")


def test_apply_creates_knative_service_and_external_name_service(
        cluster: Cluster, namespace: str) -> None:
    cluster.apply_yaml(sklearn_isvc("iris", minReplicas=2, maxReplicas=4, scaleTarget=10,
                                    scaleMetric="concurrency", containerConcurrency=3,
                                    timeout=120), namespace)
    knative = KnativeStandIn(cluster, namespace)
    ksvc = knative.wait_for_ksvc("iris-predictor-default")
    isvc = cluster.get_json("isvc", "iris", "-n", namespace)

    assert ksvc["metadata"]["labels"]["serving.kubeflow.org/inferenceservice"] == "iris"
    assert ksvc["metadata"]["labels"]["component"] == "predictor"
    owner = ksvc["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "InferenceService", "iris", isvc["metadata"]["uid"], True)
    template = ksvc["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert annotations["autoscaling.knative.dev/min-scale"] == "2"
    assert annotations["autoscaling.knative.dev/max-scale"] == "4"
    assert annotations["autoscaling.knative.dev/target"] == "10"
    assert annotations["autoscaling.knative.dev/metric"] == "concurrency"
    assert annotations["autoscaling.knative.dev/class"] == "kpa.autoscaling.knative.dev"
    assert annotations["internal.serving.kubeflow.org/storage-initializer-sourceuri"] == (
        "gs://models/iris/v1")
    spec = template["spec"]
    assert spec["containerConcurrency"] == 3
    assert spec["timeoutSeconds"] == 120
    container = spec["containers"][0]
    assert container["name"] == "kfserving-container"
    assert container["image"].startswith("kserve/sklearnserver:")
    assert container["args"][:3] == ["--model_name=iris", "--model_dir=/mnt/models",
                                     "--http_port=8080"]
    assert "--workers=3" in container["args"]
    assert ksvc["spec"]["traffic"] == [{"latestRevision": True, "percent": 100}]

    service = wait_for(lambda: get_or_none(cluster, "service", "iris", "-n", namespace),
                       message="ExternalName service")
    assert service["spec"]["type"] == "ExternalName"
    assert service["spec"]["externalName"] == (
        "knative-local-gateway.istio-system.svc.cluster.local")

    # Until Knative reports the predictor Ready there is no VirtualService, and the
    # InferenceService says it is waiting (Unknown), never a false "False".
    status = wait_for(lambda: isvc_status(cluster, namespace, "iris").get("conditions"),
                      message="initial conditions")
    del status
    status = isvc_status(cluster, namespace, "iris")
    assert condition(status, "IngressReady")["status"] == "Unknown"
    assert condition(status, "Ready")["status"] == "Unknown"
    for item in status["conditions"]:
        if item["status"] != "True":
            assert item.get("reason") and item.get("message"), item
    assert status["observedGeneration"] == 1
    assert get_or_none(cluster, "virtualservices.networking.istio.io", "iris", "-n",
                       namespace) is None


def test_knative_ready_makes_the_inference_service_ready(cluster: Cluster,
                                                          namespace: str) -> None:
    cluster.apply_yaml(sklearn_isvc("iris"), namespace)
    knative = KnativeStandIn(cluster, namespace)
    knative.wait_for_ksvc("iris-predictor-default")
    knative.observe("iris-predictor-default", ready=True)

    status = wait_condition(cluster, namespace, "iris", "Ready", "True")
    assert status["url"] == f"http://iris.{namespace}.example.com"
    assert status["address"]["url"] == (
        f"http://iris.{namespace}.svc.cluster.local/v1/models/iris:predict")
    predictor = status["components"]["predictor"]
    assert predictor["latestCreatedRevision"] == "iris-predictor-default-00001"
    assert predictor["latestReadyRevision"] == "iris-predictor-default-00001"
    assert predictor["latestRolledoutRevision"] == "iris-predictor-default-00001"
    assert predictor["url"] == f"http://iris-predictor-default.{namespace}.example.com"
    assert predictor["traffic"] == [{"latestRevision": True, "percent": 100,
                                     "revisionName": "iris-predictor-default-00001"}]
    for kind in ("PredictorReady", "IngressReady", "PredictorRouteReady",
                 "PredictorConfigurationReady"):
        assert condition(status, kind)["status"] == "True", kind

    vs = wait_for(lambda: get_or_none(cluster, "virtualservices.networking.istio.io", "iris",
                                      "-n", namespace), message="VirtualService")
    assert vs["spec"]["hosts"] == [f"iris.{namespace}.svc.cluster.local",
                                   f"iris.{namespace}.example.com"]
    assert vs["spec"]["gateways"] == ["knative-serving/knative-local-gateway",
                                      "knative-serving/knative-ingress-gateway"]
    route = vs["spec"]["http"][0]
    assert route["headers"]["request"]["set"]["Host"] == (
        f"iris-predictor-default.{namespace}.svc.cluster.local")
    assert route["route"][0]["destination"]["host"] == (
        "knative-local-gateway.istio-system.svc.cluster.local")
    events = cluster.kubectl("get", "events", "-n", namespace, "--field-selector",
                             "involvedObject.name=iris", "-o", "json")
    reasons = [e["reason"] for e in json.loads(events)["items"]]
    assert "InferenceServiceReady" in reasons


def test_revision_failure_surfaces_knative_message(cluster: Cluster, namespace: str) -> None:
    cluster.apply_yaml(sklearn_isvc("iris"), namespace)
    knative = KnativeStandIn(cluster, namespace)
    knative.wait_for_ksvc("iris-predictor-default")
    knative.observe("iris-predictor-default", ready=True)
    wait_condition(cluster, namespace, "iris", "Ready", "True")

    broken = sklearn_isvc("iris")
    broken["spec"]["predictor"]["sklearn"]["image"] = "registry.invalid/missing:1"
    cluster.apply_yaml(broken, namespace)
    wait_for(lambda: "registry.invalid" in json.dumps(knative.ksvc("iris-predictor-default")),
             message="ksvc to get the new image")
    knative.observe("iris-predictor-default", ready=False,
                    failure_message='Back-off pulling image "registry.invalid/missing:1"')
    status = wait_condition(cluster, namespace, "iris", "Ready", "False")
    ready = condition(status, "Ready")
    assert ready["reason"] == "RevisionFailed"
    assert 'Back-off pulling image "registry.invalid/missing:1"' in ready["message"]
    # the old revision keeps serving, and the status says so
    assert ready["message"].endswith("the previous revision iris-predictor-default-00001 "
                                     "keeps serving all traffic, iris-predictor-default-00002 "
                                     "gets none")
    assert condition(status, "PredictorReady")["status"] == "False"
    assert status["components"]["predictor"]["traffic"][0]["revisionName"] == (
        "iris-predictor-default-00001")
    wanted = ("InferenceServiceNotReady", "RevisionFailed")

    def said() -> list[str] | None:
        items = cluster.get_json("events", "-n", namespace)["items"]
        found = sorted(e["reason"] for e in items if e["reason"] in wanted)
        return found if len(found) >= len(wanted) else None

    assert wait_for(said, message="the NotReady and the failure events") == list(wanted)


def test_spec_change_bumps_observed_generation(cluster: Cluster, namespace: str) -> None:
    cluster.apply_yaml(sklearn_isvc("iris"), namespace)
    wait_for(lambda: isvc_status(cluster, namespace, "iris").get("observedGeneration") == 1,
             message="observedGeneration 1")
    cluster.apply_yaml(sklearn_isvc("iris", uri="gs://models/iris/v2"), namespace)
    generation = cluster.get_json("isvc", "iris", "-n", namespace)["metadata"]["generation"]
    assert generation == 2
    wait_for(lambda: isvc_status(cluster, namespace, "iris").get("observedGeneration") == 2,
             message="observedGeneration 2")
    ksvc = KnativeStandIn(cluster, namespace).ksvc("iris-predictor-default")
    annotations = ksvc["spec"]["template"]["metadata"]["annotations"]
    assert annotations["internal.serving.kubeflow.org/storage-initializer-sourceuri"] == (
        "gs://models/iris/v2")


def with_transformer(name: str) -> dict[str, Any]:
    isvc = sklearn_isvc(name)
    isvc["spec"]["transformer"] = {"containers": [{"image": "example/transformer:1"}]}
    return isvc


def test_transformer_counts_and_removal_deletes_its_knative_service(
        cluster: Cluster, namespace: str) -> None:
    cluster.apply_yaml(with_transformer("iris"), namespace)
    knative = KnativeStandIn(cluster, namespace)
    transformer = knative.wait_for_ksvc("iris-transformer-default")
    args = transformer["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--predictor_host" in args
    assert args[args.index("--predictor_host") + 1] == f"iris-predictor-default.{namespace}"
    knative.observe("iris-predictor-default", ready=True)
    status = wait_condition(cluster, namespace, "iris", "PredictorReady", "True")
    assert condition(status, "Ready")["status"] != "True"  # the transformer is not ready
    knative.observe("iris-transformer-default", ready=True)
    status = wait_condition(cluster, namespace, "iris", "Ready", "True")
    assert condition(status, "TransformerReady")["status"] == "True"
    vs = cluster.get_json("virtualservices.networking.istio.io", "iris", "-n", namespace)
    assert vs["spec"]["http"][-1]["headers"]["request"]["set"]["Host"] == (
        f"iris-transformer-default.{namespace}.svc.cluster.local")

    cluster.apply_yaml(sklearn_isvc("iris"), namespace)
    wait_for(lambda: get_or_none(cluster, "services.serving.knative.dev",
                                 "iris-transformer-default", "-n", namespace) is None,
             message="transformer ksvc deletion")
    status = wait_for(
        lambda: (s := isvc_status(cluster, namespace, "iris"))
        and "transformer" not in s.get("components", {})
        and not condition(s, "TransformerReady") and s,
        message="transformer gone from status")
    assert condition(status, "Ready")["status"] == "True"


def test_deleting_the_inference_service_collects_its_children(cluster: Cluster,
                                                              namespace: str) -> None:
    cluster.apply_yaml(with_transformer("iris"), namespace)
    knative = KnativeStandIn(cluster, namespace)
    for name in ("iris-predictor-default", "iris-transformer-default"):
        knative.wait_for_ksvc(name)
        knative.observe(name, ready=True)
    wait_condition(cluster, namespace, "iris", "Ready", "True")
    wait_for(lambda: get_or_none(cluster, "virtualservices.networking.istio.io", "iris", "-n",
                                 namespace), message="VirtualService")
    cluster.kubectl("delete", "isvc", "iris", "-n", namespace)

    def children_left() -> list[str]:
        left = []
        for kind in ("services.serving.knative.dev", "virtualservices.networking.istio.io",
                     "services"):
            items = json.loads(cluster.kubectl("get", kind, "-n", namespace, "-o", "json"))
            left += [f"{kind}/{i['metadata']['name']}" for i in items["items"]]
        return left

    # The garbage collector of kube-controller-manager does this, at its own pace on a
    # loaded machine.
    try:
        wait_for(lambda: not children_left(), timeout=120, message="garbage collection")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; children left: {children_left()}") from exc


def test_no_writes_when_nothing_changed_and_across_restart(
        cluster: Cluster, namespace: str, operator: OperatorProcess | None) -> None:
    if operator is None or operator.audit_log is None:
        pytest.skip("counting requests needs the local control plane's audit log")
    cluster.apply_yaml(with_transformer("iris"), namespace)
    knative = KnativeStandIn(cluster, namespace)
    for name in ("iris-predictor-default", "iris-transformer-default"):
        knative.wait_for_ksvc(name)
        knative.observe(name, ready=True)
    wait_condition(cluster, namespace, "iris", "Ready", "True")
    wait_for(lambda: get_or_none(cluster, "virtualservices.networking.istio.io", "iris", "-n",
                                 namespace), message="VirtualService")
    time.sleep(2)  # let the last status write and its watch events settle

    offset, since = operator.audit_offset(), operator.log_offset()
    # Events that make the operator reconcile without changing anything it owns.
    cluster.kubectl("annotate", "services.serving.knative.dev", "iris-predictor-default",
                    "-n", namespace, "example.com/touched=1")
    cluster.kubectl("label", "virtualservices.networking.istio.io", "iris", "-n", namespace,
                    "example.com/touched=1")
    knative.observe("iris-predictor-default", ready=True)  # same status again
    # First the proof that the operator is alive and reconciled after those events.
    operator.wait_reconciled(f"{namespace}/iris", since=since)
    writes = operator.writes_since(offset, namespace)
    assert writes == [], yaml.safe_dump([(w["verb"], w["requestURI"]) for w in writes])

    offset, since = operator.audit_offset(), operator.log_offset()
    operator.restart()
    operator.wait_reconciled(f"{namespace}/iris", since=since)  # the start's resync
    writes = operator.writes_since(offset, namespace)
    assert writes == [], yaml.safe_dump([(w["verb"], w["requestURI"]) for w in writes])
    assert condition(isvc_status(cluster, namespace, "iris"), "Ready")["status"] == "True"


def test_edited_child_is_repaired(cluster: Cluster, namespace: str) -> None:
    cluster.apply_yaml(sklearn_isvc("iris"), namespace)
    knative = KnativeStandIn(cluster, namespace)
    knative.wait_for_ksvc("iris-predictor-default")
    cluster.kubectl("patch", "services.serving.knative.dev", "iris-predictor-default", "-n",
                    namespace, "--type=json", "-p", json.dumps([
                        {"op": "replace", "path": "/spec/traffic/0/percent", "value": 50}]))
    wait_for(lambda: knative.ksvc("iris-predictor-default")["spec"]["traffic"][0]["percent"]
             == 100, message="operator to restore the traffic it owns")


def test_multi_model_predictor_gets_its_model_config_map(cluster: Cluster,
                                                        namespace: str) -> None:
    cluster.apply_yaml({
        "apiVersion": "serving.kubeflow.org/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "mms"},
        "spec": {"predictor": {"triton": {}}},
    }, namespace)
    configmap = wait_for(lambda: get_or_none(cluster, "configmap", "modelconfig-mms-0", "-n",
                                             namespace), message="model config map")
    assert configmap["data"] == {"models.json": "[]"}
    assert configmap["metadata"]["ownerReferences"][0]["name"] == "mms"
    # Its content is the InferenceService's TrainedModels (none here): a hand-written entry
    # is replaced when the InferenceService next changes.
    cluster.kubectl("patch", "configmap", "modelconfig-mms-0", "-n", namespace, "--type=merge",
                    "-p", json.dumps({"data": {"models.json": '[{"modelName": "a"}]'}}))
    cluster.apply_yaml({
        "apiVersion": "serving.kubeflow.org/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "mms", "labels": {"team": "a"}},
        "spec": {"predictor": {"triton": {}}},
    }, namespace)
    knative = KnativeStandIn(cluster, namespace)
    wait_for(lambda: knative.ksvc("mms-predictor-default")["metadata"]["labels"].get("team")
             == "a", message="relabelled ksvc")
    wait_for(lambda: cluster.get_json("configmap", "modelconfig-mms-0", "-n", namespace)[
        "data"] == {"models.json": "[]"}, message="hand-written model entry replaced")
