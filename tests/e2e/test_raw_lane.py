"""Raw deployment mode where pods run: Deployments turn Available through the real
kube-controller-manager and the lane's node, so InferenceServices turn Ready, and a Gateway
API canary moves its weights as the new revision comes up. The test plays the Gateway's
controller (it accepts the HTTPRoutes); the Gateway API CRDs are the real ones."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from kfserving_operator.cluster.gateway_api import gateway_api_crds
from kfserving_operator.cluster.localplane import project_root
from tests.integration.test_raw_mode import raw_isvc, set_config
from tests.integration.test_reconcile import condition, get_or_none, isvc_status
from tests.support.cluster import Cluster, wait_established, wait_for

pytestmark = pytest.mark.usefixtures("operator")


def _ready(cluster: Cluster, ns: str, name: str, timeout: float = 120) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        status = isvc_status(cluster, ns, name)
        return status if condition(status, "Ready").get("status") == "True" else None

    result: dict[str, Any] = wait_for(check, timeout=timeout, interval=1,
                                      message=f"{name} Ready")
    return result


def test_raw_isvc_turns_ready_with_deployment_service_and_hpa(cluster: Cluster,
                                                               namespace: str) -> None:
    cluster.apply_yaml(raw_isvc("iris", minReplicas=1, maxReplicas=3), namespace)
    status = _ready(cluster, namespace, "iris")
    name = "iris-predictor-default"
    deployment = cluster.get_json("deployment", name, "-n", namespace)
    assert condition(deployment["status"], "Available")["status"] == "True"
    assert cluster.get_json("service", name, "-n", namespace)["spec"]["ports"][0]["port"] == 80
    hpa = cluster.get_json("hpa.v2.autoscaling", name, "-n", namespace)
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 3)
    assert get_or_none(cluster, "services.serving.knative.dev", name, "-n", namespace) is None
    assert status["url"] == f"http://iris-{namespace}.example.com"
    assert status["deploymentMode"] == "RawDeployment"
    pods = json.loads(cluster.kubectl("get", "pods", "-n", namespace, "-l",
                                      f"app=isvc.{name}", "-o", "json"))["items"]
    # the pod webhook injected the storage initializer, as in Serverless mode
    assert [c["name"] for c in pods[0]["spec"].get("initContainers", [])] == [
        "storage-initializer"]


@pytest.fixture
def gateway_api(cluster: Cluster) -> Iterator[None]:
    for crd in gateway_api_crds(project_root()):
        cluster.apply_yaml(crd)
    wait_established(cluster, "httproutes.gateway.networking.k8s.io")
    set_config(cluster, enableGatewayApi=True)
    try:
        yield
    finally:
        set_config(cluster)


def _accept_routes(cluster: Cluster, ns: str) -> None:
    for route in json.loads(cluster.kubectl("get", "httproutes", "-n", ns, "-o",
                                            "json"))["items"]:
        if route.get("status", {}).get("parents"):
            continue
        route["status"] = {"parents": [{
            "parentRef": route["spec"]["parentRefs"][0], "controllerName": "example.com/gw",
            "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted",
                            "message": "", "observedGeneration": 1,
                            "lastTransitionTime": "2026-01-01T00:00:00Z"}]}]}
        route.pop("apiVersion", None)
        route["apiVersion"] = "gateway.networking.k8s.io/v1"
        route["kind"] = "HTTPRoute"
        cluster.kubectl("replace", "--subresource=status", "-f", "-", input=json.dumps(route))


def _weights(cluster: Cluster, ns: str, name: str) -> list[tuple[str, int | None]]:
    route = cluster.get_json("httproute", name, "-n", ns)
    return [(b["name"], b.get("weight")) for b in route["spec"]["rules"][0]["backendRefs"]]


@pytest.mark.usefixtures("gateway_api")
def test_gateway_api_canary_promote(cluster: Cluster, namespace: str) -> None:
    ns, main, prev = namespace, "canary-predictor-default", "canary-predictor-default-prev"
    cluster.apply_yaml(raw_isvc("canary"), ns)
    wait_for(lambda: get_or_none(cluster, "httproute", "canary", "-n", ns), 60,
             message="the HTTPRoutes")
    _accept_routes(cluster, ns)
    first = _ready(cluster, ns, "canary")["components"]["predictor"]
    rolled = first["latestRolledoutRevision"]

    cluster.apply_yaml(raw_isvc("canary", uri="gs://models/iris/v2", canaryTrafficPercent=20), ns)
    wait_for(lambda: _weights(cluster, ns, "canary") == [(main, 20), (prev, 80)], 120,
             interval=1, message="the 20/80 split once the new revision is Ready")
    status = _ready(cluster, ns, "canary")["components"]["predictor"]
    assert status["latestRolledoutRevision"] == rolled
    assert [(t["revisionName"], t["percent"]) for t in status["traffic"]] == [
        (status["latestCreatedRevision"], 20), (rolled, 80)]
    previous = cluster.get_json("deployment", prev, "-n", ns)
    uri = previous["spec"]["template"]["metadata"]["annotations"][
        "internal.serving.kubeflow.org/storage-initializer-sourceuri"]
    assert uri == "gs://models/iris/v1"
    table = cluster.kubectl("get", "isvc", "canary", "-n", ns)
    assert " 80 " in table and " 20 " in table  # PREV and LATEST columns

    cluster.apply_yaml(raw_isvc("canary", uri="gs://models/iris/v2"), ns)
    wait_for(lambda: get_or_none(cluster, "deployment", prev, "-n", ns) is None, 60,
             interval=1, message="the previous Deployment deleted after promotion")
    # one backend (the CRD defaults its weight to 1)
    assert [name for name, _ in _weights(cluster, ns, "canary")] == [main]
    promoted = _ready(cluster, ns, "canary")["components"]["predictor"]
    assert promoted["latestRolledoutRevision"] == status["latestCreatedRevision"]
    assert promoted["previousRolledoutRevision"] == rolled
