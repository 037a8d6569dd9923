"""The inferenceservice-config ConfigMap: live changes, and bad changes that change nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from kfserving_operator.api.config import CONFIGMAP_NAME, OperatorConfig
from tests.support.cluster import Cluster, wait_for
from tests.support.isvc import sklearn_isvc
from tests.support.knative import KnativeStandIn
from tests.support.operator import OperatorProcess

CONFIG_NAMESPACE = "kfserving-system"


@pytest.fixture
def config_map(cluster: Cluster, operator: OperatorProcess | None) -> Iterator[dict[str, str]]:
    """The operator's ConfigMap, reset to the defaults before and after the test."""
    if operator is None:
        pytest.skip("changes the config of an operator this session does not own")
    defaults = OperatorConfig().to_configmap_data()

    def write(data: dict[str, str]) -> None:
        cluster.apply_yaml({"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": CONFIGMAP_NAME,
                                         "namespace": CONFIG_NAMESPACE},
                            "data": data})

    write(defaults)
    yield defaults
    cluster.kubectl("delete", "configmap", CONFIGMAP_NAME, "-n", CONFIG_NAMESPACE,
                    "--ignore-not-found")
    write(defaults)


def _image(knative: KnativeStandIn, name: str) -> str:
    ksvc: dict[str, Any] = knative.ksvc(f"{name}-predictor-default")
    image: str = ksvc["spec"]["template"]["spec"]["containers"][0]["image"]
    return image


def _apply_config(cluster: Cluster, data: dict[str, str]) -> None:
    cluster.kubectl("patch", "configmap", CONFIGMAP_NAME, "-n", CONFIG_NAMESPACE,
                    "--type=merge", "-p", json.dumps({"data": data}))


def test_config_change_takes_effect_without_restart(
        cluster: Cluster, namespace: str, config_map: dict[str, str],
        operator: OperatorProcess) -> None:
    pid = operator.process.pid
    cluster.apply_yaml(sklearn_isvc("iris"), namespace)
    knative = KnativeStandIn(cluster, namespace)
    knative.wait_for_ksvc("iris-predictor-default")
    assert _image(knative, "iris").startswith("kserve/sklearnserver:")

    predictors = json.loads(config_map["predictors"])
    predictors["sklearn"]["v1"]["image"] = "registry.example.com/sklearnserver"
    _apply_config(cluster, {"predictors": json.dumps(predictors)})
    # Existing InferenceServices are re-reconciled with the new config.
    wait_for(lambda: _image(knative, "iris").startswith("registry.example.com/sklearnserver:"),
             message="the new image on the existing InferenceService")
    assert operator.process.pid == pid and operator.process.poll() is None


def test_malformed_config_keeps_last_good_value_and_says_so(
        cluster: Cluster, namespace: str, config_map: dict[str, str],
        operator: OperatorProcess) -> None:
    gateway = "local-gateway.mesh.svc.cluster.local"
    ingress = json.loads(config_map["ingress"])
    ingress["localGatewayService"] = gateway
    _apply_config(cluster, {"ingress": json.dumps(ingress)})
    cluster.apply_yaml(sklearn_isvc("first"), namespace)
    wait_for(lambda: _external_name(cluster, namespace, "first") == gateway,
             message="the good ingress config in force")

    _apply_config(cluster, {"ingress": "{this is not json",
                            "storageInitializer": json.dumps({"memoryLimit": "lots"})})

    def warning() -> list[str]:
        events = json.loads(cluster.kubectl(
            "get", "events", "-n", CONFIG_NAMESPACE, "--field-selector",
            f"involvedObject.name={CONFIGMAP_NAME},reason=InvalidConfig", "-o", "json"))
        return [e["message"] for e in events["items"]]

    messages = wait_for(warning, message="InvalidConfig event")
    text = " ".join(messages)
    assert "'ingress'" in text and "not valid JSON" in text
    assert "'storageInitializer'" in text and "lots" in text
    assert operator.process.poll() is None
    assert "Traceback" not in operator.log()

    # The last good values stay in force (not the defaults) for new InferenceServices.
    cluster.apply_yaml(sklearn_isvc("second"), namespace)
    wait_for(lambda: _external_name(cluster, namespace, "second") == gateway,
             message="the last good ingress config still in force")
    assert _external_name(cluster, namespace, "first") == gateway


def _external_name(cluster: Cluster, namespace: str, name: str) -> str | None:
    out = cluster.kubectl("get", "service", name, "-n", namespace, "-o", "json", check=False)
    if not out:
        return None
    value: str | None = json.loads(out)["spec"].get("externalName")
    return value
