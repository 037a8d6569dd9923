"""Multi-model serving and v1alpha2 as users drive them, on the loopback plane: the examples
with kubectl, and the published KFServing 0.6.1 SDK's TrainedModel calls.

The test stands in for Knative (KnativeStandIn) and for the model data path
(tests/support/model_gateway.py), which the SDK's ``wait_model_ready`` asks. The same
examples run on real Knative in tests/e2e/test_multi_model.py. With an external cluster with
Knative and Istio (``KFSERVING_TEST_SKIP_DEV_CRDS=1``) Knative does its part, and the model
checks go to the ingress named by ``KFSERVING_TEST_INGRESS``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from tests.support.cluster import Cluster, wait_for
from tests.support.knative import KnativeStandIn
from tests.support.model_gateway import model_gateway
from tests.support.sdk import SdkError, sdk_call

pytestmark = pytest.mark.usefixtures("operator")

ROOT = Path(__file__).resolve().parents[2]
REAL_KNATIVE = bool(os.environ.get("KFSERVING_TEST_SKIP_DEV_CRDS"))
MULTI_MODEL = ROOT / "examples" / "multi-model"
V1ALPHA2 = sorted((ROOT / "examples" / "v1alpha2").glob("*.yaml"))


def _ready(cluster: Cluster, namespace: str, isvc: str, components: tuple[str, ...]) -> None:
    if not REAL_KNATIVE:
        knative = KnativeStandIn(cluster, namespace)
        for component in components:
            knative.wait_for_ksvc(f"{isvc}-{component}-default")
            knative.observe(f"{isvc}-{component}-default", ready=True)
    cluster.kubectl("wait", "--for=condition=Ready", f"isvc/{isvc}", "-n", namespace,
                    "--timeout=300s")


@contextmanager
def _ingress(cluster: Cluster, namespace: str) -> Iterator[str]:
    if REAL_KNATIVE:
        ingress = os.environ.get("KFSERVING_TEST_INGRESS")
        if not ingress:
            pytest.skip("KFSERVING_TEST_INGRESS (host:port of the ingress gateway) not set")
        yield ingress
        return
    with model_gateway(cluster, namespace) as address:
        yield address


def test_multi_model_example(cluster: Cluster, namespace: str) -> None:
    """kubectl apply -f examples/multi-model/: both models Ready, both in models.json;
    kubectl delete of the InferenceService takes the TrainedModels with it."""
    cluster.kubectl("apply", "-n", namespace, "-f", str(MULTI_MODEL))
    _ready(cluster, namespace, "sklearn-mms", ("predictor",))
    for model in ("iris-a", "iris-b"):
        cluster.kubectl("wait", "--for=condition=Ready", f"tm/{model}", "-n", namespace,
                        "--timeout=60s")
    configmap = cluster.get_json("configmap", "modelconfig-sklearn-mms-0", "-n", namespace)
    names = [m["modelName"] for m in json.loads(configmap["data"]["models.json"])]
    assert names == ["iris-a", "iris-b"]
    table = cluster.kubectl("get", "tm", "-n", namespace)
    assert f"http://sklearn-mms.{namespace}." in table
    cluster.kubectl("delete", "isvc", "sklearn-mms", "-n", namespace)
    wait_for(lambda: not json.loads(cluster.kubectl("get", "tm", "-n", namespace, "-o",
                                                    "json"))["items"],
             timeout=120, message="TrainedModels deleted with their InferenceService")


@pytest.mark.parametrize("example", V1ALPHA2, ids=[p.stem for p in V1ALPHA2])
def test_v1alpha2_examples_apply_and_become_ready(cluster: Cluster, namespace: str,
                                                  example: Path) -> None:
    manifest = yaml.safe_load(example.read_text())
    cluster.kubectl("apply", "-n", namespace, "-f", str(example))
    name = manifest["metadata"]["name"]
    components = tuple(c for c in ("predictor", "transformer", "explainer")
                       if c in manifest["spec"]["default"])
    _ready(cluster, namespace, name, components)
    table = cluster.kubectl("get", "inferenceservices.v1alpha2.serving.kubeflow.org", name,
                            "-n", namespace)
    assert "True" in table.splitlines()[1]


def test_sdk_trained_model_lifecycle(cluster: Cluster, namespace: str) -> None:
    """create_trained_model, wait_model_ready, delete_trained_model from the published SDK."""
    cluster.kubectl("apply", "-n", namespace, "-f", str(MULTI_MODEL / "1-inferenceservice.yaml"))
    _ready(cluster, namespace, "sklearn-mms", ("predictor",))
    with _ingress(cluster, namespace) as ingress:
        for model in ("sdk-a", "sdk-b"):
            sdk_call(cluster, "create_trained_model", name=model, namespace=namespace,
                     inference_service="sklearn-mms", framework="sklearn", memory="128Mi",
                     storage_uri="gs://kfserving-samples/models/sklearn/iris")
        for model in ("sdk-a", "sdk-b"):
            assert sdk_call(cluster, "wait_model_ready", name=model, namespace=namespace,
                            service_name="sklearn-mms", cluster_ip=ingress,
                            timeout_seconds=60, polling_interval=1, timeout=90) is True
        tm = cluster.get_json("tm", "sdk-a", "-n", namespace)
        assert tm["metadata"]["ownerReferences"][0]["name"] == "sklearn-mms"

        # The admission webhook's refusal reaches the SDK user as its RuntimeError.
        with pytest.raises(SdkError) as info:
            sdk_call(cluster, "create_trained_model", name="wrong", namespace=namespace,
                     inference_service="sklearn-mms", framework="tensorflow", memory="128Mi",
                     storage_uri="gs://kfserving-samples/models/tensorflow/flowers")
        assert info.value.kind == "RuntimeError"
        assert "spec.model.framework: must be one of [sklearn]" in str(info.value)

        sdk_call(cluster, "delete_trained_model", name="sdk-a", namespace=namespace)
        wait_for(lambda: not cluster.kubectl("get", "tm", "sdk-a", "-n", namespace,
                                             "--ignore-not-found"),
                 message="sdk-a deleted")
        # Unloaded: the model is gone from the config, so the model path stops answering.
        with pytest.raises(SdkError) as info:
            sdk_call(cluster, "wait_model_ready", name="sdk-a", namespace=namespace,
                     service_name="sklearn-mms", cluster_ip=ingress, timeout_seconds=3,
                     polling_interval=1)
        assert info.value.kind == "RuntimeError"
        assert "has not loaded the" in str(info.value)
        assert sdk_call(cluster, "wait_model_ready", name="sdk-b", namespace=namespace,
                        service_name="sklearn-mms", cluster_ip=ingress, timeout_seconds=10,
                        polling_interval=1) is True
