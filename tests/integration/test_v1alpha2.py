"""v1alpha2 InferenceServices through the real apiserver and the operator's conversion webhook."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.support.cluster import PROJECT_CRDS, Cluster, KubectlError, wait_for
from tests.support.knative import KnativeStandIn

pytestmark = pytest.mark.usefixtures("operator")

V1ALPHA2 = "inferenceservices.v1alpha2.serving.kubeflow.org"
V1BETA1 = "inferenceservices.v1beta1.serving.kubeflow.org"


def get(cluster: Cluster, resource: str, name: str, namespace: str) -> dict[str, Any]:
    return cluster.get_json(resource, name, "-n", namespace)


def alpha(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "serving.kubeflow.org/v1alpha2", "kind": "InferenceService",
            "metadata": {"name": name}, "spec": spec}


def test_created_as_v1alpha2_read_as_v1beta1_and_served(cluster: Cluster,
                                                         namespace: str) -> None:
    cluster.apply_yaml(alpha("iris", {"default": {
        "predictor": {"sklearn": {"storageUri": "gs://models/iris"}, "parallelism": 4,
                      "serviceAccountName": "models-sa", "minReplicas": 2},
        "transformer": {"custom": {"container": {"image": "me/transformer:1"}},
                        "parallelism": 2},
        "explainer": {"alibi": {"type": "AnchorTabular", "storageUri": "gs://models/ex"}},
    }}), namespace)
    stored = get(cluster, V1BETA1, "iris", namespace)
    assert stored["apiVersion"] == "serving.kubeflow.org/v1beta1"
    predictor = stored["spec"]["predictor"]
    assert predictor["containerConcurrency"] == 4
    assert predictor["serviceAccountName"] == "models-sa"
    assert predictor["minReplicas"] == 2
    # Defaulted by both defaulters: v1alpha2's (runtime version, resources) and v1beta1's.
    assert predictor["sklearn"]["runtimeVersion"]
    assert predictor["sklearn"]["name"] == "kfserving-container"
    assert predictor["sklearn"]["protocolVersion"] == "v1"
    assert stored["spec"]["transformer"]["containerConcurrency"] == 2
    assert stored["spec"]["explainer"]["alibi"]["type"] == "AnchorTabular"
    assert "serving.kubeflow.org/v1beta1-spec" not in (stored["metadata"].get(
        "annotations") or {})

    # The operator reconciles it like any InferenceService.
    knative = KnativeStandIn(cluster, namespace)
    for component in ("predictor", "transformer", "explainer"):
        knative.wait_for_ksvc(f"iris-{component}-default")
        knative.observe(f"iris-{component}-default", ready=True)
    cluster.kubectl("wait", "--for=condition=Ready", "isvc/iris", "-n", namespace,
                    "--timeout=60s")
    ksvc = knative.ksvc("iris-predictor-default")
    assert ksvc["spec"]["template"]["spec"]["serviceAccountName"] == "models-sa"
    assert ksvc["spec"]["template"]["spec"]["containerConcurrency"] == 4

    # Read back as v1alpha2: the v1alpha2 status and printer columns.
    viewed = get(cluster, V1ALPHA2, "iris", namespace)
    assert viewed["apiVersion"] == "serving.kubeflow.org/v1alpha2"
    assert viewed["spec"]["default"]["predictor"]["parallelism"] == 4
    assert viewed["status"]["traffic"] == 100
    assert viewed["status"]["default"]["predictor"]["name"] == "iris-predictor-default-00001"
    table = cluster.kubectl("get", V1ALPHA2, "-n", namespace)
    header, row = table.splitlines()[:2]
    assert header.split() == ["NAME", "URL", "READY", "DEFAULT", "TRAFFIC", "CANARY", "TRAFFIC",
                              "AGE"]
    assert row.split()[:4] == ["iris", f"http://iris.{namespace}.example.com", "True", "100"]


def test_created_as_v1beta1_read_and_edited_as_v1alpha2(cluster: Cluster,
                                                         namespace: str) -> None:
    cluster.apply_yaml({
        "apiVersion": "serving.kubeflow.org/v1beta1", "kind": "InferenceService",
        "metadata": {"name": "flowers"},
        "spec": {"predictor": {
            "tensorflow": {"storageUri": "gs://models/flowers",
                           "env": [{"name": "TF_CPP_MIN_LOG_LEVEL", "value": "2"}]},
            "containerConcurrency": 3, "timeout": 90, "serviceAccountName": "sa"}},
    }, namespace)
    viewed = get(cluster, V1ALPHA2, "flowers", namespace)
    predictor = viewed["spec"]["default"]["predictor"]
    assert predictor["tensorflow"]["storageUri"] == "gs://models/flowers"
    assert (predictor["parallelism"], predictor["serviceAccountName"]) == (3, "sa")
    # A v1alpha2 read-modify-write (kubectl replace of what was read) keeps what v1alpha2
    # cannot express: the env variable and the timeout.
    predictor["parallelism"] = 6
    for key in ("resourceVersion", "managedFields", "creationTimestamp", "generation", "uid"):
        viewed["metadata"].pop(key, None)
    viewed.pop("status", None)
    cluster.kubectl("replace", "-n", namespace, "-f", "-", input=json.dumps(viewed))
    stored = get(cluster, V1BETA1, "flowers", namespace)["spec"]["predictor"]
    assert stored["containerConcurrency"] == 6
    assert stored["timeout"] == 90
    assert stored["tensorflow"]["env"] == [{"name": "TF_CPP_MIN_LOG_LEVEL", "value": "2"}]


def test_v1alpha2_canary_is_refused_with_kfservings_message(cluster: Cluster,
                                                             namespace: str) -> None:
    endpoint = {"predictor": {"sklearn": {"storageUri": "gs://models/iris"}}}
    with pytest.raises(KubectlError) as info:
        cluster.apply_yaml(alpha("canary", {"default": endpoint, "canary": endpoint,
                                            "canaryTrafficPercent": 10}), namespace)
    message = info.value.stderr
    assert ("spec.canary: Canary rollout is no longer supported on v1alpha2, please convert "
            "to v1beta1 to use the feature.") in message
    with pytest.raises(KubectlError) as info:
        cluster.apply_yaml(alpha("bad", {"default": {"predictor": {
            "sklearn": {"storageUri": "ftp://nowhere"}, "parallelism": -1}}}), namespace)
    # Both validators see the request (v1alpha2's, and v1beta1's on the converted object) and
    # the apiserver reports whichever refusal it has first: each names both fields.
    v1alpha2_paths = ("spec.default.predictor.sklearn.storageUri",
                      "spec.default.predictor.parallelism")
    v1beta1_paths = ("spec.predictor.sklearn.storageUri", "spec.predictor.containerConcurrency")
    assert any(all(path in info.value.stderr for path in paths)
               for paths in (v1alpha2_paths, v1beta1_paths)), info.value.stderr


def test_v1alpha2_pytorch_gets_kfservings_defaults(cluster: Cluster, namespace: str) -> None:
    cluster.apply_yaml(alpha("torch", {"default": {"predictor": {
        "pytorch": {"storageUri": "gs://models/cifar"}}}}), namespace)
    viewed = get(cluster, V1ALPHA2, "torch", namespace)
    pytorch = viewed["spec"]["default"]["predictor"]["pytorch"]
    assert pytorch["modelClassName"] == "PyTorchModel"
    assert pytorch["resources"]["limits"] == {"cpu": "1", "memory": "2Gi"}
    knative = KnativeStandIn(cluster, namespace)
    ksvc = knative.wait_for_ksvc("torch-predictor-default")
    args = ksvc["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--model_class_name=PyTorchModel" in args


def test_conversion_survives_a_reapplied_crd(cluster: Cluster, namespace: str) -> None:
    """kubectl apply of the CRD file points conversion at the webhook Service, which does not
    exist outside a cluster; the operator notices and registers itself again."""
    crd_file = cluster_crd_file()
    cluster.kubectl("patch", "crd", "inferenceservices.serving.kubeflow.org", "--type=merge",
                    "-p", json.dumps({"spec": {"conversion": {"webhook": {"clientConfig": {
                        "url": None, "caBundle": None,
                        "service": yaml.safe_load(crd_file)["spec"]["conversion"]["webhook"][
                            "clientConfig"]["service"]}}}}}))

    def converts() -> bool:
        try:
            cluster.apply_yaml(alpha("after", {"default": {"predictor": {
                "sklearn": {"storageUri": "gs://models/iris"}}}}), namespace)
        except KubectlError:
            return False
        return True

    wait_for(converts, timeout=30, message="conversion webhook registered again")


def cluster_crd_file() -> str:
    return (PROJECT_CRDS / "serving.kubeflow.org_inferenceservices.yaml").read_text()
